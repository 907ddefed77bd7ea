"""Unit tests pinning every metric formula with hand-computed numbers (spec section 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from obliviate.metrics import (
    MODEL_UTILITY_KEYS,
    answer_probability,
    exact_memorization,
    extraction_strength,
    forget_quality,
    model_utility,
    normalized_probability,
    rouge_l_f1,
    rouge_l_recall,
    truth_ratio,
    truth_ratio_closer_to_one,
    truth_ratio_true_better,
)

LN2 = math.log(2.0)
LN4 = math.log(4.0)


# --- answer probability -----------------------------------------------------------------------


def test_answer_probability_is_exp_of_minus_avg_nll() -> None:
    # exp(0) = 1, exp(-ln 2) = 1/2, exp(-1) = 0.36787944117144233
    got = answer_probability([0.0, LN2, 1.0])
    np.testing.assert_allclose(got, [1.0, 0.5, 0.36787944117144233], rtol=1e-12)


def test_answer_probability_rejects_nan_and_2d() -> None:
    with pytest.raises(ValueError, match="NaN"):
        answer_probability([0.1, float("nan")])
    with pytest.raises(ValueError, match="1-D"):
        answer_probability([[0.1, 0.2]])


# --- normalised probability -------------------------------------------------------------------


def test_normalized_probability_rectangular() -> None:
    # item 0: P_true = 1, P_false = 1/2 + 1/2 = 1  -> 1 / 2
    # item 1: P_true = 1/2, P_false = 1/4 + 1/4 = 1/2 -> 1/2 / 1 = 1/2
    # item 2: P_true = 1/4, P_false = 1/2 + 1/4 = 3/4 -> 1/4 / 1 = 1/4
    got = normalized_probability([0.0, LN2, LN4], [[LN2, LN2], [LN4, LN4], [LN2, LN4]])
    np.testing.assert_allclose(got, [0.5, 0.5, 0.25], rtol=1e-9)


def test_normalized_probability_ragged_rows() -> None:
    # item 0: P_true = 1/2, one wrong with P = 1/2 -> 1/2
    # item 1: P_true = 1/2, wrong P = 1/2, 1/4, 1/4 -> 0.5 / (0.5 + 1.0) = 1/3
    got = normalized_probability([LN2, LN2], [[LN2], [LN2, LN4, LN4]])
    np.testing.assert_allclose(got, [0.5, 1.0 / 3.0], rtol=1e-9)


def test_normalized_probability_epsilon_keeps_zero_mass_finite() -> None:
    # All probabilities underflow to 0: 0 / (0 + 0 + 1e-10) = 0, not NaN.
    got = normalized_probability([np.inf], [[np.inf, np.inf]])
    assert got.tolist() == [0.0]


def test_normalized_probability_bad_input() -> None:
    with pytest.raises(ValueError, match="items"):
        normalized_probability([0.0, 0.0], [[1.0]])
    with pytest.raises(ValueError, match="empty"):
        normalized_probability([0.0], [[]])
    with pytest.raises(ValueError, match="2-D"):
        normalized_probability([0.0, 1.0], np.array([1.0, 2.0]))


# --- truth ratio -------------------------------------------------------------------------------


def test_truth_ratio_hand_values() -> None:
    # correct 1.0, wrong [0.5, 1.5] -> mean wrong 1.0 -> R = exp(1.0 - 1.0) = 1
    # correct 2.0, wrong [1.0, 1.0] -> R = exp(2.0 - 1.0) = e
    # correct 0.0, wrong [ln 2, ln 2] -> R = exp(-ln 2) = 1/2
    got = truth_ratio([1.0, 2.0, 0.0], [[0.5, 1.5], [1.0, 1.0], [LN2, LN2]])
    np.testing.assert_allclose(got, [1.0, 2.718281828459045, 0.5], rtol=1e-12)


def test_truth_ratio_averages_nll_not_probabilities() -> None:
    # wrong NLLs 0 and 2: mean NLL 1 -> R = exp(1 - 1) = 1 (geometric mean of wrong probs);
    # averaging probabilities instead would give (1 + e^-2)/2 / e^-1 = 1.5431, which must not happen.
    got = truth_ratio([1.0], [[0.0, 2.0]])
    assert got[0] == pytest.approx(1.0, rel=1e-12)


def test_truth_ratio_ragged_numpy_object_rows() -> None:
    wrong = np.empty(2, dtype=object)
    wrong[0] = [1.0]
    wrong[1] = [0.0, 1.0, 2.0]
    got = truth_ratio([1.0, 0.0], wrong)
    np.testing.assert_allclose(got, [1.0, math.exp(-1.0)], rtol=1e-12)


def test_truth_ratio_aggregates() -> None:
    ratios = [0.5, 2.0, 1.0, 0.25]
    # min(R, 1/R) = 0.5, 0.5, 1, 0.25 -> 2.25 / 4
    assert truth_ratio_closer_to_one(ratios) == pytest.approx(0.5625, rel=1e-12)
    # max(0, 1 - R) = 0.5, 0, 0, 0.75 -> 1.25 / 4
    assert truth_ratio_true_better(ratios) == pytest.approx(0.3125, rel=1e-12)


def test_truth_ratio_aggregates_extremes() -> None:
    # R = 0 or R = inf: min(R, 1/R) = 0; max(0, 1 - inf) = 0 and max(0, 1 - 0) = 1.
    assert truth_ratio_closer_to_one([0.0, np.inf]) == 0.0
    assert truth_ratio_true_better([0.0, np.inf]) == 0.5


def test_truth_ratio_aggregates_bad_input() -> None:
    for agg in (truth_ratio_closer_to_one, truth_ratio_true_better):
        with pytest.raises(ValueError, match="empty"):
            agg([])
        with pytest.raises(ValueError, match=">= 0"):
            agg([0.5, -1.0])
        with pytest.raises(ValueError, match="NaN"):
            agg([float("nan")])


# --- forget quality -----------------------------------------------------------------------------


def test_forget_quality_fully_separated_samples() -> None:
    # [1,2,3] vs [4,5,6]: D = 1. Of the C(6,3) = 20 equally likely orderings of the pooled ranks,
    # only the two fully separated ones reach D = 1, so the exact two-sided p = 2/20 = 0.1.
    assert forget_quality([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(0.1, rel=1e-9)
    # Same for 4 vs 4: p = 2 / C(8,4) = 2/70.
    assert forget_quality([1, 2, 3, 4], [5, 6, 7, 8]) == pytest.approx(2.0 / 70.0, rel=1e-9)


def test_forget_quality_interleaved_samples_give_one() -> None:
    # [1,3,5] vs [2,4,6]: D = 1/3, and every ordering has D >= 1/3 (the first pooled value
    # alone opens a gap of 1/3), so p = 20/20 = 1.
    assert forget_quality([1.0, 3.0, 5.0], [2.0, 4.0, 6.0]) == pytest.approx(1.0, rel=1e-12)


def test_forget_quality_invariant_to_reciprocal() -> None:
    # x -> 1/x reverses ranks in both samples alike, so D and p are unchanged (spec 2.1).
    a = np.array([0.2, 0.5, 0.9, 1.3])
    b = np.array([0.4, 1.1, 2.0, 3.0, 0.7])
    assert forget_quality(a, b) == pytest.approx(forget_quality(1 / a, 1 / b), rel=1e-12)


def test_forget_quality_empty_raises() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        forget_quality([], [1.0, 2.0])
    with pytest.raises(ValueError, match="non-empty"):
        forget_quality([1.0], [])


# --- model utility ------------------------------------------------------------------------------


def test_model_utility_keys_in_tofu_order() -> None:
    assert MODEL_UTILITY_KEYS == (
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


def test_model_utility_harmonic_mean_sequence_and_mapping() -> None:
    values = [1.0, 0.5, 0.25] * 3
    # reciprocals: 3 * (1 + 2 + 4) = 21 -> 9 / 21 = 3/7
    assert model_utility(values) == pytest.approx(3.0 / 7.0, rel=1e-12)
    as_map = dict(zip(MODEL_UTILITY_KEYS, values))
    assert model_utility(as_map) == pytest.approx(0.42857142857142855, rel=1e-12)
    # all equal -> that value
    assert model_utility([0.6] * 9) == pytest.approx(0.6, rel=1e-12)


def test_model_utility_zero_component_gives_exact_zero() -> None:
    values = [0.9] * 9
    values[4] = 0.0
    assert model_utility(values) == 0.0
    assert model_utility(dict(zip(MODEL_UTILITY_KEYS, values))) == 0.0


def test_model_utility_bad_input() -> None:
    good = dict.fromkeys(MODEL_UTILITY_KEYS, 0.5)
    with pytest.raises(ValueError, match="must be >= 0"):
        model_utility({**good, "ra_Q_A_ROUGE": -0.1})
    with pytest.raises(ValueError, match="finite"):
        model_utility([0.5] * 8 + [float("nan")])
    missing = dict(good)
    del missing["wf_Truth_Ratio"]
    with pytest.raises(ValueError, match="wf_Truth_Ratio"):
        model_utility(missing)
    with pytest.raises(ValueError, match="forget_Q_A_Prob"):
        model_utility({**good, "forget_Q_A_Prob": 0.5})
    with pytest.raises(ValueError, match="9 values"):
        model_utility([0.5] * 8)


# --- ROUGE-L ------------------------------------------------------------------------------------


def test_rouge_l_recall_and_f1_known_lcs() -> None:
    ref = "the cat sat on the mat"
    pred = "the cat on mat"
    # LCS = "the cat on mat" = 4 tokens; recall = 4/6, precision = 4/4,
    # F1 = 2 * (2/3 * 1) / (2/3 + 1) = 0.8
    assert rouge_l_recall([pred], [ref]) == [pytest.approx(4.0 / 6.0, rel=1e-12)]
    assert rouge_l_f1([pred], [ref]) == [pytest.approx(0.8, rel=1e-12)]


def test_rouge_l_uses_stemmer_and_normalises_case() -> None:
    # Porter stemming maps running -> run, dogs -> dog; case and punctuation are dropped.
    assert rouge_l_recall(["run dog", "The Cat."], ["running dogs", "the cat"]) == [1.0, 1.0]
    # Disjoint tokens -> 0.
    assert rouge_l_recall(["alpha"], ["beta gamma"]) == [0.0]


def test_rouge_l_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="pair up"):
        rouge_l_recall(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="pair up"):
        rouge_l_f1([], ["a"])
    with pytest.raises(ValueError, match="single string"):
        rouge_l_recall("abc", "abc")


# --- memorisation -------------------------------------------------------------------------------


def test_exact_memorization_fractions() -> None:
    got = exact_memorization(
        [
            np.array([True, False, True, True]),  # 3/4
            [False, False, True],  # 1/3
            [1, 1],  # 0/1 ints accepted -> 1
            [False],  # 0
        ]
    )
    np.testing.assert_allclose(got, [0.75, 1.0 / 3.0, 1.0, 0.0], rtol=1e-12)


def test_extraction_strength_suffix_rule() -> None:
    got = extraction_strength(
        [
            [True, True, True, True],  # k = 0 -> 1
            [False, True, True, True],  # k = 1 -> 0.75
            [True, False, True, True],  # k = 2 -> 0.5
            [False, True, False, True, True],  # k = 3 -> 1 - 3/5 = 0.4
            [True, True, True, False],  # last wrong: k = 4 -> 0
            [True],  # 1
            [False],  # 0
        ]
    )
    np.testing.assert_allclose(got, [1.0, 0.75, 0.5, 0.4, 0.0, 1.0, 0.0], rtol=1e-12)


def test_extraction_strength_accepts_2d_array() -> None:
    arr = np.array([[True, True], [False, True]])
    np.testing.assert_allclose(extraction_strength(arr), [1.0, 0.5])
    np.testing.assert_allclose(exact_memorization(arr), [1.0, 0.5])


def test_memorization_bad_input() -> None:
    for fn in (exact_memorization, extraction_strength):
        with pytest.raises(ValueError, match="empty"):
            fn([[True], []])
        with pytest.raises(ValueError, match="booleans"):
            fn([[0, 2]])
        with pytest.raises(ValueError, match="1-D"):
            fn([[[True]]])
