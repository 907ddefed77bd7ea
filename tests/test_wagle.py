"""WAGLE scope: the score formula, the exact global top-ratio mask without a full sort, the mask
file, and frozen weights that stay bit-identical through training with weight decay."""

from __future__ import annotations

import math

import pytest
import torch

from obliviate.errors import ConfigError
from obliviate.scopes.wagle import (
    load_masks,
    save_masks,
    score_function,
    top_fraction_masks,
)


def _exact_top(scores: dict[str, torch.Tensor], k: int) -> float:
    return float(torch.cat([s.flatten() for s in scores.values()]).sort(descending=True).values[k - 1])


def test_wagle_score_by_hand():
    theta = {"w": torch.tensor([1.0, -2.0, 0.5])}
    g_f = {"w": torch.tensor([0.1, 0.2, -4.0])}
    g_r = {"w": torch.tensor([1e-6, 0.0, 2e-6])}
    s = score_function("wagle", theta, g_f, g_r, mu=1e-6)("w")
    # |(θ - g_r/μ) ⊙ g_f| = |(1-1)·0.1|, |(-2-0)·0.2|, |(0.5-2)·(-4)| = 0, 0.4, 6
    torch.testing.assert_close(s, torch.tensor([0.0, 0.4, 6.0]))
    torch.testing.assert_close(score_function("snip", theta, g_f, None, 1.0)("w"), torch.tensor([0.1, 0.4, 2.0]))
    torch.testing.assert_close(score_function("gradient", theta, g_f, None, 1.0)("w"), torch.tensor([0.1, 0.2, 4.0]))
    torch.testing.assert_close(score_function("magnitude", theta, None, None, 1.0)("w"), torch.tensor([1.0, 2.0, 0.5]))
    r1 = score_function("random", theta, None, None, 1.0, seed=3)("w")
    assert torch.equal(r1, score_function("random", theta, None, None, 1.0, seed=3)("w"))


@pytest.mark.parametrize("ratio", [0.05, 0.5, 0.8, 0.95])
@pytest.mark.parametrize("sample_size", [64, 1 << 20])  # the sampled-bracket path and the exact path
def test_mask_has_the_exact_fraction_and_matches_a_full_sort(ratio, sample_size):
    gen = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(40, 30, generator=gen), "b": torch.rand(500, generator=gen),
              "c": torch.zeros(300)}  # a plateau of ties, as weights with zero gradient give
    scores["b"][:50] = 0.5  # ties inside the distribution too
    shapes = {n: s.shape for n, s in scores.items()}
    masks = top_fraction_masks(lambda n: scores[n], shapes, ratio, sample_size=sample_size)
    total = sum(s.numel() for s in scores.values())
    k = int(ratio * total)
    assert sum(int(m.sum()) for m in masks.values()) == k
    t = _exact_top(scores, k)
    for n, m in masks.items():
        assert bool((scores[n][m] >= t).all()) and bool((scores[n][~m] <= t).all())


def test_mask_file_round_trip_and_mismatch(tmp_path):
    model = torch.nn.Linear(3, 2)
    masks = {"weight": torch.tensor([[True, False, True], [False, False, True]]), "bias": torch.tensor([True, False])}
    path = save_masks(masks, tmp_path / "m.safetensors", {"ratio": 0.5})
    loaded = load_masks(path, model)
    assert all(torch.equal(loaded[n], masks[n]) for n in masks)
    with pytest.raises(ConfigError, match="matches no parameter"):
        load_masks(path, torch.nn.Sequential(torch.nn.Linear(3, 2)))
    with pytest.raises(ConfigError, match="no such file"):
        load_masks(tmp_path / "missing.safetensors", model)


def test_bad_ratio_is_refused():
    from obliviate.errors import ConfigError
    from obliviate.scopes import SCOPES

    with pytest.raises(ConfigError, match="ratio"):
        SCOPES.build({"name": "wagle", "ratio": 0})
    with pytest.raises(ConfigError, match="score"):
        SCOPES.build({"name": "wagle", "score": "wanda"})


def test_frozen_weights_stay_bit_identical_under_weight_decay(tiny_models, tiny_data, tokenizer):
    from obliviate.models.loading import load_model
    from obliviate.objectives import OBJECTIVES
    from obliviate.schedules import SCHEDULES
    from obliviate.scopes import SCOPES
    from obliviate.train.unlearn import TrainingConfig, unlearn_model

    before = {n: p.detach().clone() for n, p in load_model(tiny_models.target).named_parameters()}
    scope = SCOPES.build({"name": "wagle", "ratio": 0.5})
    outcome = unlearn_model(
        load_model(tiny_models.target), tokenizer, tiny_data.forget, tiny_data.retain,
        objective=OBJECTIVES.build({"name": "npo", "beta": 0.5}), scope=scope,
        schedule=SCHEDULES.build({"name": "epochs", "max_steps": 4}),
        training=TrainingConfig(learning_rate=1e-3, batch_size=8, weight_decay=0.1, scheduler="constant"),
        show_progress=False)
    after = dict(outcome.model.named_parameters())
    moved = 0
    for name, mask in scope.masks.items():
        assert torch.equal(after[name].detach()[~mask], before[name][~mask]), name
        moved += int((after[name].detach()[mask] != before[name][mask]).sum())
    total = sum(m.numel() for m in scope.masks.values())
    assert scope.info["selected"] == int(0.5 * total) and moved > 0.3 * total
    assert math.isclose(scope.info["fraction"], 0.5, abs_tol=1e-6) and scope.info["mask_seconds"] >= 0


def test_mask_command_then_training_with_the_saved_mask(tmp_path, tiny_models, tiny_data, capsys):
    import json

    from obliviate.cli import main
    from obliviate.scopes.wagle import MASK_FILE

    forget, retain = tmp_path / "forget.jsonl", tmp_path / "retain.jsonl"
    forget.write_text("".join(json.dumps(r) + "\n" for r in tiny_data.forget))
    retain.write_text("".join(json.dumps(r) + "\n" for r in tiny_data.retain))
    mask = tmp_path / "mask.safetensors"
    assert main(["mask", "--model", str(tiny_models.target), "--forget", str(forget), "--retain", str(retain),
                 "--ratio", "0.8", "--score", "snip", "--out", str(mask)]) == 0
    assert "trainable, score snip" in capsys.readouterr().out
    from safetensors import safe_open

    with safe_open(str(mask), "pt") as fh:
        assert fh.metadata()["score"] == "snip" and fh.metadata()["ratio"] == "0.8"
    assert main(["mask", "--model", str(tiny_models.target), "--forget", str(forget), "--out", str(mask)]) == 2
    out = tmp_path / "unlearned"
    assert main(["unlearn", "--model", str(tiny_models.target), "--forget", str(forget), "--retain", str(retain),
                 "--method", "wagle", "--set", f"scope.mask_path={mask}", "--set", "schedule.max_steps=2",
                 "--out", str(out), "--quiet"]) == 0
    info = json.loads((out / "unlearning.json").read_text())["scope"]
    assert info["source"] == str(mask) and info["selected"] == int(0.8 * info["total"])
    assert (out / MASK_FILE).is_file()


def test_run_with_wagle_scope_and_icu_schedule_reports_every_new_metric(tmp_path, tiny_models):
    from obliviate import run
    from tests.conftest import TEST_OVERRIDES

    overrides = [o for o in TEST_OVERRIDES if not o.startswith("schedule.")]
    result = run(overrides=[*overrides, "scope=wagle", "scope.ratio=0.8", "schedule=icu", "schedule.max_epochs=6",
                            "schedule.embedder=tfidf"], out=tmp_path / "run", show_progress=False, log=lambda *_: None)
    unlearned, target = result.rows["unlearned"], result.rows["target"]
    for key in ("mia_auc_loss", "mia_auc_zlib", "mia_auc_min_k", "mia_auc_min_k++", "mia_auc_gradnorm",
                "mia_auc_reference", "privleak", "forget_extraction_strength", "forget_exact_memorization",
                "forget_passages_MA", "forget_passages_EL10", "forget_passages_EL10_all", "retain_passages_ppl"):
        assert key in unlearned, key
    assert target["mia_auc_min_k"] > 0.9 and result.rows["retain"]["privleak"] == 0.0
    assert unlearned["forget_Q_A_Prob"] < target["forget_Q_A_Prob"]
    info = result.summary["unlearning"]
    assert info["scope"]["score"] == "wagle" and info["schedule"]["epochs"] >= 1
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Memorisation and membership inference" in report and "wagle mask" in report
