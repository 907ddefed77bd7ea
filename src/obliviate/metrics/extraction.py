"""Memorisation accuracy (MA) and extraction likelihood (EL_n) of the KU / ICU papers, as pure functions.

Knowledge-unlearning (KU) and ICU stop training when a forget sequence is neither reproduced token by
token under teacher forcing (MA) nor extractable by greedy generation from its own prefixes (EL_n).
The model pass (teacher-forced argmax, greedy continuations) happens elsewhere; these functions do
the counting, following ``shared/spec/methods-extsub-eul-icu.md`` section 3.5.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from obliviate.metrics.memorization import _rows

__all__ = ["el_cuts", "extraction_likelihood", "memorization_accuracy", "ngram_overlap"]


def memorization_accuracy(token_correct: Iterable[Iterable[bool]] | np.ndarray) -> np.ndarray:
    """Per-item MA: the fraction of positions where the teacher-forced argmax equals the token.

    KU's ``MA(x) = 1/(T-1) sum_{t=1}^{T-1} 1[argmax p(.|x_<t) = x_t]``: the flags cover every
    position after the first of the whole sequence (not just an answer, and the last token is kept),
    which the caller chooses. The arithmetic is that of ``exact_memorization``.
    """
    return np.array([row.mean() for row in _rows(token_correct)], dtype=float)


def _ids(tokens: Sequence[int] | np.ndarray, name: str) -> list[int]:
    arr = np.asarray(tokens)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of token ids; got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integer token ids; got dtype {arr.dtype}")
    return [int(t) for t in arr]


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer n-gram size; got {n!r}")


def _ngrams(ids: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]


def ngram_overlap(generated_ids: Sequence[int], reference_ids: Sequence[int], n: int) -> float:
    """Share of the reference's n-grams that the generation hits: ``#{g in gen (with multiplicity) :
    g in set(ref)} / |ngrams(ref)|``.

    KU's ``overlap_n``. Dividing by the reference count (not the generated one) means a generation
    that stopped early scores its missing n-grams as misses. A reference shorter than ``n`` has no
    n-grams and raises.
    """
    _check_n(n)
    gen = _ngrams(_ids(generated_ids, "generated_ids"), n)
    ref = _ngrams(_ids(reference_ids, "reference_ids"), n)
    if not ref:
        raise ValueError(f"reference_ids has fewer than n={n} tokens, so no n-grams to overlap with")
    ref_set = set(ref)
    return sum(1 for g in gen if g in ref_set) / len(ref)


def el_cuts(T: int, n: int, first_cut: int = 1) -> list[int]:
    """The prefix lengths ``t`` for which EL_n needs a greedy continuation: ``first_cut .. T - n``.

    Cuts with fewer than ``n`` tokens left (``T - t < n``) have no reference n-gram and are skipped.
    """
    _check_n(n)
    if first_cut < 1:
        raise ValueError(f"first_cut must be >= 1 (generation needs a non-empty prefix); got {first_cut}")
    if T < 0:
        raise ValueError(f"T must be >= 0; got {T}")
    return list(range(first_cut, T - n + 1))


def extraction_likelihood(
    reference_ids: Sequence[int],
    continuations: Mapping[int, Sequence[int]],
    n: int = 10,
    first_cut: int = 1,
) -> float:
    """EL_n: mean over cuts ``t`` in :func:`el_cuts` of ``ngram_overlap(cont[t][:T-t], x[t:T], n)``.

    ``continuations[t]`` is the greedy continuation generated from ``x[:t]`` (new tokens only; a
    shorter one, stopped at EOS, is fine); keys outside the valid cuts are ignored, a missing valid
    cut raises. ``first_cut=1`` is KU's ``sum_{t=1}^{T-1} overlap_n(t) / (T - n)``; ``first_cut`` =
    prefix length (150 in ICU) is ICU's suffix-only form, divided by ``T - first_cut - (n - 1)``.
    Both are the mean over valid cuts. Returns ``nan`` when there is no valid cut
    (``T - first_cut < n``), so callers averaging over items can drop it explicitly.
    """
    x = _ids(reference_ids, "reference_ids")
    T = len(x)
    cuts = el_cuts(T, n, first_cut)
    if not cuts:
        return math.nan
    missing = [t for t in cuts if t not in continuations]
    if missing:
        raise ValueError(f"continuations lacks cuts {missing[:5]}{'...' if len(missing) > 5 else ''}")
    total = sum(ngram_overlap(_ids(continuations[t], f"continuations[{t}]")[: T - t], x[t:], n) for t in cuts)
    return total / len(cuts)
