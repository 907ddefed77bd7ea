"""ICU: the objective's three terms by hand, the per-target flags, re-entry and stopping on a
scripted sequence of generation scores, the sampler, and a real run on the embedded benchmark."""

from __future__ import annotations

import math

import pytest
import torch

from obliviate.schedules.icu import ActiveItemsSampler, ICUScheduleConfig, ICUTracker


def test_flags_reentry_and_stopping_on_a_scripted_sequence():
    cfg = ICUScheduleConfig(bleu_threshold=0.01, similarity_threshold=0.3, ma_threshold=0.6, el_threshold=0.05)
    tracker = ICUTracker(cfg, n_targets=3)
    # epoch 0: everything still memorised
    assert tracker.observe(0, bleu=[0.9, 0.8, 0.7], similarity=[0.9, 0.9, 0.9], ma=0.99, el=0.9) is None
    assert tracker.flags == [True, True, True]
    # epoch 1: target 0 forgotten by BLEU, target 2 by similarity (the OR rule)
    assert tracker.observe(1, bleu=[0.0, 0.5, 0.4], similarity=[0.9, 0.8, 0.2], ma=0.8, el=0.3) is None
    assert tracker.flags == [False, True, False]
    sampler = ActiveItemsSampler(tracker, seed=0)
    assert len(sampler) == 1 and [k.index for k in sampler] == [1]
    # epoch 2: target 0 regresses and re-enters
    assert tracker.observe(2, bleu=[0.5, 0.5, 0.0], similarity=[0.9, 0.8, 0.1], ma=0.7, el=0.2) is None
    assert tracker.flags == [True, True, False] and tracker.history[-1].re_entered == 1
    assert sorted(k.index for k in sampler) == [0, 1]
    # epoch 3: MA below but EL above its threshold: go on
    assert tracker.observe(3, bleu=[0.5, 0.5, 0.0], similarity=[0.9, 0.8, 0.1], ma=0.5, el=0.2) is None
    # epoch 4: both below: stop
    assert "below their thresholds" in tracker.observe(4, [0.5, 0.5, 0.0], [0.9, 0.8, 0.1], ma=0.5, el=0.01)
    # a fresh tracker stops when nothing is left, whatever MA/EL say
    t2 = ICUTracker(cfg, n_targets=2)
    assert t2.observe(1, [0.0, 0.0], [0.9, 0.9], ma=0.99, el=0.9) == "every target is forgotten"
    # no valid EL cut (short answers): MA alone decides
    t3 = ICUTracker(cfg, n_targets=1)
    assert t3.observe(1, [0.9], [0.9], ma=0.5, el=math.nan) is not None


def test_sampler_shuffles_active_items_reproducibly():
    tracker = ICUTracker(ICUScheduleConfig(), n_targets=6)
    a, b = ActiveItemsSampler(tracker, seed=1), ActiveItemsSampler(tracker, seed=1)
    first = [k.index for k in a]
    assert sorted(first) == list(range(6)) and list(a) == list(b)
    later = []
    for epoch in (1, 2, 3):
        a.set_epoch(epoch)
        later.append([k.index for k in a])
        assert {k.epoch for k in a} == {epoch}
    assert all(sorted(p) == list(range(6)) for p in later)
    assert any(p != first for p in later)  # a new permutation per epoch
    a.set_epoch(2)
    assert [k.index for k in a] == later[1]  # a pure function of (seed, epoch): a resumed run repeats it


def test_icu_objective_terms_by_hand():
    from obliviate.objectives import OBJECTIVES
    from obliviate.objectives.base import Reference

    class Fixed(torch.nn.Module):
        """Logits that do not depend on the input: every position predicts `table`."""

        def __init__(self, table):
            super().__init__()
            self.table = torch.nn.Parameter(torch.tensor(table))

        def forward(self, input_ids, attention_mask):
            logits = self.table.expand(input_ids.shape[0], input_ids.shape[1], -1)
            return type("Out", (), {"logits": logits})()

    model = Fixed([0.0, math.log(3.0)])  # p = (1/4, 3/4)
    group = {"input_ids": torch.tensor([[0, 1]]), "attention_mask": torch.ones(1, 2, dtype=torch.long),
             "labels": torch.tensor([[-100, 1]])}
    forget = {**group, "labels": torch.tensor([[-100, 0]])}
    ref_logits = torch.zeros(1, 2, 2)  # reference p = (1/2, 1/2)
    objective = OBJECTIVES.build({"name": "icu"})
    loss, logs = objective(model, {"forget": forget, "neighbour": group}, Reference(model_logits=lambda b: ref_logits))
    nll_forget, nll_neighbour = math.log(4.0), -math.log(0.75)
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # KL(ref ‖ model)
    assert logs["forget_nll"] == pytest.approx(nll_forget)
    assert logs["neighbour_nll"] == pytest.approx(nll_neighbour) and logs["neighbour_kl"] == pytest.approx(kl)
    assert float(loss.detach()) == pytest.approx(-1.0 * nll_forget + 0.5 * nll_neighbour + 1.0 * kl)


def test_icu_run_on_passages_lowers_extraction_and_records_its_epochs(tmp_path, tiny_models):
    from obliviate import run
    from tests.conftest import TEST_OVERRIDES

    # two forget passages at test size: batch 2 and a higher rate give ICU enough steps per epoch
    overrides = [o for o in TEST_OVERRIDES if not o.startswith(("schedule", "training."))]
    result = run(method="icu", overrides=[*overrides, "benchmark.task=passages", "schedule.max_epochs=20",
                                          "training.learning_rate=2e-3", "training.batch_size=2",
                                          "schedule.embedder=tfidf", "objective.embedder=tfidf"],
                 out=tmp_path / "icu", show_progress=False, log=lambda *_: None)
    target, unlearned = result.rows["target"], result.rows["unlearned"]
    assert target["forget_passages_EL10"] > 0.5
    assert unlearned["forget_passages_EL10"] < 0.5 * target["forget_passages_EL10"]
    assert unlearned["retain_passages_ppl"] < 3 * target["retain_passages_ppl"] + 1
    info = result.summary["unlearning"]
    assert info["neighbours"]["embedder"] == "tfidf" and info["schedule"]["similarity"] == "tfidf"
    checks = info["schedule"]["checks"]
    assert checks[0]["epoch"] == 0 and 1 <= info["schedule"]["epochs"] <= 20
    assert info["schedule"]["cap_hit"] == (info["schedule"]["stop_reason"].startswith("epoch cap"))
    assert "## Unlearning" in (tmp_path / "icu" / "report.md").read_text()
