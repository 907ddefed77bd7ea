"""Membership-inference (MIA) scores, their ROC AUC, and privleak, as pure functions.

An unlearned model should treat the forget set like data it never saw, so a membership attack that
separates forget items from never-seen holdout items measures what unlearning left behind. Model
passes produce per-item numbers (average NLLs, token log-probs, gradient norms); these functions
turn them into scores, an AUC, and privleak, so the arithmetic can be tested against hand-computed
numbers.

Orientation follows open-unlearning (spec 2.3): **every score is loss-like, higher = less
member-like**, and :func:`mia_auc` labels forget = 0, holdout = 1, so AUC near 1 means the forget set
is still memorised and a retain (never-trained-on-forget) model sits near 0.5.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import stats

from obliviate.metrics.tofu import _as_1d

__all__ = [
    "gradnorm_score",
    "loss_score",
    "mia_auc",
    "min_k_plus_plus_score",
    "min_k_score",
    "privleak",
    "privleak_muse",
    "reference_score",
    "zlib_score",
]

# open-unlearning clamps the Min-K++ *variance* at 1e-6 before the square root, so sigma >= 1e-3.
_MINKPP_VAR_FLOOR = 1e-6


def _float_rows(values: Iterable[Iterable[float]], name: str) -> list[np.ndarray]:
    """Return one non-empty 1-D float array per item, rejecting NaN."""
    rows: list[np.ndarray] = []
    for i, item in enumerate(values):
        arr = np.asarray(item, dtype=float)
        if arr.ndim != 1:
            raise ValueError(f"{name}[{i}] must be 1-D (one number per token/parameter); got {arr.shape}")
        if arr.size == 0:
            raise ValueError(f"{name}[{i}] is empty: an item needs at least one value to score")
        if np.isnan(arr).any():
            raise ValueError(f"{name}[{i}] contains NaN")
        rows.append(arr)
    return rows


def _n_lowest(n: int, k: float) -> int:
    """How many of ``n`` values Min-K% averages: ``max(1, floor(k * n))``, as open-unlearning."""
    if not 0.0 < k <= 1.0:
        raise ValueError(f"k must be in (0, 1] (the fraction of lowest tokens to average); got {k}")
    return max(1, int(n * k))


def _mean_lowest(row: np.ndarray, k: float) -> float:
    return float(np.sort(row)[: _n_lowest(row.size, k)].mean())


def loss_score(avg_nll: Iterable[float] | np.ndarray) -> np.ndarray:
    """LOSS attack: the item's average answer-token NLL (members have lower loss)."""
    return _as_1d(avg_nll, "avg_nll")


def zlib_score(avg_nll: Iterable[float] | np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """ZLib attack: ``avg_nll / len(zlib.compress(text.encode("utf-8")))``.

    Dividing by the compressed length discounts text that is easy for any model (repetitive, low
    entropy), so a low loss counts as evidence of membership only when the text is not trivially
    predictable. ``texts`` are the decoded scored spans (open-unlearning decodes the answer).
    """
    nll = _as_1d(avg_nll, "avg_nll")
    if isinstance(texts, str) or len(texts) != nll.size:
        raise ValueError(f"zlib_score needs one text per item: {nll.size} NLLs, texts={type(texts).__name__}")
    sizes = np.array([len(zlib.compress(t.encode("utf-8"))) for t in texts], dtype=float)
    return nll / sizes


def min_k_score(token_logps: Iterable[Iterable[float]], k: float = 0.4) -> np.ndarray:
    """Min-K% attack: minus the mean of the lowest ``max(1, floor(k * n))`` token log-probs.

    A non-member has a few surprising tokens with very low probability; averaging only those makes
    the score less sensitive to the many easy tokens every model predicts. When ``floor(k * n) == 0``
    (short items) open-unlearning averages the single lowest token (``max(1, int(n * k))`` in
    ``mia/min_k.py``), and so does this; MUSE's original code would take the mean of nothing (NaN).
    Items with no tokens raise here (open-unlearning silently scores them 0).
    """
    return np.array([-_mean_lowest(row, k) for row in _float_rows(token_logps, "token_logps")], dtype=float)


def min_k_plus_plus_score(
    token_logps: Iterable[Iterable[float]],
    mu: Iterable[Iterable[float]],
    sigma: Iterable[Iterable[float]],
    k: float = 0.4,
) -> np.ndarray:
    """Min-K%++ attack: minus the mean of the lowest ``max(1, floor(k * n))`` of ``z_t``.

    ``z_t = (log p(x_t) - mu_t) / sigma_t`` with ``mu_t``, ``sigma_t`` the mean and std of ``log p``
    under the model's own next-token distribution (see ``logprobs.token_logprob_stats``): it asks
    whether the token is unusually likely *for that position*, which calibrates away positions where
    every continuation is easy or hard. Like open-unlearning (``mia/min_k_plus_plus.py``) the floor
    is on the variance, ``sigma_t = sqrt(max(sigma_t**2, 1e-6))``, i.e. ``sigma_t >= 1e-3``.
    """
    lp = _float_rows(token_logps, "token_logps")
    mus = _float_rows(mu, "mu")
    sigmas = _float_rows(sigma, "sigma")
    if not len(lp) == len(mus) == len(sigmas):
        raise ValueError(
            f"token_logps, mu, sigma must have equal item counts; got {len(lp)}, {len(mus)}, {len(sigmas)}"
        )
    out = []
    for i, (x, m, s) in enumerate(zip(lp, mus, sigmas)):
        if not x.shape == m.shape == s.shape:
            raise ValueError(f"item {i}: token_logps, mu, sigma lengths differ: {x.size}, {m.size}, {s.size}")
        z = (x - m) / np.sqrt(np.maximum(s * s, _MINKPP_VAR_FLOOR))
        out.append(-_mean_lowest(z, k))
    return np.array(out, dtype=float)


def reference_score(
    avg_nll: Iterable[float] | np.ndarray, reference_avg_nll: Iterable[float] | np.ndarray
) -> np.ndarray:
    """Reference attack: ``avg_nll - reference_avg_nll`` (MUSE default reference: the retrain model).

    Subtracting a reference model's loss removes how hard the text is in general, leaving how much
    more the target model likes it.
    """
    nll = _as_1d(avg_nll, "avg_nll")
    ref = _as_1d(reference_avg_nll, "reference_avg_nll")
    if ref.shape != nll.shape:
        raise ValueError(f"avg_nll has {nll.size} items but reference_avg_nll has {ref.size}")
    return nll - ref


def gradnorm_score(param_grad_norms: Iterable[Iterable[float]]) -> np.ndarray:
    """GradNorm attack: per item, the mean over parameter tensors of each tensor's gradient 2-norm.

    Members sit near a loss minimum, so their per-sample gradients are small. Input rows are the
    per-parameter norms from a batch-1 backward pass of ``-mean token log-prob`` (done elsewhere).
    """
    rows = _float_rows(param_grad_norms, "param_grad_norms")
    for i, row in enumerate(rows):
        if (row < 0).any():
            raise ValueError(f"param_grad_norms[{i}] has a negative value; norms are >= 0")
    return np.array([row.mean() for row in rows], dtype=float)


def mia_auc(
    forget_scores: Iterable[float] | np.ndarray, holdout_scores: Iterable[float] | np.ndarray
) -> float:
    """ROC AUC of the scores with forget = 0, holdout = 1: ``P(holdout > forget) + P(tie) / 2``.

    Computed from average ranks (Mann-Whitney U), so it equals ``roc_auc_score`` exactly, ties
    included. With loss-like scores, near 1 = forget still memorised, near 0.5 = indistinguishable
    from unseen data (a retain model), near 0 = forget looks *less* familiar than unseen data.
    """
    forget = _as_1d(forget_scores, "forget_scores")
    holdout = _as_1d(holdout_scores, "holdout_scores")
    if forget.size == 0 or holdout.size == 0:
        raise ValueError(f"mia_auc needs non-empty scores: {forget.size} forget, {holdout.size} holdout")
    ranks = stats.rankdata(np.concatenate([forget, holdout]))
    n_f, n_h = forget.size, holdout.size
    u_holdout = ranks[n_f:].sum() - n_h * (n_h + 1) / 2.0
    return float(u_holdout / (n_f * n_h))


def _check_auc(value: float, name: str) -> float:
    v = float(value)
    if math.isnan(v) or not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be an AUC in [0, 1]; got {value}")
    return v


def privleak(auc: float, reference_auc: float) -> float:
    """open-unlearning privleak: ``((1 - auc) - (1 - reference_auc)) / (1 - reference_auc) * 100``.

    Both AUCs come from :func:`mia_auc` (open-unlearning orientation); ``reference_auc`` is the
    retain model's AUC on the same forget/holdout split (open-unlearning falls back to 0.5). 0 = the
    model is as private as the retain model; negative (down to -100 for ``reference_auc`` 0.5) =
    under-unlearned, forget still more member-like; positive = over-unlearned, forget now looks
    *less* familiar than unseen text, itself a detectable signal. Unbounded above as ref -> 1.
    """
    a = _check_auc(auc, "auc")
    r = _check_auc(reference_auc, "reference_auc")
    if r == 1.0:
        raise ValueError("reference_auc = 1 makes privleak divide by zero (1 - reference_auc = 0)")
    return ((1.0 - a) - (1.0 - r)) / (1.0 - r) * 100.0


def privleak_muse(auc: float, retrain_auc: float) -> float:
    """Original MUSE privleak: ``(auc - retrain_auc) / retrain_auc * 100``.

    MUSE's AUC is oriented the other way (score ``-ppl``, holdout positive), so it is
    ``1 - mia_auc(...)``: near 0 = memorised. ``retrain_auc`` is the retain (retrain) model's AUC in
    the same orientation, e.g. MUSE's constants 0.4772 (News) and 0.5393 (Books) for Min-40%. Signs
    match :func:`privleak`: negative = under-unlearned, positive = over-unlearned, and
    ``privleak(a, r) == privleak_muse(1 - a, 1 - r)``.
    """
    a = _check_auc(auc, "auc")
    r = _check_auc(retrain_auc, "retrain_auc")
    if r == 0.0:
        raise ValueError("retrain_auc = 0 makes privleak_muse divide by zero")
    return (a - r) / r * 100.0
