"""Nearest-neighbour pairing of forget items with retained items (ICU, spec 3.1).

ICU pairs every forget sequence with the retained sequence closest to it in all-MiniLM-L6-v2
space (FAISS ``IndexFlatL2``, exact, only the top-1 neighbour used, the same neighbour may serve
several forget items), then trains "learn" on the partner while it unlearns the target. On
L2-normalised embeddings ||q - c||^2 = 2 - 2 q.c, so the exact L2 1-NN is the highest cosine; we
compute it by matrix products, with no FAISS.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from obliviate.errors import DataError
from obliviate.models.embedding import SentenceEmbedder

__all__ = ["nearest_neighbours"]


def nearest_neighbours(
    queries: Sequence[str],
    candidates: Sequence[str],
    embedder: SentenceEmbedder,
    chunk_size: int = 2048,
    tie_tolerance: float = 1e-6,
) -> list[int]:
    """Index in ``candidates`` of each query's nearest candidate (highest cosine = exact L2 1-NN).

    Queries are embedded once; candidates are embedded and scored ``chunk_size`` at a time, so
    memory stays at (queries + one chunk) x d even for dense TF-IDF rows. Ties go to the lowest
    candidate index; scores within ``tie_tolerance`` count as ties, so duplicate candidates embedded
    in differently padded batches (float noise ~1e-7) still resolve to the first copy. The same
    candidate may serve several queries, as in ICU.
    """
    if isinstance(queries, str) or isinstance(candidates, str):
        raise TypeError("queries and candidates must be lists of texts, not single strings")
    if len(candidates) == 0:
        raise DataError("no candidate texts to pair with: the retained set is empty")
    if len(queries) == 0:
        return []
    q = np.asarray(embedder.encode(list(queries)), dtype=np.float32)
    best_score = np.full(len(queries), -np.inf, dtype=np.float32)
    best_index = np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(candidates), chunk_size):
        texts = list(candidates[start : start + chunk_size])
        chunk = np.asarray(embedder.encode(texts), dtype=np.float32)
        scores = q @ chunk.T
        chunk_best = scores.max(axis=1)
        local = (scores >= chunk_best[:, None] - tie_tolerance).argmax(axis=1)  # first near-max
        better = chunk_best > best_score + tie_tolerance  # a later chunk must be clearly better
        best_score[better] = chunk_best[better]
        best_index[better] = start + local[better]
    return best_index.tolist()
