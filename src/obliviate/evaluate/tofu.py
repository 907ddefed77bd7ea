"""TOFU-style evaluation: per-item numbers for each split, then the TOFU aggregates.

Split roles follow TOFU: on ``forget`` and ``retain`` the truth ratio's correct answer is the
paraphrased answer; on ``real_authors`` and ``world_facts`` it is the answer itself, and answer
probability is normalised over the perturbed answers. Forget quality needs a retain model's
per-item forget truth ratios (see :func:`forget_quality_against`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from obliviate import metrics
from obliviate.distributed import is_main_process, sharded_list
from obliviate.evaluate.scoring import generate_answers, score_pairs
from obliviate.validation import option

# split name -> prefix used by TOFU's metric names
SPLIT_PREFIX = {"forget": "forget", "retain": "retain", "real_authors": "ra", "world_facts": "wf"}


# splits whose items get membership-inference scores (forget vs never-trained holdout)
MIA_SPLITS = ("forget", "holdout")
#: greedy generation budget when neither the config nor a benchmark sets one (TOFU's)
DEFAULT_MAX_NEW_TOKENS = 200
EXCLUDED = "the answer alone is longer than max_length (a long prompt only loses its earliest tokens)"


@dataclass
class EvalConfig:
    """``max_new_tokens``: greedy generation budget; None: the benchmark's
    (:attr:`~obliviate.benchmarks.BenchmarkData.max_new_tokens`, see :func:`for_benchmark`).
    ``max_length``: tokens per scored sequence (prompt + answer); an item whose answer is cut
    away entirely is excluded from the aggregates and counted. ``mia``: membership-inference
    scores on forget and holdout (``gradnorm`` adds a backward pass per item); ``passages``: MA / EL
    / perplexity on the benchmark's passages, when it has them."""

    batch_size: int = option(64, ge=1)
    max_new_tokens: int | None = option(None, ge=1)
    max_length: int = option(512, ge=2)  # a prompt token and an answer token
    mia: bool = True
    mia_k: float = option(0.4, gt=0, le=1, hint="Min-k%: the fraction of lowest token log-probs")
    gradnorm: bool = True
    passages: bool = True
    el_n: int = option(10, ge=1)


def for_benchmark(config: EvalConfig, max_new_tokens: int | None) -> EvalConfig:
    """``config`` with the benchmark's generation budget where the config leaves it unset."""
    if config.max_new_tokens is not None or max_new_tokens is None:
        return config
    return replace(config, max_new_tokens=int(max_new_tokens))


def _max_new_tokens(config: EvalConfig) -> int:
    return DEFAULT_MAX_NEW_TOKENS if config.max_new_tokens is None else int(config.max_new_tokens)


@dataclass
class SplitResult:
    items: list[dict]
    aggregates: dict[str, float]
    #: seconds spent scoring (one batched forward pass over every answer of the split),
    #: generating, and on membership-inference scores
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def truth_ratios(self) -> list[float]:
        return [item["truth_ratio"] for item in self.items if "truth_ratio" in item]


@dataclass
class EvalResult:
    splits: dict[str, SplitResult]
    summary: dict[str, Any] = field(default_factory=dict)


def _correct_answer(split: str, record: Mapping) -> str:
    if split in ("forget", "retain") and record.get("paraphrased_answer"):
        return record["paraphrased_answer"]
    return record["answer"]


def memorisation_flags(token_correct: Sequence[bool]) -> list[bool]:
    """The answer positions exact memorisation and extraction strength read: every scored position
    but the last (the EOS, or the template's end of turn), as open-unlearning's
    ``tokenwise_vocab_logprobs`` drops it. An answer scored on one position only (an empty answer
    string) keeps none: the item gets neither metric and the aggregates skip it."""
    return list(token_correct[:-1])


def evaluate_split(model: Any, tokenizer: Any, split: str, records: Sequence[Mapping],
                   config: EvalConfig, show_progress: bool = True,
                   reference_items: Sequence[Mapping] | None = None) -> SplitResult:
    """All per-item numbers of one split from one scoring pass and one generation pass."""
    pairs: list[tuple[str, str]] = []
    slots: list[tuple[int, int, list[int]]] = []  # (answer idx, correct idx, perturbed idxs)
    for rec in records:
        q = rec["question"]
        base = len(pairs)
        pairs.append((q, rec["answer"]))
        pairs.append((q, _correct_answer(split, rec)))
        perturbed = list(rec.get("perturbed_answer") or [])
        pairs.extend((q, p) for p in perturbed)
        slots.append((base, base + 1, list(range(base + 2, base + 2 + len(perturbed)))))
    with_mia = config.mia and split in MIA_SPLITS
    show_progress = show_progress and is_main_process()
    clock = time.perf_counter()
    # in a multi-process run each process scores and generates a share of the split
    scores = sharded_list(lambda part: score_pairs(
        model, tokenizer, part, batch_size=config.batch_size, max_length=config.max_length, desc=f"scoring {split}",
        show_progress=show_progress, token_stats=with_mia), pairs)
    timings = {"scoring_s": time.perf_counter() - clock}
    clock = time.perf_counter()
    generations = sharded_list(lambda part: generate_answers(
        model, tokenizer, [r["question"] for r in part], answers=[r["answer"] for r in part],
        max_new_tokens=_max_new_tokens(config), batch_size=config.batch_size, max_length=config.max_length,
        desc=f"generating {split}", show_progress=show_progress), records)
    timings["generation_s"] = time.perf_counter() - clock
    rouge = metrics.rouge_l_recall(generations, [r["answer"] for r in records])

    items: list[dict] = []
    for i, (rec, (a, c, ps), gen, rl) in enumerate(zip(records, slots, generations, rouge)):
        answer = scores[a]
        if any(scores[k].empty for k in (a, c, *ps)):
            # an answer cut away entirely has no probability (exp(-0/0) is not 1): excluded, counted
            items.append({"index": i, "question": rec["question"], "answer": rec["answer"], "generation": gen,
                          "n_tokens": answer.n_tokens, "excluded": EXCLUDED})
            continue
        item = {
            "index": i, "question": rec["question"], "answer": rec["answer"], "generation": gen,
            "avg_nll": answer.avg_nll, "n_tokens": answer.n_tokens,
            "prob": float(np.exp(-answer.avg_nll)), "rougeL_recall": rl,
        }
        flags = memorisation_flags(answer.token_correct)
        if flags:
            item["exact_memorization"] = float(metrics.exact_memorization([flags])[0])
            item["extraction_strength"] = float(metrics.extraction_strength([flags])[0])
        item["avg_nll_correct"] = scores[c].avg_nll
        if ps:
            wrong = [scores[p].avg_nll for p in ps]
            item["avg_nll_perturbed"] = wrong
            item["truth_ratio"] = float(metrics.truth_ratio([scores[c].avg_nll], [wrong])[0])
            item["prob_normalised"] = float(metrics.normalized_probability([answer.avg_nll], [wrong])[0])
        items.append(item)
    scored = [(item, scores[a]) for item, (a, _, _) in zip(items, slots) if "excluded" not in item]
    if reference_items is not None and len(reference_items) != len(items):
        reference_items = None  # the reference scored other items
    if with_mia and scored:
        clock = time.perf_counter()
        _add_mia(model, tokenizer, [item for item, _ in scored], [s for _, s in scored], config, reference_items)
        timings["mia_s"] = time.perf_counter() - clock
    return SplitResult(items, _aggregate(split, items), {k: round(v, 3) for k, v in timings.items()})


def _add_mia(model: Any, tokenizer: Any, items: list[dict], answer_scores: Sequence[Any], config: EvalConfig,
             reference_items: Sequence[Mapping] | None) -> None:
    from obliviate.evaluate.mia import add_reference_scores, gradient_norms, item_scores

    norms = (sharded_list(lambda part: gradient_norms(model, tokenizer, part, max_length=config.max_length),
                          [(i["question"], i["answer"]) for i in items]) if config.gradnorm else None)
    rows = item_scores([s.avg_nll for s in answer_scores], [i["answer"] for i in items],
                       [s.token_logps for s in answer_scores], [s.token_mu for s in answer_scores],
                       [s.token_sigma for s in answer_scores], k=config.mia_k, gradnorms=norms)
    for item, row in zip(items, rows):
        item["mia"] = row
    if reference_items is not None:
        add_reference_scores(items, reference_items)


def _aggregate(split: str, items: list[dict]) -> dict[str, float]:
    """TOFU's split aggregates over the scored items; ``<prefix>_n_excluded`` counts the items
    left out because truncation left them no answer token."""
    prefix = SPLIT_PREFIX.get(split, split)
    excluded = sum("excluded" in i for i in items)
    items = [i for i in items if "excluded" not in i]
    out: dict[str, float] = {f"{prefix}_n_excluded": excluded}
    if not items:
        return out
    out[f"{prefix}_Q_A_ROUGE"] = float(np.mean([i["rougeL_recall"] for i in items]))
    if split in ("real_authors", "world_facts"):
        out[f"{prefix}_Q_A_Prob_normalised"] = float(np.mean([i["prob_normalised"] for i in items]))
    else:
        out[f"{prefix}_Q_A_Prob"] = float(np.mean([i["prob"] for i in items]))
    ratios = [i["truth_ratio"] for i in items if "truth_ratio" in i]
    if ratios:
        aggregate = (metrics.truth_ratio_closer_to_one if split == "forget"
                     else metrics.truth_ratio_true_better)
        out[f"{prefix}_Truth_Ratio"] = aggregate(ratios)
    memorised = [i for i in items if "exact_memorization" in i]
    if memorised:
        out[f"{prefix}_exact_memorization"] = float(np.mean([i["exact_memorization"] for i in memorised]))
        out[f"{prefix}_extraction_strength"] = float(np.mean([i["extraction_strength"] for i in memorised]))
    return out


def evaluate_model(model: Any, tokenizer: Any, eval_splits: Mapping[str, Sequence[Mapping]], *,
                   config: EvalConfig | None = None, retain_truth_ratios: Sequence[float] | None = None,
                   retain_result: EvalResult | None = None, passages: Mapping[str, Sequence[Mapping]] | None = None,
                   show_progress: bool = True) -> EvalResult:
    """Evaluate every split, then model utility, membership inference (forget vs ``holdout``) and
    passage memorisation; forget quality, the Reference MIA score and privleak need the retain
    model's evaluation (``retain_result``; or just its forget truth ratios)."""
    from obliviate.data.templates import template_of
    from obliviate.generation import settings, stop_token_ids

    config = config or EvalConfig()
    started = time.perf_counter()
    splits = {}
    for name, records in eval_splits.items():
        reference_items = None
        if retain_result is not None and name in retain_result.splits:
            reference_items = retain_result.splits[name].items
        splits[name] = evaluate_split(model, tokenizer, name, records, config, show_progress, reference_items)
    aggregates: dict[str, float] = {}
    for result in splits.values():
        aggregates.update(result.aggregates)
    if all(k in aggregates for k in metrics.MODEL_UTILITY_KEYS):
        aggregates["model_utility"] = metrics.model_utility({k: aggregates[k] for k in metrics.MODEL_UTILITY_KEYS})
    if retain_truth_ratios is None and retain_result is not None and "forget" in retain_result.splits:
        retain_truth_ratios = retain_result.splits["forget"].truth_ratios
    if retain_truth_ratios is not None and "forget" in splits:
        aggregates["forget_quality"] = metrics.forget_quality(splits["forget"].truth_ratios, retain_truth_ratios)
    if config.mia and "forget" in splits and "holdout" in splits:
        from obliviate.evaluate.mia import mia_summary

        ref_auc = retain_result.summary.get("metrics", {}).get("mia_auc_min_k") if retain_result else None
        aggregates.update(mia_summary(splits["forget"].items, splits["holdout"].items, ref_auc))
    if config.passages and passages:
        from obliviate.evaluate.passages import evaluate_passages

        passage_items, passage_aggregates = evaluate_passages(model, tokenizer, passages, el_n=config.el_n,
                                                              batch_size=config.batch_size)
        aggregates.update(passage_aggregates)
        for role, rows in passage_items.items():
            splits[f"{role}_passages"] = SplitResult(rows, {})
    parts = {f"{kind}_s": round(sum(r.timings.get(f"{kind}_s", 0.0) for r in splits.values()), 3)
             for kind in ("scoring", "generation", "mia")}
    summary = {"metrics": aggregates, "timings": {"evaluate_s": round(time.perf_counter() - started, 3), **parts},
               "eval_config": {**vars(config), "max_new_tokens": _max_new_tokens(config)},
               "template": template_of(tokenizer).name,
               "generation": settings(_max_new_tokens(config), stop_token_ids(model, tokenizer.eos_token_id))}
    return EvalResult(splits, summary)
