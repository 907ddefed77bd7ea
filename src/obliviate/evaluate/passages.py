"""Verbatim memorisation of passages (text records): memorisation accuracy, extraction likelihood
and perplexity, the numbers ICU and the KU line of work judge unlearning by.

Per passage: MA over every position (teacher-forced argmax == next token), the NLL for
perplexity, and on the forget and holdout passages EL_n in ICU's suffix-only form (cuts from the
end of the prefix) and, on the forget passages, the original all-positions form. EL needs one
generation per cut, so it is skipped on the (many) retained passages, where MA and perplexity show
collateral damage. EOS is not scored by MA/EL.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from obliviate.data.encoding import pad_batch
from obliviate.distributed import sharded_list
from obliviate.logprobs import IGNORE_INDEX, sequence_nll, token_correct
from obliviate.memorisation import Target, extraction_likelihoods, text_target

EL_ROLES = ("forget", "holdout")


@torch.no_grad()
def _teacher_forced(model: Any, sequences: list[list[int]], eos_id: int | None, pad_id: int,
                    batch_size: int) -> list[tuple[float, float, int]]:
    """One pass per batch: MA (final EOS not scored), summed NLL and token count (EOS included)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        batch = pad_batch([{"input_ids": s, "labels": s} for s in chunk], pad_id)
        labels = batch["labels"].to(device)
        logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
        sums, counts = sequence_nll(logits, labels)
        content = labels.clone()
        for row, s in enumerate(chunk):
            if eos_id is not None and s[-1] == eos_id:
                content[row, len(s) - 1] = IGNORE_INDEX
        correct, mask = token_correct(logits, content)
        ma = (correct.sum(-1) / mask.sum(-1).clamp_min(1)).tolist()
        out.extend(zip(ma, sums.tolist(), counts.tolist()))
    model.train(was_training)
    return out


def evaluate_passages(model: Any, tokenizer: Any, passages: Mapping[str, Sequence[Mapping]], *, el_n: int = 10,
                      batch_size: int = 64, max_length: int = 512) -> tuple[dict[str, list[dict]], dict[str, float]]:
    """Per-item numbers and aggregates (``<role>_passages_MA`` / ``_EL<n>`` / ``_ppl``) for each role."""
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    items: dict[str, list[dict]] = {}
    aggregates: dict[str, float] = {}
    for role, records in passages.items():
        if not records:
            continue
        targets, full = [], []
        for r in records:
            target, ids, _ = text_target(tokenizer, r, max_length=max_length)
            targets.append(target)
            full.append(ids)
        # in a multi-process run each process scores a share of the passages
        forced = sharded_list(lambda part: _teacher_forced(model, part, eos, pad, batch_size), full)
        ma = [m for m, _, _ in forced]

        def likelihoods(part: list[Target]) -> list[float]:
            return extraction_likelihoods(model, part, n=el_n, pad_id=pad, eos_id=eos, batch_size=batch_size)

        el = sharded_list(likelihoods, targets) if role in EL_ROLES else [math.nan] * len(targets)
        el_all = None
        if role == "forget":
            el_all = sharded_list(likelihoods, [Target(t.input_ids, t.labels, 1) for t in targets])
        nll = [(total, count) for _, total, count in forced]
        rows = []
        for i, r in enumerate(records):
            row = {"index": i, "ma": ma[i], "nll": nll[i][0], "n_tokens": nll[i][1]}
            if role in EL_ROLES:
                row[f"el{el_n}"] = _clean(el[i])
            if el_all is not None:
                row[f"el{el_n}_all"] = _clean(el_all[i])
            if "author" in r:
                row["author"] = r["author"]
            rows.append(row)
        items[role] = rows
        aggregates[f"{role}_passages_MA"] = float(np.mean(ma))
        valid = [e for e in el if not math.isnan(e)]
        if valid:
            aggregates[f"{role}_passages_EL{el_n}"] = float(np.mean(valid))
        if el_all is not None:
            valid_all = [e for e in el_all if not math.isnan(e)]
            if valid_all:
                aggregates[f"{role}_passages_EL{el_n}_all"] = float(np.mean(valid_all))
        aggregates[f"{role}_passages_ppl"] = float(math.exp(sum(s for s, _ in nll) / max(1, sum(c for _, c in nll))))
    return items, aggregates


def _clean(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
