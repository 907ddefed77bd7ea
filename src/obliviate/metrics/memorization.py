"""Token-level memorisation metrics from teacher-forced predictions.

Both take, per item, a boolean array over answer positions saying whether the teacher-forced argmax
equals the label there (spec 2.4). The caller decides which positions count; the TOFU evaluator
drops the final (EOS) position, as open-unlearning does (:func:`obliviate.evaluate.tofu.memorisation_flags`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = ["exact_memorization", "extraction_strength"]


def _rows(token_correct: Iterable[Iterable[bool]] | np.ndarray) -> list[np.ndarray]:
    """Return one non-empty 1-D boolean array per item, rejecting non-0/1 values."""
    rows: list[np.ndarray] = []
    for i, item in enumerate(token_correct):
        arr = np.asarray(item)
        if arr.ndim != 1:
            raise ValueError(
                f"token_correct[{i}] must be 1-D (one flag per answer position); got shape {arr.shape}"
            )
        if arr.size == 0:
            raise ValueError(f"token_correct[{i}] is empty: an item needs at least one answer position")
        if arr.dtype != bool:
            if not np.isin(arr, (0, 1)).all():
                raise ValueError(f"token_correct[{i}] must hold booleans (or 0/1)")
            arr = arr.astype(bool)
        rows.append(arr)
    return rows


def exact_memorization(token_correct: Iterable[Iterable[bool]] | np.ndarray) -> np.ndarray:
    """Per-item fraction of answer positions where the teacher-forced argmax equals the label.

    Spec 2.4 "Exact memorization": 1.0 means the model reproduces the whole answer token by token.
    """
    return np.array([row.mean() for row in _rows(token_correct)], dtype=float)


def extraction_strength(token_correct: Iterable[Iterable[bool]] | np.ndarray) -> np.ndarray:
    """Per-item ``1 - k/len`` with ``k`` the smallest index whose suffix ``[k:]`` is all correct.

    Spec 2.4 "Extraction strength": how much of the answer's tail the model reproduces given the
    preceding prefix. ``k`` ranges over ``0..len``: all correct gives 1.0, and a wrong last position
    gives ``k = len`` and so 0.0 (the empty suffix).

    This is the definition of Wang et al. (2025), where ``k = len`` (nothing extracted) is allowed.
    open-unlearning's loop stops at ``k = len - 1`` and so gives ``1/len`` when the last position is
    wrong; obliviate keeps 0.0 on purpose: an answer of which nothing is extracted scores the same
    whatever its length (with ``1/len`` a wrong 2-token answer would score 0.5, a wrong 50-token
    one 0.02), and the metric stays 0 for a model that reproduces nothing. The two agree on every
    item whose last scored position is right; otherwise obliviate is lower by ``1/len``.
    """
    out = []
    for row in _rows(token_correct):
        wrong = np.flatnonzero(~row)
        k = int(wrong[-1]) + 1 if wrong.size else 0
        out.append(1.0 - k / row.size)
    return np.array(out, dtype=float)
