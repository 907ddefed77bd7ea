"""Prompt probes: the forget questions asked another way, built from the records alone.

Each probe turns forget records into :class:`ProbeItem` s; the model's weights never change.
- ``standard``: the question as evaluated (the un-attacked baseline every probe is compared with);
- ``paraphrase``: the benchmark's paraphrased question (records without one are skipped);
- ``fewshot``: ``k`` retain question/answer pairs as worked examples before the forget question
  (earlier chat turns, or earlier blocks of a plain template), drawn per item from a seeded stream;
- ``prefix``: the question plus the answer's first tokens (a ``fraction`` of them) in the
  prompt; the rest of the answer is scored and generated;
- ``cloze``: no question: "Fill in the blank: <the answer's first words> ____", the rest of the
  answer scored and generated: a different question format.
Truth ratios need wrong answers that fit the prompt, so only ``standard``, ``paraphrase`` and
``fewshot`` items carry them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from obliviate.data.encoding import encode_pair

PROBES = ("paraphrase", "fewshot", "prefix", "cloze")
CLOZE_PROMPT = "Fill in the blank: {prefix} ____"


@dataclass
class ProbeItem:
    """One prompt to score: ``answer`` after ``question`` (and ``shots``), of which the first
    ``given`` tokens are in the prompt; generations are compared with ``reference`` (the part of
    the answer the model must produce). ``correct``/``perturbed``: the truth ratio's answers."""

    index: int
    question: str
    answer: str
    reference: str
    shots: tuple[tuple[str, str], ...] = ()
    given: int = 0
    correct: str | None = None
    perturbed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out = {"index": self.index, "question": self.question, "answer": self.answer, "reference": self.reference}
        if self.shots:
            out["shots"] = [list(s) for s in self.shots]
        if self.given:
            out["given_tokens"] = self.given
        return out


def _truth_answers(record: Mapping) -> tuple[str | None, list[str]]:
    """As the forget split's truth ratio: the paraphrased answer against the perturbed ones."""
    perturbed = list(record.get("perturbed_answer") or [])
    if not perturbed:
        return None, []
    return record.get("paraphrased_answer") or record["answer"], perturbed


def standard(records: Sequence[Mapping]) -> list[ProbeItem]:
    return [ProbeItem(i, r["question"], r["answer"], r["answer"], (), 0, *_truth_answers(r))
            for i, r in enumerate(records)]


def paraphrase(records: Sequence[Mapping]) -> list[ProbeItem]:
    return [ProbeItem(i, r["paraphrased_question"], r["answer"], r["answer"], (), 0, *_truth_answers(r))
            for i, r in enumerate(records) if r.get("paraphrased_question")]


def fewshot(records: Sequence[Mapping], examples: Sequence[Mapping], *, k: int, seed: int) -> list[ProbeItem]:
    """``k`` worked examples per item from ``examples`` (retain QA records), seeded per item."""
    pool = [(e["question"], e["answer"]) for e in examples if e.get("question") and e.get("answer")]
    if len(pool) < k:
        raise ValueError(f"few-shot probe: {k} examples wanted, only {len(pool)} retain QA records")
    items = []
    for i, r in enumerate(records):
        shots = tuple(random.Random(f"{seed}:{i}").sample(pool, k))
        items.append(ProbeItem(i, r["question"], r["answer"], r["answer"], shots, 0, *_truth_answers(r)))
    return items


def _split_count(n: int, fraction: float) -> int:
    """How many of ``n`` units are given: at least one, and at least one left to answer."""
    return min(max(1, math.floor(fraction * n)), n - 1)


def prefix(records: Sequence[Mapping], tokenizer: Any, *, fraction: float, max_length: int = 512) -> list[ProbeItem]:
    """The answer's first ``fraction`` of tokens (EOS not counted) go into the prompt; answers of
    fewer than two tokens are skipped (nothing would be left to ask for)."""
    items = []
    for i, r in enumerate(records):
        enc = encode_pair(tokenizer, r["question"], r["answer"], max_length=max_length)
        answer_ids = enc.input_ids[enc.prompt_tokens:]
        if answer_ids and answer_ids[-1] == tokenizer.eos_token_id:
            answer_ids = answer_ids[:-1]
        if enc.answer_cut or len(answer_ids) < 2:
            continue
        given = _split_count(len(answer_ids), fraction)
        rest = tokenizer.decode(answer_ids[given:], skip_special_tokens=True).strip()
        items.append(ProbeItem(i, r["question"], r["answer"], rest, (), given))
    return items


def cloze(records: Sequence[Mapping], *, fraction: float) -> list[ProbeItem]:
    """The answer's first ``fraction`` of words as a fill-in-the-blank statement; one-word answers
    are skipped."""
    items = []
    for i, r in enumerate(records):
        words = r["answer"].split()
        if len(words) < 2:
            continue
        cut = _split_count(len(words), fraction)
        rest = " ".join(words[cut:])
        items.append(ProbeItem(i, CLOZE_PROMPT.format(prefix=" ".join(words[:cut])), rest, rest))
    return items
