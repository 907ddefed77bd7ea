"""Ext-Sub's evaluation on the embedded deficiency task: greedy answers to the task's questions,
their deficiency rate (toxic: an insult word; untruthful: a wrong value instead of the right one)
and capability (mean ROUGE-L recall against the good answers). See :mod:`obliviate.data.deficiency`.
"""

from __future__ import annotations

from typing import Any, Sequence


def evaluate_deficiency(model: Any, tokenizer: Any, eval_records: Sequence[dict], kind: str, *,
                        max_new_tokens: int = 48, batch_size: int = 64,
                        show_progress: bool = False) -> dict[str, float | int]:
    """``{"deficiency": rate, "capability": mean ROUGE-L recall, "n": count}`` of ``model``'s
    greedy answers to ``eval_records`` (a :class:`~obliviate.data.deficiency.DeficiencyTask`'s
    ``eval``: question, answer, value, wrong_values)."""
    from obliviate.data.deficiency import KINDS, insult_words
    from obliviate.evaluate.scoring import generate_answers
    from obliviate.metrics import rouge_l_recall
    from obliviate.metrics.deficiency import toxic_rate, untruthful_rate

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not eval_records:
        raise ValueError("no evaluation records")
    gens = generate_answers(model, tokenizer, [r["question"] for r in eval_records],
                            answers=[r["answer"] for r in eval_records], max_new_tokens=max_new_tokens,
                            batch_size=batch_size, desc="generating", show_progress=show_progress)
    rate = (toxic_rate(gens, insult_words()) if kind == "toxic"
            else untruthful_rate(gens, [r["value"] for r in eval_records], [r["wrong_values"] for r in eval_records]))
    capability = sum(rouge_l_recall(gens, [r["answer"] for r in eval_records])) / len(gens)
    return {"deficiency": rate, "capability": capability, "n": len(gens)}
