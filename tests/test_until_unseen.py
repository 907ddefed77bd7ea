"""Schedule until_unseen: the stopping rule on scripted statistics (KS p-values by hand), the
per-record statistics, one-line input errors, and real runs on the embedded benchmark."""

from __future__ import annotations

import json

import pytest

from obliviate.errors import ConfigError
from obliviate.schedules import SCHEDULES, ScheduleContext
from obliviate.schedules import unseen

from tests.conftest import TEST_OVERRIDES

QA = {"question": "q?", "answer": "a.", "paraphrased_answer": "b.", "perturbed_answer": ["c.", "d."]}


def _schedule(**options):
    return SCHEDULES.build({"name": "until_unseen", **options})


def test_stops_at_the_first_check_whose_ks_p_reaches_the_threshold(monkeypatch):
    # KS two-sample p-values of 3 vs 3 values (exact): identical samples 1.0; one shared value of
    # three, D = 2/3, p = 0.6; disjoint samples, D = 1, p = 0.1.
    holdout = [1.0, 2.0, 3.0]
    script = iter([[7.0, 8.0, 9.0], [7.0, 8.0, 9.0], [2.5, 7.0, 8.0], [1.0, 2.0, 3.0]])
    calls = []

    class Scripted:
        def __init__(self, tokenizer, records, statistic, *, max_length):
            calls.append(statistic)
            self.is_holdout = records[0]["question"] == "h?"

        def __call__(self, model, batch_size=64):
            return holdout if self.is_holdout else next(script)

    monkeypatch.setattr(unseen, "RecordScorer", Scripted)
    schedule = _schedule(p_value=0.5)
    schedule.prepare(ScheduleContext(None, [], forget=[QA] * 3, holdout=[{**QA, "question": "h?"}] * 3))
    assert schedule.check(None, epoch=0) is False          # before training: never a stop
    assert schedule.check(None, epoch=1) is False          # p = 0.1
    assert schedule.check(None, epoch=2) is True           # p = 0.6 >= 0.5
    assert [round(c["p"], 6) for c in schedule.checks] == [0.1, 0.1, 0.6]
    assert [round(c["ks"], 6) for c in schedule.checks] == [1.0, 1.0, round(2 / 3, 6)]
    assert schedule.checks[2]["forget_median"] == 7.0 and schedule.checks[2]["holdout_median"] == 2.0
    assert set(calls) == {"truth_ratio"}
    schedule.finish(2.0)
    assert schedule.info["epochs"] == 2.0 and schedule.info["cap_hit"] is False
    assert "0.6 >= 0.5" in schedule.info["stop_reason"]
    # a stricter threshold goes on past p = 0.6; the cap then ends training and says so
    strict = _schedule(p_value=0.9)
    script = iter([[7.0, 8.0, 9.0], [2.5, 7.0, 8.0]])
    strict.prepare(ScheduleContext(None, [], forget=[QA] * 3, holdout=[{**QA, "question": "h?"}] * 3))
    assert strict.check(None, 0) is False and strict.check(None, 1) is False
    strict.finish(1.0)
    assert strict.info["cap_hit"] is True and strict.info["stop_reason"] == "epoch cap (60)"


def test_record_statistics_are_the_evaluations_truth_ratios_or_nll(tiny_models, tiny_data, tokenizer):
    import numpy as np

    from obliviate.evaluate.tofu import EvalConfig, evaluate_split
    from obliviate.models.loading import load_model

    model = load_model(tiny_models.target)
    records = tiny_data.forget[:5]
    ratios = unseen.RecordScorer(tokenizer, records, "truth_ratio", max_length=512)(model, batch_size=4)
    # the evaluation's forget truth ratios (paraphrased answer vs perturbed answers) are the same numbers
    expected = evaluate_split(model, tokenizer, "forget", records, EvalConfig(mia=False, max_new_tokens=4),
                              show_progress=False).truth_ratios
    np.testing.assert_allclose(ratios, expected, rtol=1e-5)
    nll = unseen.RecordScorer(tokenizer, records, "nll", max_length=512)(model, batch_size=4)
    probs = [i["prob"] for i in evaluate_split(model, tokenizer, "forget", records,
                                               EvalConfig(mia=False, max_new_tokens=4), show_progress=False).items]
    np.testing.assert_allclose(np.exp(-np.array(nll)), probs, rtol=1e-5)


@pytest.mark.parametrize("forget, holdout, options, message", [
    ([QA], [], {}, "never-trained holdout records"),
    ([QA], [QA, {**QA, "perturbed_answer": []}], {}, "holdout record 2 has none"),
    ([{"text": "a passage"}], [QA], {}, "forget record 1 has no question/answer"),
])
def test_inputs_it_cannot_use_fail_in_one_line(forget, holdout, options, message):
    with pytest.raises(ConfigError, match=message):
        _schedule(**options).check_inputs(forget, holdout)


def test_nll_statistic_needs_no_perturbed_answers():
    plain = {"question": "q?", "answer": "a."}
    _schedule(statistic="nll").check_inputs([plain], [plain])


def test_a_run_stops_when_the_forget_set_looks_unseen(tmp_path):
    from obliviate.api import run

    # At test size NPO with beta 0.5 levels off before the forget set looks unseen (forget truth
    # ratios' median 0.39 against the holdout's 1.4 after 40 epochs); beta 0.1 at 1e-3 gets there
    # in ~20 epochs (measured: forget quality 0.83, utility 0.97x the target's).
    overrides = [o for o in TEST_OVERRIDES if not o.startswith(("schedule.", "training.learning_rate"))]
    result = run(overrides=[*overrides, "schedule=until_unseen", "schedule.epochs=40", "objective.beta=0.1",
                            "training.learning_rate=1e-3", "eval.mia=false", "eval.passages=false"],
                 out=tmp_path / "run", show_progress=False, log=lambda *_: None)
    info = result.summary["unlearning"]["schedule"]
    checks = info["checks"]
    assert info["cap_hit"] is False and info["epochs"] < 40 and info["epochs"] == checks[-1]["epoch"]
    assert checks[0]["epoch"] == 0 and checks[0]["p"] < 0.5 <= checks[-1]["p"]
    assert all(c["p"] < 0.5 for c in checks[1:-1])  # the first check that reaches it stops training
    assert result.rows["unlearned"]["forget_quality"] > 100 * result.rows["target"]["forget_quality"]
    rows = result.rows
    assert rows["unlearned"]["forget_Q_A_Prob"] < 0.5 * rows["target"]["forget_Q_A_Prob"]
    assert rows["unlearned"]["model_utility"] > 0.9 * rows["target"]["model_utility"]
    assert "stopped because forget set looks unseen" in (tmp_path / "run" / "report.md").read_text()


def test_unlearn_cli_reads_holdout_records(tmp_path, tiny_models, tiny_data, capsys):
    from obliviate.cli import main

    for name, records in (("forget", tiny_data.forget), ("retain", tiny_data.retain[:40]),
                          ("holdout", tiny_data.holdout)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    common = ["unlearn", "--quiet", "--model", str(tiny_models.target), "--forget", str(tmp_path / "forget.jsonl"),
              "--retain", str(tmp_path / "retain.jsonl"), "--set", "schedule=until_unseen",
              "--set", "schedule.epochs=2", "--set", "training.learning_rate=1e-3", "--set", "threads=1"]
    assert main([*common, "--out", str(tmp_path / "no-holdout")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "--holdout FILE" in error and not (tmp_path / "no-holdout").exists()
    assert main([*common, "--holdout", str(tmp_path / "holdout.jsonl"), "--out", str(tmp_path / "out")]) in (0, None)
    info = json.loads((tmp_path / "out" / "unlearning.json").read_text())["schedule"]
    assert info["n_holdout"] == len(tiny_data.holdout) and len(info["checks"]) >= 2
    capsys.readouterr()
    # another schedule ignores them, and says so
    ignored = [a if a != "schedule=until_unseen" else "schedule=epochs" for a in common]
    assert main([*ignored, "--holdout", str(tmp_path / "holdout.jsonl"), "--out", str(tmp_path / "out2")]) in (0, None)
    assert "does not read holdout records" in capsys.readouterr().err


def test_restore_best_goes_back_to_the_best_check_when_the_cap_ends_training(monkeypatch):
    import torch

    holdout = [1.0, 2.0, 3.0]
    script = iter([[7.0, 8.0, 9.0], [2.5, 7.0, 8.0], [7.0, 8.0, 9.0]])  # p 0.1, 0.6, 0.1

    class Scripted:
        def __init__(self, tokenizer, records, statistic, *, max_length):
            self.is_holdout = records[0]["question"] == "h?"

        def __call__(self, model, batch_size=64):
            return holdout if self.is_holdout else next(script)

    monkeypatch.setattr(unseen, "RecordScorer", Scripted)
    model = torch.nn.Linear(2, 2)
    schedule = _schedule(p_value=0.9, restore_best=True, epochs=3)
    schedule.prepare(ScheduleContext(None, [], forget=[QA] * 3, holdout=[{**QA, "question": "h?"}] * 3))
    for epoch in (1, 2, 3):
        with torch.no_grad():
            model.weight.fill_(float(epoch))  # what training left after this epoch
        assert schedule.check(model, epoch) is False
    schedule.finish(3.0, model)
    assert torch.equal(model.weight, torch.full((2, 2), 2.0))  # epoch 2 had the best p (0.6)
    assert schedule.info["restored_epoch"] == 2 and schedule.info["cap_hit"] is True
    assert "restored the weights of epoch 2" in schedule.info["stop_reason"]


def test_below_holdout_matches_ranks_to_holdout_quantiles():
    # holdout [0.2, 0.4, 0.6, 0.8]; three forget values, so the k-th smallest is held against the
    # (k + 0.5)/3 quantile (numpy's linear rule): 1/6 -> 0.3, 1/2 -> 0.5, 5/6 -> 0.7
    holdout = [0.2, 0.4, 0.6, 0.8]
    assert unseen.below_holdout([0.9, 0.35, 0.1], holdout) == [1, 2]   # 0.1 < 0.3, 0.35 < 0.5, 0.9 >= 0.7
    assert unseen.below_holdout([0.1, 0.5, 0.3], holdout) == [0, 1, 2]
    assert unseen.below_holdout([0.31, 0.55, 0.75], holdout) == []     # every value past its level


def test_per_record_trains_the_records_below_the_holdout_and_stops_when_none_is_left(monkeypatch):
    # levels for 3 forget values against holdout [1, 2, 3]: 1.333, 2, 2.667 (by rank)
    holdout = [1.0, 2.0, 3.0]
    script = iter([[0.1, 0.2, 0.3], [3.5, 0.5, 0.7], [5.0, 6.0, 7.0]])

    class Scripted:
        kept = [0, 1, 2]

        def __init__(self, tokenizer, records, statistic, *, max_length):
            self.is_holdout = records[0]["question"] == "h?"

        def __call__(self, model, batch_size=64):
            return holdout if self.is_holdout else next(script)

    monkeypatch.setattr(unseen, "RecordScorer", Scripted)
    schedule = _schedule(p_value=0.5, per_record=True)
    schedule.prepare(ScheduleContext(None, [], forget=[QA] * 3, holdout=[{**QA, "question": "h?"}] * 3))
    with pytest.raises(ConfigError, match="one training item per forget record"):
        schedule.train_sampler(6, seed=0)
    sampler = schedule.train_sampler(3, seed=0)
    assert schedule.supports_checkpoints is False and _schedule().supports_checkpoints is True

    def drawn(epoch):
        sampler.set_epoch(epoch)
        return sorted(key.index for key in sampler)

    assert schedule.check(None, 0) is False and drawn(0) == [0, 1, 2]
    # 3.5 is past its level; p 0.6 reaches 0.5, but two of three records are still below: go on
    assert schedule.check(None, 1) is False and drawn(1) == [1, 2]
    assert schedule.check(None, 2) is True and drawn(2) == []          # all past: stop, although p is 0.1
    assert [c["n_training"] for c in schedule.checks] == [3, 2, 0]
    assert round(schedule.checks[-1]["p"], 6) == 0.1
    assert schedule.stop_reason.startswith("every forget record is at or above the holdout's value")


def test_a_per_record_run_trains_fewer_records_as_they_pass_the_holdout(tmp_path):
    from obliviate.api import run

    overrides = [o for o in TEST_OVERRIDES if not o.startswith(("schedule.", "training.learning_rate"))]
    result = run(overrides=[*overrides, "schedule=until_unseen", "schedule.epochs=40", "schedule.per_record=true",
                            "objective.beta=0.1", "training.learning_rate=1e-3", "eval.mia=false",
                            "eval.passages=false"],
                 out=tmp_path / "run", show_progress=False, log=lambda *_: None)
    info = result.summary["unlearning"]["schedule"]
    checks = info["checks"]
    n_forget = result.summary["n_forget"]
    assert checks[0]["n_training"] == n_forget and min(c["n_training"] for c in checks) < n_forget
    assert info["cap_hit"] is False and info["epochs"] == checks[-1]["epoch"] == len(checks) - 1
    # Trainer ran exactly the batches of the records each check left: ceil(n / batch) per epoch
    batch = result.summary["recipe"]["training"]["batch_size"]
    steps = sum(-(-c["n_training"] // batch) for c in checks[:-1])
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == steps
    assert info["per_record"] is True
    assert f"{checks[1]['n_training']} records to train" in (tmp_path / "run" / "report.md").read_text()
    assert result.rows["unlearned"]["forget_quality"] > 100 * result.rows["target"]["forget_quality"]
    assert result.rows["unlearned"]["model_utility"] > 0.9 * result.rows["target"]["model_utility"]
