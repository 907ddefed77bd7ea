"""MA and EL_n (KU / ICU) pinned with hand-computed numbers (methods spec 3.5)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from obliviate.metrics import el_cuts, extraction_likelihood, memorization_accuracy, ngram_overlap

# --- memorisation accuracy ---------------------------------------------------------------------


def test_memorization_accuracy_per_item() -> None:
    # 3 of 4 positions correct -> 0.75; 1 of 2 -> 0.5; numpy bools accepted.
    got = memorization_accuracy([[1, 1, 0, 1], np.array([True, False])])
    np.testing.assert_allclose(got, [0.75, 0.5])


def test_memorization_accuracy_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        memorization_accuracy([[]])
    with pytest.raises(ValueError, match="booleans"):
        memorization_accuracy([[0, 2]])


# --- n-gram overlap ----------------------------------------------------------------------------


def test_ngram_overlap_counts_generated_ngrams_with_multiplicity() -> None:
    # Generated trigrams: (1,2,3) (2,3,1) (3,1,2) (1,2,3); reference (1..8) has 6 trigrams,
    # of which (1,2,3) appears; it is generated twice -> 2 / 6.
    assert ngram_overlap([1, 2, 3, 1, 2, 3], [1, 2, 3, 4, 5, 6, 7, 8], 3) == pytest.approx(1 / 3)
    # Unigrams: all 6 generated tokens are in {1..8} -> 6 / 8.
    assert ngram_overlap([1, 2, 3, 1, 2, 3], [1, 2, 3, 4, 5, 6, 7, 8], 1) == 0.75
    # A generation shorter than n has no n-grams -> 0 (the denominator is the reference's).
    assert ngram_overlap([1, 2], [1, 2, 3], 3) == 0.0
    assert ngram_overlap(np.array([4, 5, 6]), np.array([4, 5, 6]), 3) == 1.0


def test_ngram_overlap_bad_input() -> None:
    with pytest.raises(ValueError, match="fewer than n=3"):
        ngram_overlap([1, 2, 3], [1, 2], 3)
    with pytest.raises(ValueError, match="positive integer"):
        ngram_overlap([1], [1], 0)
    with pytest.raises(ValueError, match="integer token ids"):
        ngram_overlap([1.5], [1, 2], 1)
    with pytest.raises(ValueError, match="1-D"):
        ngram_overlap([[1, 2]], [1, 2], 1)


# --- extraction likelihood ---------------------------------------------------------------------

# T = 12 tokens, n = 3. Valid cuts t = first_cut .. T - n = 9.
X = list(range(1, 13))
# Cut t: continuation from x[:t]; overlap_3 against x[t:12] (12 - t tokens, 10 - t trigrams).
PARTIAL = {
    # x[6:] = 7..12, 4 trigrams; (7,8,9) hit, (8,9,0) (9,0,11) (0,11,12) miss -> 1/4
    6: [7, 8, 9, 0, 11, 12],
    # exact -> 1
    7: [8, 9, 10, 11, 12],
    # longer than T - t = 4 tokens: only [9,10,11,9] counts; (9,10,11) hit, (10,11,9) miss -> 1/2
    8: [9, 10, 11, 9, 10, 11],
    # stopped at EOS after 2 tokens: no trigram generated -> 0
    9: [10, 11],
    # T - t < n: no reference trigram, skipped (ignored even though present)
    10: [11, 12],
    11: [12],
}
# Cuts 1..5 reproduce the suffix exactly -> overlap 1 each.
FULL = {t: X[t:] for t in range(1, 6)} | PARTIAL


def test_el_cuts() -> None:
    assert el_cuts(12, 3) == [1, 2, 3, 4, 5, 6, 7, 8, 9]  # KU: T - n = 9 cuts
    assert el_cuts(12, 3, first_cut=6) == [6, 7, 8, 9]  # ICU: T - 6 - (n - 1) = 4 cuts
    assert el_cuts(200, 10, first_cut=150) == list(range(150, 191))  # ICU paper: 41 cuts
    assert el_cuts(2, 3) == []


def test_extraction_likelihood_icu_suffix_form() -> None:
    # (1/4 + 1 + 1/2 + 0) / (12 - 6 - (3 - 1)) = 1.75 / 4 = 0.4375
    assert extraction_likelihood(X, PARTIAL, n=3, first_cut=6) == pytest.approx(0.4375, abs=1e-15)


def test_extraction_likelihood_ku_form() -> None:
    # sum_{t=1}^{11} overlap_3(t) / (T - n) = (5 * 1 + 1.75 + 0 + 0) / 9 = 6.75 / 9 = 0.75
    assert extraction_likelihood(X, FULL, n=3) == pytest.approx(0.75, abs=1e-15)
    # numpy inputs and an unused cut 0 are fine
    cont = {k: np.array(v) for k, v in FULL.items()} | {0: X}
    assert extraction_likelihood(np.array(X), cont, n=3) == pytest.approx(0.75, abs=1e-15)


def test_extraction_likelihood_edge_cases() -> None:
    # No valid cut (T - first_cut < n) -> nan.
    assert math.isnan(extraction_likelihood([1, 2], {1: [2]}, n=3))
    assert math.isnan(extraction_likelihood(X, PARTIAL, n=3, first_cut=10))
    with pytest.raises(ValueError, match=r"lacks cuts \[1, 2, 3, 4, 5\]"):
        extraction_likelihood(X, PARTIAL, n=3)
    with pytest.raises(ValueError, match="first_cut"):
        extraction_likelihood(X, FULL, n=3, first_cut=0)
