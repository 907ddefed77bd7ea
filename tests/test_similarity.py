"""ICU's similarity checks: NLTK-compatible unsmoothed sentence BLEU, tokens, embedding cosine.

The BLEU values below were computed with NLTK 3.10 ``sentence_bleu([word_tokenize(ref.lower())],
word_tokenize(cand.lower()))`` (default weights, no smoothing) and are matched to 1e-12.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from obliviate.metrics.similarity import (
    bleu_from_tokens,
    cosine_similarity,
    sentence_bleu,
    word_tokens,
)


def test_bleu_hand_computed():
    # ref  = the cat sat on the mat .   cand = the cat is on the mat .   (7 tokens each, BP = 1)
    # p1 = 6/7; p2 = 4/6 (the cat, on the, the mat, mat .); p3 = 2/5 (on the mat, the mat .);
    # p4 = 1/4 (on the mat .)  ->  BLEU = (6/7 * 4/6 * 2/5 * 1/4) ** (1/4) = (2/35) ** 0.25
    expected = (2 / 35) ** 0.25
    assert sentence_bleu("The cat sat on the mat.", "The cat is on the mat.") == pytest.approx(
        expected, abs=1e-12
    )
    assert expected == pytest.approx(0.488923022435, abs=1e-12)  # NLTK's value


@pytest.mark.parametrize(
    ("reference", "candidate", "nltk_value"),
    [
        (
            "It is a guide to action which ensures that the military always obeys the commands "
            "of the party.",
            "It is a guide to action that ensures that the military will forever heed Party "
            "commands.",
            0.406462633916,
        ),
        ("I don't think it's going to rain, isn't it?",
         "I don't think that it's going to rain today.", 0.449543195451),
        ("for (int i = 0; i < n; i++) { sum += a[i]; }",
         "for (int i = 0; i < n; i++) { total += a[i]; }", 0.872512938806),
        ("the the the the the the the", "the the the the", 0.472366552741),  # clipping + BP
    ],
)
def test_bleu_matches_nltk(reference, candidate, nltk_value):
    assert sentence_bleu(reference, candidate) == pytest.approx(nltk_value, abs=1e-12)


def test_bleu_brevity_penalty():
    # All n-grams match; c = 4, r = 8 -> exp(1 - 8/4) = e^-1.
    assert sentence_bleu("a b c d e f g h", "a b c d") == pytest.approx(math.exp(-1), abs=1e-12)
    assert sentence_bleu("a b c d", "a b c d e f g h") < 1.0  # longer: precision falls, no BP


def test_bleu_zero_cases():
    # No 4-gram in common: NLTK returns ~1e-155 with a warning, we return exactly 0.
    assert sentence_bleu("It is a guide to action which ensures that the military obeys.",
                         "It is to insure the troops forever hearing the activity.") == 0.0
    assert sentence_bleu("a b c", "a b c") == 0.0  # fewer than 4 tokens: p4 = 0/1
    assert sentence_bleu("hello world", "") == 0.0
    assert sentence_bleu("", "hello world") == 0.0
    assert sentence_bleu("The cat sat on the mat.", "The cat sat on the mat.") == 1.0


def test_bleu_lower_orders():
    assert bleu_from_tokens(["a", "b", "c"], ["a", "b", "c"], max_n=3) == 1.0
    assert bleu_from_tokens(["a", "b"], ["a", "x"], max_n=1) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        bleu_from_tokens(["a"], ["a"], max_n=0)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Don't stop, it's fine.", ["do", "n't", "stop", ",", "it", "'s", "fine", "."]),
        ('She said "hi" (twice)!', ["she", "said", "``", "hi", "''", "(", "twice", ")", "!"]),
        ("Costs: $3.88 -- or 3,36 euros...", ["costs", ":", "$", "3.88", "--", "or", "3,36",
                                             "euros", "..."]),
        ("I cannot go. We'll see.", ["i", "can", "not", "go", ".", "we", "'ll", "see", "."]),
        ("Mr. Smith arrived.", ["mr.", "smith", "arrived", "."]),  # abbreviation: no split
    ],
)
def test_word_tokens_follow_nltk(text, tokens):
    assert word_tokens(text) == tokens


def test_cosine_similarity_rowwise():
    a = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 0.0]], dtype=np.float32)
    b = np.array([[1.0, 0.0], [0.8, 0.6], [1.0, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(cosine_similarity(a, b), [1.0, 0.96, 0.0], atol=1e-6)
    assert cosine_similarity(np.array([3.0, 4.0]), np.array([4.0, 3.0]))[0] == pytest.approx(0.96)
    with pytest.raises(ValueError):
        cosine_similarity(a, b[:2])
