"""An evaluation reports where its time went: scoring, generation, membership inference."""

from __future__ import annotations


def test_evaluation_splits_its_wall_time(target_eval):
    timings = target_eval.summary["timings"]
    parts = [timings["scoring_s"], timings["generation_s"], timings["mia_s"]]
    assert all(p >= 0 for p in parts) and timings["scoring_s"] > 0 and timings["generation_s"] > 0
    assert sum(parts) <= timings["evaluate_s"] + 1e-3
    forget = target_eval.splits["forget"].timings
    assert {"scoring_s", "generation_s"} <= set(forget)
