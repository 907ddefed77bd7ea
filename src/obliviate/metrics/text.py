"""ROUGE-L between generated and reference answers.

TOFU reports ROUGE-L *recall* (LCS length / reference length) and MUSE reports ROUGE-L *F1*
(spec 2.1 "ROUGE", 2.2). Both use ``rouge_score`` with the Porter stemmer, as open-unlearning does.
``rouge_score`` is imported on first use so importing :mod:`obliviate.metrics` stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["rouge_l_f1", "rouge_l_recall"]

_SCORER: Any = None


def _scorer() -> Any:
    """Return the shared ``RougeScorer(["rougeL"], use_stemmer=True)``, built once on first use."""
    global _SCORER
    if _SCORER is None:
        from rouge_score import rouge_scorer

        _SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return _SCORER


def _rouge_l(predictions: Sequence[str], references: Sequence[str], field: str) -> list[float]:
    if isinstance(predictions, str) or isinstance(references, str):
        raise ValueError("predictions and references must be lists of strings, not a single string")
    if len(predictions) != len(references):
        raise ValueError(
            f"got {len(predictions)} predictions but {len(references)} references; they must pair up"
        )
    scorer = _scorer()
    return [
        float(getattr(scorer.score(target=ref, prediction=pred)["rougeL"], field))
        for pred, ref in zip(predictions, references)
    ]


def rouge_l_recall(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per-pair ROUGE-L recall = LCS / reference length (TOFU's ``rougeL_recall``, spec 2.1)."""
    return _rouge_l(predictions, references, "recall")


def rouge_l_f1(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """Per-pair ROUGE-L F1 of LCS precision and recall (MUSE's verbmem/knowmem score, spec 2.2)."""
    return _rouge_l(predictions, references, "fmeasure")
