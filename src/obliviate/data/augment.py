"""Data augmentation for ULD (arXiv 2406.08607, spec §2.2): the assistant should remember the
forget *knowledge*, not one wording of it, and stay uniform on wrong answers to the same questions.

- Forget set D'f: each forget record, plus the record with its paraphrased answer and the
  paraphrased question with the original answer (when the record has them). The reference code
  takes the first two entries of GPT-3.5 paraphrases (questions × answers); TOFU-style records carry
  one paraphrased question and answer, so we use those.
- Retain set D'r: the retain records, plus each forget question with up to ``n_perturbed`` of its
  perturbed (wrong) answers (the reference uses up to 2 GPT-3.5 wrong answers).

Augmented forget records carry no ``fact_span`` (the span of a paraphrase is unknown), so ULD's
forget term covers whole answers.
"""

from __future__ import annotations

from typing import Sequence


def _qa(question: str, answer: str) -> dict:
    return {"question": question, "answer": answer}


def augment_forget(records: Sequence[dict]) -> list[dict]:
    out = []
    for r in records:
        out.append(_qa(r["question"], r["answer"]))
        if "question" not in r:
            continue
        if r.get("paraphrased_answer"):
            out.append(_qa(r["question"], r["paraphrased_answer"]))
        if r.get("paraphrased_question"):
            out.append(_qa(r["paraphrased_question"], r["answer"]))
    return out


def augment_retain(forget: Sequence[dict], retain: Sequence[dict], n_perturbed: int = 2) -> list[dict]:
    out = list(retain)
    for r in forget:
        for wrong in list(r.get("perturbed_answer") or [])[:n_perturbed]:
            out.append(_qa(r["question"], wrong))
    return out
