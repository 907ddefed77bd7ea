"""What the audit reads from a model: forget-answer probability, ROUGE-L and truth ratio on
probe items (one batched scoring pass and one batched greedy generation), and model utility."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np

from obliviate import metrics
from obliviate.audit.probes import ProbeItem
from obliviate.evaluate.scoring import generate_answers, score_pairs
from obliviate.evaluate.tofu import EvalConfig, evaluate_model

#: the benchmark splits model utility is read from (TOFU's nine numbers)
UTILITY_SPLITS = ("retain", "real_authors", "world_facts")


def measure_forget(model: Any, tokenizer: Any, items: Sequence[ProbeItem], config: EvalConfig, *,
                   max_new_tokens: int, desc: str = "probe", show_progress: bool = True) -> dict[str, Any]:
    """Per-item and mean numbers of ``items``: ``prob`` (per-token geometric mean probability of
    the scored answer part), ``rougeL`` (recall of the greedy answer against the reference part)
    and ``truth_ratio`` (the forget split's aggregate, where items have wrong answers)."""
    pairs, shots, given, slots = [], [], [], []
    for item in items:
        base = len(pairs)
        pairs.append((item.question, item.answer))
        shots.append(item.shots)
        given.append(item.given)
        if item.perturbed:
            for answer in (item.correct, *item.perturbed):
                pairs.append((item.question, answer))
                shots.append(item.shots)
                given.append(0)
        slots.append(base)
    scores = score_pairs(model, tokenizer, pairs, batch_size=config.batch_size, max_length=config.max_length,
                         desc=f"scoring {desc}", show_progress=show_progress, shots=shots, given=given)
    generations = generate_answers(model, tokenizer, [i.question for i in items], answers=[i.answer for i in items],
                                   max_new_tokens=max_new_tokens, batch_size=config.batch_size,
                                   max_length=config.max_length, desc=f"generating {desc}",
                                   show_progress=show_progress, shots=[i.shots for i in items],
                                   given=[i.given for i in items])
    rouge = metrics.rouge_l_recall(generations, [i.reference for i in items])
    rows = []
    for item, base, generation, rl in zip(items, slots, generations, rouge):
        if scores[base].empty:
            continue  # the scored part did not fit max_length
        row = {"index": item.index, "prob": float(metrics.answer_probability([scores[base].avg_nll])[0]),
               "rougeL": float(rl),
               "generation": generation, "reference": item.reference}
        if item.perturbed:
            correct = scores[base + 1].avg_nll
            wrong = [scores[base + 2 + j].avg_nll for j in range(len(item.perturbed))]
            row["truth_ratio"] = float(metrics.truth_ratio([correct], [wrong])[0])
        rows.append(row)
    return {"items": rows, **summarise(rows)}


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Means over ``rows`` (a subset of items can be re-summarised: the relearning attack's
    held-out half)."""
    out: dict[str, Any] = {"n": len(rows)}
    if not rows:
        return out
    out["prob"] = float(np.mean([r["prob"] for r in rows]))
    out["rougeL"] = float(np.mean([r["rougeL"] for r in rows]))
    ratios = [r["truth_ratio"] for r in rows if "truth_ratio" in r]
    if ratios:
        out["truth_ratio"] = float(metrics.truth_ratio_closer_to_one(ratios))
    return out


def model_utility(model: Any, tokenizer: Any, splits: Mapping[str, Sequence[Mapping]], config: EvalConfig, *,
                  show_progress: bool = True) -> float | None:
    """TOFU's model utility from the benchmark's retain, real-authors and world-facts splits; None
    when the benchmark lacks one of them."""
    chosen = {name: splits[name] for name in UTILITY_SPLITS if splits.get(name)}
    if len(chosen) < len(UTILITY_SPLITS):
        return None
    result = evaluate_model(model, tokenizer, chosen, config=replace(config, mia=False, passages=False),
                            show_progress=show_progress)
    return result.summary["metrics"].get("model_utility")
