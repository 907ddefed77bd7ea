"""TOFU metrics as pure functions over per-item numbers.

Every function takes per-question quantities that a model pass already produced (average answer-token
NLLs, truth ratios, the nine utility components) and returns numpy arrays or python floats. Keeping
the arithmetic apart from the model lets it be tested against hand-computed numbers and against the
TOFU authors' own evaluation logs.

Definitions follow ``shared/spec/metrics-and-baselines.md`` section 2.1 (open-unlearning's
implementation of TOFU). ``avg_nll`` always means the summed answer-token NLL divided by the number
of answer tokens, so ``exp(-avg_nll)`` is the length-normalised (per-token geometric mean) probability.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from scipy import stats

__all__ = [
    "MODEL_UTILITY_KEYS",
    "answer_probability",
    "forget_quality",
    "model_utility",
    "normalized_probability",
    "truth_ratio",
    "truth_ratio_closer_to_one",
    "truth_ratio_true_better",
]

#: The nine components of TOFU model utility, in TOFU order (spec 2.1, "Model utility").
MODEL_UTILITY_KEYS: tuple[str, ...] = (
    "retain_Q_A_Prob",
    "retain_Q_A_ROUGE",
    "retain_Truth_Ratio",
    "ra_Q_A_Prob_normalised",
    "ra_Q_A_ROUGE",
    "ra_Truth_Ratio",
    "wf_Q_A_Prob_normalised",
    "wf_Q_A_ROUGE",
    "wf_Truth_Ratio",
)

# Added to the normalised-probability denominator, as in open-unlearning, so it never divides by 0.
_NORM_EPS = 1e-10


def _as_1d(values: Iterable[float] | np.ndarray, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D float array, rejecting other shapes and NaN."""
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one number per item); got shape {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN at item(s) {np.flatnonzero(np.isnan(arr)).tolist()}")
    return arr


def _as_rows(values: Iterable[Iterable[float]] | np.ndarray, n_items: int, name: str) -> list[np.ndarray]:
    """Return ``values`` as one non-empty 1-D float array per item; rows may differ in length."""
    if isinstance(values, np.ndarray) and values.dtype != object and values.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (items x wrong answers) or a list of lists; got shape {values.shape}"
        )
    rows: list[np.ndarray] = []
    for i, row in enumerate(values):
        arr = np.asarray(row, dtype=float)
        if arr.ndim != 1:
            raise ValueError(f"{name}[{i}] must be a 1-D list of wrong-answer NLLs; got shape {arr.shape}")
        if arr.size == 0:
            raise ValueError(f"{name}[{i}] is empty: each item needs at least one wrong answer")
        if np.isnan(arr).any():
            raise ValueError(f"{name}[{i}] contains NaN")
        rows.append(arr)
    if len(rows) != n_items:
        raise ValueError(f"{name} has {len(rows)} items but the correct answers have {n_items}")
    return rows


def answer_probability(avg_nll: Iterable[float] | np.ndarray) -> np.ndarray:
    """Length-normalised answer probability ``exp(-avg_nll)`` per item.

    Spec 2.1 "Probability": dividing the NLL by the answer length before exponentiating makes long
    and short answers comparable (it is the per-token geometric mean probability). Used for
    ``forget_Q_A_Prob`` and ``retain_Q_A_Prob`` (the split value is the mean over items).
    """
    return np.exp(-_as_1d(avg_nll, "avg_nll"))


def normalized_probability(
    correct_avg_nll: Iterable[float] | np.ndarray,
    wrong_avg_nll: Iterable[Iterable[float]] | np.ndarray,
) -> np.ndarray:
    """Per-item ``P_true / (P_true + sum_j P_false_j + 1e-10)`` with each ``P = exp(-avg_nll)``.

    Spec 2.1 "Normalised probability" (``ra_`` / ``wf_Q_A_Prob_normalised``): the share of
    probability mass the model gives the correct answer among the correct and perturbed answers,
    which removes the effect of how likely the question's answers are overall. ``wrong_avg_nll`` is
    items x wrong answers; rows may have different lengths.
    """
    correct = _as_1d(correct_avg_nll, "correct_avg_nll")
    rows = _as_rows(wrong_avg_nll, correct.size, "wrong_avg_nll")
    p_true = np.exp(-correct)
    p_false = np.array([np.exp(-row).sum() for row in rows], dtype=float)
    return p_true / (p_true + p_false + _NORM_EPS)


def truth_ratio(
    correct_avg_nll: Iterable[float] | np.ndarray,
    wrong_avg_nll: Iterable[Iterable[float]] | np.ndarray,
) -> np.ndarray:
    """Per-item truth ratio ``R = exp(-mean_j wrong_j) / exp(-correct) = exp(correct - mean_j wrong_j)``.

    Spec 2.1 "Truth ratio": the geometric mean of the wrong-answer probabilities over the correct
    answer's probability (NLLs are averaged over wrong answers first). R < 1 means the model prefers
    the correct answer. "correct" is the paraphrased answer on forget/retain and the original answer
    on real authors / world facts. Rows of ``wrong_avg_nll`` may have different lengths.
    """
    correct = _as_1d(correct_avg_nll, "correct_avg_nll")
    rows = _as_rows(wrong_avg_nll, correct.size, "wrong_avg_nll")
    mean_wrong = np.array([row.mean() for row in rows], dtype=float)
    with np.errstate(over="ignore"):
        return np.exp(correct - mean_wrong)


def _check_ratios(ratios: Iterable[float] | np.ndarray) -> np.ndarray:
    arr = _as_1d(ratios, "truth ratios")
    if arr.size == 0:
        raise ValueError("truth ratios are empty: need at least one item to aggregate")
    if (arr < 0).any():
        raise ValueError("truth ratios must be >= 0 (they are ratios of probabilities)")
    return arr


def truth_ratio_closer_to_one(ratios: Iterable[float] | np.ndarray) -> float:
    """Forget-split aggregate ``mean(min(R, 1/R))`` (spec 2.1, ``closer_to_1_better``).

    A model that never saw the forget set has no preference between true and false answers, so R
    near 1 (score near 1) is the unlearning target in either direction.
    """
    arr = _check_ratios(ratios)
    with np.errstate(divide="ignore"):
        return float(np.mean(np.minimum(arr, 1.0 / arr)))


def truth_ratio_true_better(ratios: Iterable[float] | np.ndarray) -> float:
    """Retain / real-authors / world-facts aggregate ``mean(max(0, 1 - R))`` (spec 2.1, ``true_better``).

    On data the model should still know, a lower R (correct answer preferred) is better.
    """
    arr = _check_ratios(ratios)
    return float(np.mean(np.maximum(0.0, 1.0 - arr)))


def forget_quality(
    tr_model: Iterable[float] | np.ndarray,
    tr_retain: Iterable[float] | np.ndarray,
) -> float:
    """Forget quality: ``scipy.stats.ks_2samp(tr_model, tr_retain).pvalue`` (spec 2.1).

    A two-sample KS test of the model's per-question forget truth ratios against those of a model
    trained only on the retain set; a high p-value means the two are indistinguishable. KS depends
    only on ranks, so either truth-ratio orientation (R or 1/R) gives the same p-value.
    """
    model = _as_1d(tr_model, "tr_model")
    retain = _as_1d(tr_retain, "tr_retain")
    if model.size == 0 or retain.size == 0:
        raise ValueError(
            "forget_quality needs non-empty truth ratios for both the model "
            f"({model.size} given) and the retain model ({retain.size} given)"
        )
    return float(stats.ks_2samp(model, retain).pvalue)


def model_utility(values: Mapping[str, float] | Sequence[float]) -> float:
    """Model utility: harmonic mean of the nine TOFU numbers (spec 2.1, ``hm_aggregate``).

    The harmonic mean is dominated by the weakest component, so a model cannot buy utility on one
    split by destroying another; any zero component gives exactly 0.0. A Mapping must have exactly
    :data:`MODEL_UTILITY_KEYS`; a sequence must give the nine values in that order.
    """
    if isinstance(values, Mapping):
        missing = [k for k in MODEL_UTILITY_KEYS if k not in values]
        extra = sorted(str(k) for k in values if k not in MODEL_UTILITY_KEYS)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {missing}")
            if extra:
                parts.append(f"unexpected {extra}")
            raise ValueError(
                f"model_utility needs exactly the keys {list(MODEL_UTILITY_KEYS)}; " + ", ".join(parts)
            )
        named = [(k, values[k]) for k in MODEL_UTILITY_KEYS]
    else:
        if isinstance(values, (str, bytes)):
            raise ValueError("model_utility needs a mapping or a sequence of numbers, not a string")
        seq = list(values)
        if len(seq) != len(MODEL_UTILITY_KEYS):
            raise ValueError(
                f"model_utility needs {len(MODEL_UTILITY_KEYS)} values in the order "
                f"{list(MODEL_UTILITY_KEYS)}; got {len(seq)}"
            )
        named = list(zip(MODEL_UTILITY_KEYS, seq))

    nums: list[float] = []
    for key, raw in named:
        try:
            val = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"model_utility: {key} must be a number, got {raw!r}") from None
        if math.isnan(val) or math.isinf(val):
            raise ValueError(f"model_utility: {key} must be finite, got {val}")
        if val < 0:
            raise ValueError(f"model_utility: {key} must be >= 0, got {val}")
        nums.append(val)
    if any(v == 0.0 for v in nums):
        return 0.0
    return float(stats.hmean(nums))
