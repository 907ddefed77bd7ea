"""Evaluation metrics: pure functions over per-item numbers (TOFU, ROUGE-L, memorisation, MIA).

Heavy dependencies stay out: ROUGE scoring imports ``rouge_score`` on first use.
"""

from __future__ import annotations

from obliviate.metrics.extraction import (
    el_cuts,
    extraction_likelihood,
    memorization_accuracy,
    ngram_overlap,
)
from obliviate.metrics.memorization import exact_memorization, extraction_strength
from obliviate.metrics.mia import (
    gradnorm_score,
    loss_score,
    mia_auc,
    min_k_plus_plus_score,
    min_k_score,
    privleak,
    privleak_muse,
    reference_score,
    zlib_score,
)
from obliviate.metrics.recovery import recovery
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
    "el_cuts",
    "exact_memorization",
    "extraction_likelihood",
    "extraction_strength",
    "forget_quality",
    "gradnorm_score",
    "loss_score",
    "memorization_accuracy",
    "mia_auc",
    "min_k_plus_plus_score",
    "min_k_score",
    "model_utility",
    "ngram_overlap",
    "normalized_probability",
    "privleak",
    "privleak_muse",
    "recovery",
    "reference_score",
    "rouge_l_f1",
    "rouge_l_recall",
    "truth_ratio",
    "truth_ratio_closer_to_one",
    "truth_ratio_true_better",
    "zlib_score",
]
