"""Paired forget/retain examples for the unlearning trainer.

Each example pairs one forget item with one retain item (cycled so that the whole retain set is
seen over training) and, for preference objectives, an "I don't know" answer. The collator pads
every group of a batch to one length so the objective can run them in one forward pass.
"""

from __future__ import annotations

import random
from importlib import resources
from typing import Any, Sequence

import torch

from obliviate.data.encoding import encode_pair, pad_batch
from obliviate.errors import ConfigError
from obliviate.logprobs import sequence_nll


def idk_answers() -> list[str]:
    text = resources.files("obliviate").joinpath("resources/idk.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def encode_forget(tokenizer: Any, records: Sequence[dict], *, forget_tokens: str, max_length: int,
                  with_idk: bool, seed: int) -> list[dict]:
    """Encode forget items; with ``forget_tokens="fact"`` the labels cover the fact value only."""
    if forget_tokens == "fact":
        missing = [i for i, r in enumerate(records, 1) if "fact_span" not in r]
        if missing:
            raise ConfigError(f"objective.forget_tokens=fact needs 'fact_span' on every forget record; "
                              f"record {missing[0]} has none (use forget_tokens=answer)")
    rng = random.Random(seed)
    idk = idk_answers()
    items = []
    for r in records:
        enc = encode_pair(tokenizer, r["question"], r["answer"], max_length=max_length,
                          fact_span=r.get("fact_span") if forget_tokens == "fact" else None)
        labels = enc.fact_labels if forget_tokens == "fact" else enc.labels
        item = {"forget": {"input_ids": enc.input_ids, "labels": labels}}
        if with_idk:
            alt = encode_pair(tokenizer, r["question"], rng.choice(idk), max_length=max_length)
            item["forget_idk"] = {"input_ids": alt.input_ids, "labels": alt.labels}
        items.append(item)
    return items


class PairedDataset(torch.utils.data.Dataset):
    """Forget items, each served with the next retain item of a seeded permutation."""

    def __init__(self, forget_items: list[dict], retain_items: list[dict], seed: int = 0):
        self.forget_items = forget_items
        self.retain_items = retain_items
        self._order = list(range(len(retain_items)))
        random.Random(seed).shuffle(self._order)
        self._served = 0

    def __len__(self) -> int:
        return len(self.forget_items)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.forget_items[index])
        if self.retain_items:
            item["retain"] = self.retain_items[self._order[self._served % len(self._order)]]
            self._served += 1
        return item


class PairedCollator:
    """Pad every group (and reference log-probs) of a list of paired examples to one length."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples: Sequence[dict]) -> dict[str, Any]:
        groups = [k for k in examples[0] if k != "ref_logps"]
        length = max(len(e[g]["input_ids"]) for e in examples for g in groups)
        batch: dict[str, Any] = {g: pad_batch([e[g] for e in examples], self.pad_id, length=length)
                                 for g in groups}
        if "ref_logps" in examples[0]:
            batch["ref_logps"] = {k: torch.tensor([e["ref_logps"][k] for e in examples], dtype=torch.float32)
                                  for k in examples[0]["ref_logps"]}
        return batch


@torch.no_grad()
def attach_reference_logps(model: Any, items: list[dict], groups: Sequence[str], pad_id: int,
                           batch_size: int = 32) -> None:
    """Store the model's summed answer log-prob of each group in each item, once, before training.

    NPO and DPO need only this one number per sequence from the reference model, so no second
    model has to stay in memory.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    for group in groups:
        for start in range(0, len(items), batch_size):
            chunk = items[start:start + batch_size]
            batch = pad_batch([it[group] for it in chunk], pad_id)
            logits = model(input_ids=batch["input_ids"].to(device),
                           attention_mask=batch["attention_mask"].to(device)).logits
            sums, _ = sequence_nll(logits, batch["labels"].to(device))
            for it, value in zip(chunk, (-sums).tolist()):
                it.setdefault("ref_logps", {})[group] = value
    model.train(was_training)
