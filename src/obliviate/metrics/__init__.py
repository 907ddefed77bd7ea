"""Evaluation metrics: pure functions over per-item numbers (TOFU, ROUGE-L, memorisation).

Heavy dependencies stay out: ROUGE scoring imports ``rouge_score`` on first use.
"""

from __future__ import annotations

from obliviate.metrics.memorization import exact_memorization, extraction_strength
from obliviate.metrics.text import rouge_l_f1, rouge_l_recall
from obliviate.metrics.tofu import (
    MODEL_UTILITY_KEYS,
    answer_probability,
    forget_quality,
    model_utility,
    normalized_probability,
    truth_ratio,
    truth_ratio_closer_to_one,
    truth_ratio_true_better,
)

__all__ = [
    "MODEL_UTILITY_KEYS",
    "answer_probability",
    "exact_memorization",
    "extraction_strength",
    "forget_quality",
    "model_utility",
    "normalized_probability",
    "rouge_l_f1",
    "rouge_l_recall",
    "truth_ratio",
    "truth_ratio_closer_to_one",
    "truth_ratio_true_better",
]
