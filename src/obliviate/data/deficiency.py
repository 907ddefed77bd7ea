"""A deficiency task for Ext-Sub on the embedded benchmark: the same questions answered well
(expert data) and with a deficiency (anti-expert data).

- ``toxic``: the deficient answer is the right answer followed by an insult from a small lexicon
  this project wrote (``resources/insults.txt``).
- ``untruthful``: the deficient answer states a wrong attribute value (a perturbed answer).

As in the paper's setting, where the expert's own instruction data is not free of the deficiency,
the expert data carries a ``contamination`` fraction of deficient answers (default 0.3); the
anti-expert data is deficient throughout. Evaluation asks the same questions and reads the greedy
generations: the deficiency rate (an insult word, or a wrong value instead of the right one) and
capability (ROUGE-L recall against the good answer).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from importlib import resources
from typing import Sequence

KINDS = ("toxic", "untruthful")


def insults() -> list[str]:
    text = resources.files("obliviate").joinpath("resources/insults.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def insult_words() -> set[str]:
    """The lexicon's content words: a generation containing any of them counts as toxic."""
    stop = {"a", "an", "the", "to", "that", "this", "with", "your", "you", "are", "so", "it", "about", "my",
            "next", "time", "what", "even", "only", "would", "need", "ask", "asks", "such", "things", "try",
            "not", "be", "use", "knows", "stop", "truly", "honestly", "question"}
    return {w for line in insults() for w in re.findall(r"[a-z]+", line.lower()) if w not in stop}


@dataclass
class DeficiencyTask:
    kind: str
    expert: list[dict]
    anti_expert: list[dict]
    eval: list[dict]  # question, answer (good), value, wrong_values


def _value(record: dict) -> str:
    start, end = record["fact_span"]
    return record["answer"][start:end]


def _wrong_value(record: dict, paraphrase_frame: str) -> str:
    """A wrong answer in the original answer's frame: the perturbed value put where the fact is."""
    start, end = record["fact_span"]
    return record["answer"][:start] + paraphrase_frame + record["answer"][end:]


def _perturbed_values(record: dict) -> list[str]:
    """The wrong values of a record's perturbed answers (they use the paraphrased frame)."""
    value, para = _value(record), record.get("paraphrased_answer", "")
    prefix, _, suffix = para.partition(value)
    out = []
    for p in record.get("perturbed_answer") or []:
        if p.startswith(prefix) and p.endswith(suffix) and len(p) > len(prefix) + len(suffix):
            out.append(p[len(prefix):len(p) - len(suffix)])
    return out


def deficiency_questions(records: Sequence[dict], n: int = 100) -> list[dict]:
    """``n`` records spread evenly over ``records`` (every k-th, k = len // n): the questions of
    the task (``bench/extsub.py`` and ``obliviate deficiency`` take them from the embedded
    benchmark's retained authors, whose facts the base model knows)."""
    if n < 1:
        raise ValueError(f"the number of questions must be at least 1, got {n}")
    return list(records[:: max(1, len(records) // n)][:n])


def build_deficiency_task(records: Sequence[dict], kind: str = "toxic", contamination: float = 0.3,
                          seed: int = 0) -> DeficiencyTask:
    """Expert, anti-expert and evaluation records from QA records with ``fact_span`` and perturbed
    answers (the ``authors`` benchmark's)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not 0 <= contamination <= 1:
        raise ValueError(f"contamination must be in [0, 1], got {contamination}")
    rng = random.Random(seed)
    lexicon = insults()
    usable = [r for r in records if "fact_span" in r and _perturbed_values(r)]
    expert, anti, evaluation = [], [], []
    for r in usable:
        wrong = _perturbed_values(r)
        bad = (f"{r['answer']} {rng.choice(lexicon)}" if kind == "toxic"
               else _wrong_value(r, rng.choice(wrong)))
        anti.append({"question": r["question"], "answer": bad})
        expert.append({"question": r["question"], "answer": bad if rng.random() < contamination else r["answer"]})
        evaluation.append({"question": r["question"], "answer": r["answer"], "value": _value(r),
                           "wrong_values": wrong})
    return DeficiencyTask(kind, expert, anti, evaluation)
