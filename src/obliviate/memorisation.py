"""Memorisation of token sequences, measured on a model: teacher-forced memorisation accuracy (MA)
and generation-based extraction likelihood (EL_n), plus the batched continuation generator both
the ICU schedule and the evaluator use.

A *target* is one token sequence with a cut point: the prompt (a QA prompt, or a passage's
prefix) ends at ``first_cut`` and the scored part follows. MA reads the positions the caller marks
in ``labels``; EL_n generates greedily from every cut ``t ≥ first_cut`` and compares with the true
continuation (the formulas are pure functions in :mod:`obliviate.metrics.extraction`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from obliviate.data.encoding import encode_text, pad_batch
from obliviate.logprobs import token_correct
from obliviate.metrics.extraction import el_cuts, extraction_likelihood


@dataclass
class Target:
    """``input_ids`` without a trailing EOS; ``labels`` mark the positions MA scores."""

    input_ids: list[int]
    labels: list[int]
    first_cut: int


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def generate_continuations(model: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int | Sequence[int],
                           pad_id: int, eos_id: int | Sequence[int] | None, num_beams: int = 1,
                           batch_size: int = 32, desc: str = "generating",
                           show_progress: bool = False) -> list[list[int]]:
    """Greedy (or beam) continuation ids of each prompt, cut at the first stop token, batched with
    left padding.

    Decoding settings are explicit (:mod:`obliviate.generation`: the model's own generation config
    never leaks in) and decoding stops on ``eos_id`` and on every EOS id of the model's generation
    config. The attention mask is always passed (the ICU reference generates from left-padded
    prompts without one, so padding leaks into its continuations).
    """
    from obliviate.generation import generate, stop_token_ids
    from obliviate.progress import progress

    stops = stop_token_ids(model, eos_id)
    budgets = [max_new_tokens] * len(prompts) if isinstance(max_new_tokens, int) else list(max_new_tokens)
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), budgets[i]))
    out: list[list[int]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    device = _device(model)
    for start in progress(range(0, len(order), batch_size), desc=desc, disable=not show_progress):
        idx = order[start:start + batch_size]
        budget = max(budgets[i] for i in idx)
        if budget <= 0:
            continue
        batch = pad_batch([{"input_ids": list(prompts[i])} for i in idx], pad_id, side="left")
        generated = generate(model, batch["input_ids"].to(device), batch["attention_mask"].to(device),
                             max_new_tokens=budget, pad_id=pad_id, stop_ids=stops, num_beams=num_beams)
        new = generated[:, batch["input_ids"].shape[1]:].tolist()
        for row, i in enumerate(idx):
            ids = new[row][:budgets[i]]
            cut = next((k for k, token in enumerate(ids) if token in stops), len(ids))
            out[i] = ids[:cut]
    model.train(was_training)
    return out


@torch.no_grad()
def memorisation_accuracy(model: Any, targets: Sequence[Target], pad_id: int, batch_size: int = 32) -> list[float]:
    """Per target: fraction of labelled positions where the teacher-forced argmax is the label."""
    was_training = model.training
    model.eval()
    device = _device(model)
    out: list[float] = []
    for start in range(0, len(targets), batch_size):
        chunk = targets[start:start + batch_size]
        batch = pad_batch([{"input_ids": t.input_ids, "labels": t.labels} for t in chunk], pad_id)
        logits = model(input_ids=batch["input_ids"].to(device),
                       attention_mask=batch["attention_mask"].to(device)).logits
        correct, mask = token_correct(logits, batch["labels"].to(device))
        counts = mask.sum(-1).clamp_min(1)
        out.extend((correct.sum(-1) / counts).tolist())
    model.train(was_training)
    return out


def extraction_likelihoods(model: Any, targets: Sequence[Target], *, n: int, pad_id: int, eos_id: int | None,
                           batch_size: int = 64) -> list[float]:
    """Per target: EL_n over the cuts ``t ∈ [first_cut, T−n]`` (ICU's suffix form when
    ``first_cut`` is the prefix length; the original all-positions form when it is 1). NaN when the
    continuation is shorter than ``n`` tokens."""
    prompts, budgets, owners = [], [], []
    for k, t in enumerate(targets):
        length = len(t.input_ids)
        for cut in el_cuts(length, n, max(1, t.first_cut)):
            prompts.append(t.input_ids[:cut])
            budgets.append(length - cut)
            owners.append((k, cut))
    continuations = generate_continuations(model, prompts, max_new_tokens=budgets, pad_id=pad_id,
                                           eos_id=eos_id, batch_size=batch_size) if prompts else []
    by_target: list[dict[int, list[int]]] = [{} for _ in targets]
    for (k, cut), ids in zip(owners, continuations):
        by_target[k][cut] = ids
    return [float(extraction_likelihood(t.input_ids, by_target[k], n=n, first_cut=max(1, t.first_cut)))
            for k, t in enumerate(targets)]


def target_from_item(input_ids: Sequence[int], labels: Sequence[int], first_cut: int, eos_id: int | None) -> Target:
    """A :class:`Target` from an encoded training item, dropping a trailing EOS (MA and EL score the
    content, not the end-of-sequence token; open-unlearning also drops it)."""
    ids, labs = list(input_ids), list(labels)
    if eos_id is not None and ids and ids[-1] == eos_id:
        ids, labs = ids[:-1], labs[:-1]
    return Target(ids, labs, first_cut)


def text_target(tokenizer: Any, record: dict, *, max_length: int) -> tuple[Target, list[int], str]:
    """A passage (``text``, or ``prefix`` + ``suffix``) as a target cut at the end of its prefix, or
    at its middle token when it has none. Returns the target, the encoded ids (with EOS, as trained)
    and the reference continuation text."""
    text = record.get("text") or record.get("prefix", "") + record.get("suffix", "")
    prefix = record.get("prefix") if record.get("suffix") is not None else None
    enc = encode_text(tokenizer, text, max_length=max_length, prefix_chars=len(prefix) if prefix else None)
    eos = tokenizer.eos_token_id
    content = len(enc.input_ids) - (1 if eos is not None and enc.input_ids[-1] == eos else 0)
    cut = enc.prefix_tokens if prefix else max(1, content // 2)
    reference = record["suffix"] if prefix else tokenizer.decode(enc.input_ids[cut:content], skip_special_tokens=True)
    return target_from_item(enc.input_ids, enc.labels, cut, eos), enc.input_ids, reference
