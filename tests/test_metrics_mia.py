"""MIA scores, AUC and privleak pinned with hand-computed numbers (spec 2.2-2.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from obliviate.logprobs import token_logprob_stats
from obliviate.metrics import (
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

LN2 = math.log(2.0)
LN3 = math.log(3.0)


# --- token_logprob_stats (Min-K++ statistics) -------------------------------------------------


def _three_token_batch() -> tuple[torch.Tensor, torch.Tensor]:
    # Vocabulary of 3. Position 0 logits (0, 0, ln 2) -> p = (1/4, 1/4, 1/2),
    # position 1 logits (0, 0, 0) -> p = (1/3, 1/3, 1/3); position 2 is dropped by the shift.
    logits = torch.tensor([[[0.0, 0.0, LN2], [0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]])
    logits = torch.cat([logits, logits])
    # Row 0 labels after the shift: (2, 0); row 1: (masked, 1).
    labels = torch.tensor([[-100, 2, 0], [-100, -100, 1]])
    return logits, labels


def test_token_logprob_stats_three_token_vocab() -> None:
    logp, mu, sigma, mask = token_logprob_stats(*_three_token_batch())
    # Position 0, label 2: log p = log 1/2 = -L (L = ln 2).
    #   mu = 2 * 1/4 * (-2L) + 1/2 * (-L) = -1.5 L
    #   E[(log p)^2] = 2 * 1/4 * 4L^2 + 1/2 * L^2 = 2.5 L^2 -> var = 2.5 L^2 - 2.25 L^2 = 0.25 L^2
    #   sigma = 0.5 L
    # Position 1, label 0: log p = -ln 3 = mu, and every log p is equal, so sigma = 0.
    assert mask.tolist() == [[True, True], [False, True]]
    assert logp.dtype == mu.dtype == sigma.dtype == torch.float32
    np.testing.assert_allclose(logp[0].numpy(), [-LN2, -LN3], atol=1e-6)
    np.testing.assert_allclose(mu[0].numpy(), [-1.5 * LN2, -LN3], atol=1e-6)
    np.testing.assert_allclose(sigma[0].numpy(), [0.5 * LN2, 0.0], atol=1e-3)  # sqrt of float32 noise
    # Row 1: masked position is zeroed; position 1, label 1: log p = -ln 3.
    np.testing.assert_allclose(logp[1].numpy(), [0.0, -LN3], atol=1e-6)
    np.testing.assert_allclose(mu[1].numpy(), [0.0, -LN3], atol=1e-6)


def test_token_logprob_stats_casts_bf16_to_float32() -> None:
    logits, labels = _three_token_batch()
    logp, mu, sigma, _ = token_logprob_stats(logits.to(torch.bfloat16), labels)
    assert logp.dtype == mu.dtype == sigma.dtype == torch.float32


def test_token_logprob_stats_survives_minus_inf_logits() -> None:
    # Logits (0, 0, -inf): p = (1/2, 1/2, 0); the 0 * -inf term must count as 0, not nan.
    # mu = -ln 2, sigma = 0.
    logits = torch.tensor([[[0.0, 0.0, -math.inf], [0.0, 0.0, 0.0]]])
    logp, mu, sigma, _ = token_logprob_stats(logits, torch.tensor([[-100, 1]]))
    np.testing.assert_allclose([logp.item(), mu.item(), sigma.item()], [-LN2, -LN2, 0.0], atol=1e-3)


def test_stats_feed_min_k_plus_plus() -> None:
    logp, mu, sigma, _ = token_logprob_stats(*_three_token_batch())
    # Row 0: z_0 = (-L + 1.5 L) / 0.5 L = 1; z_1 = (-ln3 + ln3) / 1e-3 ~ 0 (sigma floored at 1e-3).
    # k = 1 averages both: score = -(1 + 0) / 2 = -0.5.
    got = min_k_plus_plus_score([logp[0].numpy()], [mu[0].numpy()], [sigma[0].numpy()], k=1.0)
    np.testing.assert_allclose(got, [-0.5], atol=1e-3)


# --- LOSS / ZLib / reference / GradNorm ----------------------------------------------------------


def test_loss_score_is_avg_nll() -> None:
    got = loss_score([0.5, 2.0])
    assert got.dtype == np.float64
    assert got.tolist() == [0.5, 2.0]


def test_zlib_score_divides_by_compressed_length() -> None:
    # zlib.compress(b"hello world") is 19 bytes: 2-byte header (78 9c) + 4-byte Adler-32 + a
    # fixed-Huffman deflate block of 3 (block header) + 11 literals * 8 + 7 (end code) = 98 bits
    # -> 13 bytes. The empty string: 3 + 7 = 10 bits -> 2 bytes, so 8 bytes in all.
    # 1.9 / 19 = 0.1, 2.0 / 8 = 0.25.
    got = zlib_score([1.9, 2.0], ["hello world", ""])
    np.testing.assert_allclose(got, [0.1, 0.25], rtol=1e-12)


def test_zlib_score_bad_input() -> None:
    with pytest.raises(ValueError, match="one text per item"):
        zlib_score([1.0, 2.0], ["only one"])
    with pytest.raises(ValueError, match="one text per item"):
        zlib_score([1.0], "a string is not a list of texts")


def test_reference_score_subtracts_reference_loss() -> None:
    # 2.0 - 1.5 = 0.5; 1.0 - 1.5 = -0.5
    np.testing.assert_allclose(reference_score([2.0, 1.0], [1.5, 1.5]), [0.5, -0.5])
    with pytest.raises(ValueError, match="items"):
        reference_score([2.0, 1.0], [1.5])


def test_gradnorm_score_is_mean_over_parameters() -> None:
    # (1 + 2 + 3) / 3 = 2; one parameter: 0.5
    np.testing.assert_allclose(gradnorm_score([[1.0, 2.0, 3.0], [0.5]]), [2.0, 0.5])
    with pytest.raises(ValueError, match="negative"):
        gradnorm_score([[1.0, -1.0]])
    with pytest.raises(ValueError, match="empty"):
        gradnorm_score([[]])


# --- Min-K% / Min-K%++ ------------------------------------------------------------------------


def test_min_k_score() -> None:
    # item 0: n = 5, floor(0.4 * 5) = 2 lowest: -5, -4 -> -mean = 4.5
    # item 1: n = 2, floor(0.8) = 0 -> max(1, 0) = 1 lowest (open-unlearning): -3 -> 3.0
    # item 2: n = 1 -> 2.0
    got = min_k_score([[-1.0, -2.0, -3.0, -4.0, -5.0], [-0.5, -3.0], np.array([-2.0])])
    np.testing.assert_allclose(got, [4.5, 3.0, 2.0], rtol=1e-12)
    # k = 1 averages every token: (1 + 2 + 3) / 3 = 2
    np.testing.assert_allclose(min_k_score([[-3.0, -1.0, -2.0]], k=1.0), [2.0])


def test_min_k_score_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        min_k_score([[-1.0], []])
    with pytest.raises(ValueError, match="NaN"):
        min_k_score([[-1.0, float("nan")]])
    with pytest.raises(ValueError, match="k must be"):
        min_k_score([[-1.0]], k=0.0)
    with pytest.raises(ValueError, match="1-D"):
        min_k_score([[[-1.0]]])


def test_min_k_plus_plus_score() -> None:
    # item 0: mu = -2, sigma = 2 -> z = (0.5, 0, -0.5, -1, -1.5); 2 lowest: -1.5, -1 -> 1.25
    # item 1: sigma = 0 is floored at sqrt(1e-6) = 1e-3 (variance floor, as open-unlearning):
    #   n = 2 -> 1 lowest; z = (-1.002 + 1) / 1e-3 = -2 -> 2.0
    # item 2: sigma = 5e-4 (variance 2.5e-7 < 1e-6) is floored too: z = -0.001 / 1e-3 = -1 -> 1.0
    # item 3: sigma = 0.01 (variance 1e-4) is kept: z = -0.001 / 0.01 = -0.1 -> 0.1
    logps = [[-1.0, -2.0, -3.0, -4.0, -5.0], [-1.002, -1.0], [-1.001], [-1.001]]
    mu = [[-2.0] * 5, [-1.0, -1.0], [-1.0], [-1.0]]
    sigma = [[2.0] * 5, [0.0, 0.0], [5e-4], [0.01]]
    got = min_k_plus_plus_score(logps, mu, sigma)
    np.testing.assert_allclose(got, [1.25, 2.0, 1.0, 0.1], rtol=1e-9)


def test_min_k_plus_plus_bad_input() -> None:
    with pytest.raises(ValueError, match="item counts"):
        min_k_plus_plus_score([[-1.0]], [[-1.0], [-1.0]], [[1.0]])
    with pytest.raises(ValueError, match="lengths differ"):
        min_k_plus_plus_score([[-1.0, -2.0]], [[-1.0]], [[1.0, 1.0]])


# --- AUC ---------------------------------------------------------------------------------------


def test_mia_auc_with_a_tie() -> None:
    # forget (label 0): 1, 2, 3; holdout (label 1): 2, 4. Pairs (holdout, forget):
    # h = 2: > 1 (1), = 2 (1/2), < 3 (0); h = 4: > all three (3). U = 4.5 of 6 pairs -> 0.75.
    # Ranks of (1, 2, 3 | 2, 4) are (1, 2.5, 4 | 2.5, 5): 7.5 - 2*3/2 = 4.5.
    assert mia_auc([1.0, 2.0, 3.0], [2.0, 4.0]) == pytest.approx(0.75, abs=1e-15)


def test_mia_auc_orientation() -> None:
    # Forget losses all below holdout: still memorised -> 1; reversed -> 0; all tied -> 1/2.
    assert mia_auc([0.1, 0.2], [0.5, 0.9]) == 1.0
    assert mia_auc([0.5, 0.9], [0.1, 0.2]) == 0.0
    assert mia_auc([1.0, 1.0], [1.0]) == 0.5


def test_mia_auc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    f = rng.integers(0, 6, size=17).astype(float)  # small integers -> many ties
    h = rng.integers(0, 6, size=11).astype(float)
    pairs = (h[:, None] > f[None, :]) + 0.5 * (h[:, None] == f[None, :])
    assert mia_auc(f, h) == pytest.approx(pairs.mean(), abs=1e-12)


def test_mia_auc_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        mia_auc([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        mia_auc([1.0, float("nan")], [1.0])


# --- privleak ------------------------------------------------------------------------------------


def test_privleak_open_unlearning_form() -> None:
    # ((1 - 0.8) - (1 - 0.5)) / (1 - 0.5) * 100 = (0.2 - 0.5) / 0.5 * 100 = -60  (under-unlearned)
    # ((1 - 0.25) - 0.5) / 0.5 * 100 = 50                                           (over-unlearned)
    assert privleak(0.8, 0.5) == pytest.approx(-60.0)
    assert privleak(0.25, 0.5) == pytest.approx(50.0)
    assert privleak(0.6, 0.6) == 0.0
    # A retain-model AUC near 1 makes the denominator small: ((1 - 2e-5) - 0.02) / 0.02 * 100 = 4899.9
    assert privleak(2e-5, 0.98) == pytest.approx(4899.9, rel=1e-9)


def test_privleak_muse_form_and_equivalence() -> None:
    # (0.2 - 0.5) / 0.5 * 100 = -60, the same as privleak(0.8, 0.5): MUSE AUC = 1 - ours.
    assert privleak_muse(0.2, 0.5) == pytest.approx(-60.0)
    assert privleak_muse(0.2, 0.5) == pytest.approx(privleak(0.8, 0.5))
    # MUSE News, AUC_retrain = 0.4772: (0.001 - 0.4772) / 0.4772 * 100 = -99.790444...
    assert privleak_muse(0.001, 0.4772) == pytest.approx(-99.79044425817267, rel=1e-12)


def test_privleak_bad_input() -> None:
    with pytest.raises(ValueError, match="divide by zero"):
        privleak(0.5, 1.0)
    with pytest.raises(ValueError, match="divide by zero"):
        privleak_muse(0.5, 0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        privleak(1.5, 0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        privleak_muse(float("nan"), 0.5)
