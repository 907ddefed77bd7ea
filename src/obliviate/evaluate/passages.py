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

from obliviate.data.encoding import encode_text, pad_batch
from obliviate.logprobs import sequence_nll
from obliviate.memorisation import Target, extraction_likelihoods, memorisation_accuracy, target_from_item


EL_ROLES = ("forget", "holdout")


def _targets(tokenizer: Any, records: Sequence[Mapping], max_length: int) -> tuple[list[Target], list[list[int]]]:
    targets, full = [], []
    for r in records:
        text = r.get("text") or r.get("prefix", "") + r.get("suffix", "")
        prefix = r.get("prefix") if r.get("suffix") is not None else None
        enc = encode_text(tokenizer, text, max_length=max_length, prefix_chars=len(prefix) if prefix else None)
        content = len(enc.input_ids) - (1 if enc.input_ids[-1] == tokenizer.eos_token_id else 0)
        cut = enc.prefix_tokens if prefix else max(1, content // 2)
        targets.append(target_from_item(enc.input_ids, enc.labels, cut, tokenizer.eos_token_id))
        full.append(enc.input_ids)
    return targets, full


@torch.no_grad()
def _nll(model: Any, sequences: list[list[int]], pad_id: int, batch_size: int) -> list[tuple[float, int]]:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        batch = pad_batch([{"input_ids": s, "labels": s} for s in chunk], pad_id)
        logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
        sums, counts = sequence_nll(logits, batch["labels"].to(device))
        out.extend(zip(sums.tolist(), counts.tolist()))
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
        targets, full = _targets(tokenizer, records, max_length)
        ma = memorisation_accuracy(model, targets, pad, batch_size)
        el = (extraction_likelihoods(model, targets, n=el_n, pad_id=pad, eos_id=eos, batch_size=batch_size)
              if role in EL_ROLES else [math.nan] * len(targets))
        el_all = None
        if role == "forget":
            el_all = extraction_likelihoods(model, [Target(t.input_ids, t.labels, 1) for t in targets], n=el_n,
                                            pad_id=pad, eos_id=eos, batch_size=batch_size)
        nll = _nll(model, full, pad, batch_size)
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
