"""Golden tests: reproduce TOFU aggregates from the TOFU authors' own evaluation logs.

The logs (``shared/data/tofu-logs``, see ``shared/data/README.md``) hold per-question losses from the
original TOFU code. Only public ``obliviate.metrics`` functions are used to rebuild model utility,
forget quality and the forget truth ratio, so these tests check our formulas against data nobody on
this project produced. Skipped when the shared data is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from obliviate.metrics import (
    MODEL_UTILITY_KEYS,
    answer_probability,
    forget_quality,
    model_utility,
    normalized_probability,
    truth_ratio,
    truth_ratio_closer_to_one,
    truth_ratio_true_better,
)

LOG_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tofu-logs"

RETAIN = "eval_log.json"
REAL_AUTHORS = "eval_real_author_wo_options.json"
WORLD_FACTS = "eval_real_world_wo_options.json"
FORGET = "eval_log_forget.json"


def load_log(name: str) -> dict[str, Any]:
    """Read ``{name}_wd0.01.json`` from the shared log folder, skipping the test if absent."""
    path = LOG_DIR / f"{name}_wd0.01.json"
    if not path.is_file():
        pytest.skip(f"TOFU reference log not found: {path}")
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def column(log: dict[str, Any], split: str, key: str) -> list[Any]:
    """Per-question values of ``key`` in ``split``, ordered by integer question index."""
    by_index = log[split][key]
    return [by_index[k] for k in sorted(by_index, key=int)]


def utility_components(log: dict[str, Any]) -> dict[str, float]:
    """The nine model-utility numbers, built as TOFU does (spec 2.1)."""
    out: dict[str, float] = {
        "retain_Q_A_Prob": float(np.mean(answer_probability(column(log, RETAIN, "avg_gt_loss")))),
        "retain_Q_A_ROUGE": float(np.mean(column(log, RETAIN, "rougeL_recall"))),
        "retain_Truth_Ratio": truth_ratio_true_better(
            truth_ratio(column(log, RETAIN, "avg_paraphrased_loss"), column(log, RETAIN, "average_perturb_loss"))
        ),
    }
    for prefix, split in (("ra", REAL_AUTHORS), ("wf", WORLD_FACTS)):
        gt = column(log, split, "avg_gt_loss")
        wrong = column(log, split, "average_perturb_loss")
        out[f"{prefix}_Q_A_Prob_normalised"] = float(np.mean(normalized_probability(gt, wrong)))
        out[f"{prefix}_Q_A_ROUGE"] = float(np.mean(column(log, split, "rougeL_recall")))
        out[f"{prefix}_Truth_Ratio"] = truth_ratio_true_better(truth_ratio(gt, wrong))
    return out


def forget_truth_ratios(log: dict[str, Any]) -> np.ndarray:
    """Per-question forget truth ratios: paraphrased answer as correct, perturbed as wrong."""
    return truth_ratio(column(log, FORGET, "avg_paraphrased_loss"), column(log, FORGET, "average_perturb_loss"))


def test_model_utility_llama2_full() -> None:
    comps = utility_components(load_log("llama2-7b_full"))
    assert set(comps) == set(MODEL_UTILITY_KEYS)
    assert model_utility(comps) == pytest.approx(0.6227, rel=1e-3)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("llama2-7b_retain90", 0.614), ("phi_full", 0.522), ("phi_retain90", 0.532)],
)
def test_model_utility_other_logs(name: str, expected: float) -> None:
    # Spec 4.3 gives these to three decimals only.
    assert model_utility(utility_components(load_log(name))) == pytest.approx(expected, abs=6e-4)


@pytest.mark.parametrize(("model", "expected"), [("llama2-7b", 1.83e-21), ("phi", 2.19e-16)])
def test_forget_quality_full_vs_retain90(model: str, expected: float) -> None:
    full = forget_truth_ratios(load_log(f"{model}_full"))
    retain = forget_truth_ratios(load_log(f"{model}_retain90"))
    assert full.size == retain.size == 300
    assert forget_quality(full, retain) == pytest.approx(expected, rel=2e-2)


def test_forget_truth_ratio_llama2_full() -> None:
    ratios = forget_truth_ratios(load_log("llama2-7b_full"))
    assert truth_ratio_closer_to_one(ratios) == pytest.approx(0.516, rel=1e-3)


def test_per_question_truth_ratio_matches_logged_values() -> None:
    # The logs store TOFU's own per-question truth ratio; ours must agree item by item.
    log = load_log("llama2-7b_full")
    for split in (RETAIN, FORGET):
        ours = truth_ratio(column(log, split, "avg_paraphrased_loss"), column(log, split, "average_perturb_loss"))
        np.testing.assert_allclose(ours, column(log, split, "truth_ratio"), rtol=1e-5)
