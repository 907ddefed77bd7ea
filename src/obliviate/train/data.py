"""Paired forget/retain examples for the unlearning trainer.

Each example pairs one forget item with one retain item (cycled so that the whole retain set is
seen over training), for preference objectives an "I don't know" answer, and for ICU the forget
item's nearest retained neighbour. Records are QA (``question``/``answer``, the prompt masked) or
text (``text`` or ``prefix``+``suffix``, every token in the loss). The collator pads the groups of a
batch that have similar lengths to one length, so that the objective runs them in one forward pass.
"""

from __future__ import annotations

import random
from collections import Counter
from importlib import resources
from typing import Any, Sequence

import torch

from obliviate.data.encoding import encode_pair, encode_text, pad_batch
from obliviate.errors import ConfigError, DataError
from obliviate.logprobs import IGNORE_INDEX, sequence_nll
from obliviate.memorisation import target_from_item, text_target
from obliviate.schedules.base import ForgetTarget, ItemKey
from obliviate.scopes.base import ScopeData


def idk_answers() -> list[str]:
    text = resources.files("obliviate").joinpath("resources/idk.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def is_text_record(record: dict) -> bool:
    return "question" not in record


def record_text(record: dict) -> str:
    """The whole text of a record: a passage, or question and answer (for similarity search)."""
    if is_text_record(record):
        return record.get("text") or record.get("prefix", "") + record.get("suffix", "")
    return f"{record['question']} {record['answer']}"


def encode_record(tokenizer: Any, record: dict, *, max_length: int, fact: bool = False,
                  where: str = "record", counts: Counter | None = None) -> dict:
    """``input_ids``/``labels`` of one training record; ``fact`` keeps only the fact-value tokens in
    the labels. A prompt too long for ``max_length`` loses its earliest tokens (counted in
    ``counts["shortened"]``); an answer that alone does not fit is refused, since training on a
    cut answer (or on none) would silently train on something else than the record."""
    if is_text_record(record):
        enc = encode_text(tokenizer, record_text(record), max_length=max_length)
        return {"input_ids": enc.input_ids, "labels": enc.labels}
    if not record["answer"].strip():
        raise DataError(f"{where}: its answer is empty, so there is nothing to train on; give the answer or "
                        "drop the record")
    pair = encode_pair(tokenizer, record["question"], record["answer"], max_length=max_length,
                       fact_span=record.get("fact_span") if fact else None)
    if pair.answer_cut:
        raise DataError(f"{where}: its answer alone is longer than training.max_length={max_length} tokens; "
                        "raise training.max_length or shorten the answer")
    if pair.shortened and counts is not None:
        counts["shortened"] += 1
    labels = pair.fact_labels if fact else pair.labels
    if all(label == IGNORE_INDEX for label in labels):
        raise DataError(f"{where}: no tokens left to train on (empty answer or fact span); fix the record"
                        + (" or use objective.forget_tokens=answer" if fact else ""))
    return {"input_ids": pair.input_ids, "labels": labels}


def encode_forget(tokenizer: Any, records: Sequence[dict], *, forget_tokens: str, max_length: int,
                  with_idk: bool, seed: int, neighbours: Sequence[dict] | None = None,
                  counts: Counter | None = None) -> list[dict]:
    """Encode forget items; with ``forget_tokens="fact"`` the labels cover the fact value only."""
    if forget_tokens == "fact":
        missing = [i for i, r in enumerate(records, 1) if "fact_span" not in r]
        if missing:
            raise ConfigError(f"objective.forget_tokens=fact needs 'fact_span' on every forget record; "
                              f"record {missing[0]} has none (use forget_tokens=answer)")
    if with_idk and any(is_text_record(r) for r in records):
        raise ConfigError("an 'I don't know' objective needs question/answer forget records, not text records")
    rng = random.Random(seed)
    idk = idk_answers()
    items = []
    for n, r in enumerate(records):
        item = {"forget": encode_record(tokenizer, r, max_length=max_length, fact=forget_tokens == "fact",
                                        where=f"forget record {n + 1}", counts=counts)}
        if with_idk:
            alt = encode_record(tokenizer, {"question": r["question"], "answer": rng.choice(idk)},
                                max_length=max_length, where=f"forget record {n + 1} (its 'I don't know' answer)")
            item["forget_idk"] = alt
        if neighbours is not None:
            item["neighbour"] = encode_record(tokenizer, neighbours[n], max_length=max_length,
                                              where=f"forget record {n + 1}'s retain neighbour")
        items.append(item)
    return items


def forget_targets(tokenizer: Any, records: Sequence[dict], items: Sequence[dict], *,
                   max_length: int) -> list[ForgetTarget]:
    """What a schedule checks per forget item: the prompt (question, or a passage's prefix), the
    reference text (answer, or suffix; a passage without a prefix is cut at its middle token) and
    the sequence scored for MA / EL with the labels the objective trains on."""
    eos = tokenizer.eos_token_id
    targets = []
    for record, item in zip(records, items):
        ids, labels = item["forget"]["input_ids"], item["forget"]["labels"]
        if is_text_record(record):
            target, _, reference = text_target(tokenizer, record, max_length=max_length)
            targets.append(ForgetTarget(target.input_ids[:target.first_cut], reference, target))
            continue
        cut = next((i for i, lab in enumerate(encode_pair(
            tokenizer, record["question"], record["answer"], max_length=max_length).labels)
            if lab != IGNORE_INDEX), len(ids))
        reference = record["answer"]
        targets.append(ForgetTarget(list(ids[:cut]), reference, target_from_item(ids, labels, cut, eos)))
    return targets


class PairedDataset(torch.utils.data.Dataset):
    """Forget items, each served with a retain partner that is a pure function of (forget index,
    epoch, seed): epoch ``e`` uses entries ``e·F … e·F + F − 1`` (mod R) of a seeded retain
    permutation, so one epoch pairs distinct retain items and successive epochs walk through the
    whole retain set. Item ``i`` gets entry ``i + e·F``; with ``match_lengths`` the epoch's retain
    items go instead to the forget items by length rank (the shortest to the shortest), so that a
    batch of similar-length forget items (``training.group_by_length``) also has similar-length
    retain partners and little padding. Which retain items an epoch uses stays the same. Indexed by
    :class:`~obliviate.schedules.base.ItemKey`."""

    def __init__(self, forget_items: list[dict], retain_items: list[dict], seed: int = 0,
                 match_lengths: bool = False):
        self.forget_items = forget_items
        self.retain_items = retain_items
        self.match_lengths = match_lengths
        self._order = list(range(len(retain_items)))
        random.Random(seed).shuffle(self._order)
        self._partners: dict[int, list[int]] = {}  # epoch -> retain index per forget item (match_lengths)

    def __len__(self) -> int:
        return len(self.forget_items)

    def _own_length(self, index: int) -> int:
        """The longest of the forget item's own groups (forget, IDK answer, neighbour)."""
        return max(len(group["input_ids"]) for key, group in self.forget_items[index].items() if key != "ref_logps")

    def retain_index(self, index: int, epoch: int) -> int:
        if not self.match_lengths:
            return self._order[(index + epoch * len(self.forget_items)) % len(self._order)]
        if epoch not in self._partners:
            n = len(self.forget_items)
            window = [self._order[(i + epoch * n) % len(self._order)] for i in range(n)]
            window.sort(key=lambda r: (len(self.retain_items[r]["input_ids"]), r))
            partners = [0] * n
            for rank, i in enumerate(sorted(range(n), key=lambda i: (self._own_length(i), i))):
                partners[i] = window[rank]
            self._partners[epoch] = partners
        return self._partners[epoch][index]

    def padded_length(self, index: int, epoch: int) -> int:
        """What this example pads a batch to: its longest sequence, the retain partner included."""
        longest = self._own_length(index)
        if self.retain_items:
            longest = max(longest, len(self.retain_items[self.retain_index(index, epoch)]["input_ids"]))
        return longest

    def paired_retain(self, epoch: int = 0) -> list[dict]:
        """The retain item ``epoch`` pairs with each forget item."""
        if not self.retain_items:
            return []
        return [self.retain_items[self.retain_index(i, epoch)] for i in range(len(self.forget_items))]

    def __getitem__(self, key: ItemKey) -> dict:
        index, epoch = key
        item = dict(self.forget_items[index])
        if self.retain_items:
            item["retain"] = self.retain_items[self.retain_index(index, epoch)]
        return item


def scope_data(forget_items: list[dict], retain_items: list[dict], pad_id: int, seed: int) -> ScopeData:
    """What a scope may look at before training (WAGLE's attribution): the forget groups and the
    retain item the first epoch pairs with each of them."""
    paired = PairedDataset(forget_items, retain_items, seed=seed).paired_retain()
    return ScopeData([it["forget"] for it in forget_items], paired, pad_id, seed)


def shared_lengths(lengths: dict[str, int]) -> dict[str, int]:
    """The length each group is padded to: groups share the longest length of their bucket, and a
    group shorter than half of it starts a new bucket. Groups of one length go through the model
    in one forward pass (:func:`~obliviate.objectives.base.forward_groups`); a much shorter group
    (IdkDPO's "I don't know" answers beside long forget answers) gets its own instead of being
    padded to the forget answers' length."""
    padded: dict[str, int] = {}
    bucket = 0
    for group in sorted(lengths, key=lambda g: -lengths[g]):
        if 2 * lengths[group] < bucket or not bucket:
            bucket = lengths[group]
        padded[group] = bucket
    return {g: padded[g] for g in lengths}


class PairedCollator:
    """Pad the groups (and reference log-probs) of a list of paired examples: groups of similar
    length to one length (:func:`shared_lengths`)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, examples: Sequence[dict]) -> dict[str, Any]:
        groups = [k for k in examples[0] if k != "ref_logps"]
        lengths = shared_lengths({g: max(len(e[g]["input_ids"]) for e in examples) for g in groups})
        batch: dict[str, Any] = {g: pad_batch([e[g] for e in examples], self.pad_id, length=lengths[g])
                                 for g in groups}
        if "ref_logps" in examples[0]:
            batch["ref_logps"] = {k: torch.tensor([e["ref_logps"][k] for e in examples], dtype=torch.float32)
                                  for k in examples[0]["ref_logps"]}
        return batch


def attach_reference_logps(model: Any, items: list[dict], groups: Sequence[str], pad_id: int,
                           batch_size: int = 32) -> None:
    """Store the model's summed answer log-prob of each group in each item, once, before training.

    NPO and DPO need only this one number per sequence from the reference model, so no second
    model has to stay in memory. Computed on the model's device and dtype (so that
    log π_θ − log π_ref is 0 at step 0); in a multi-process run each process computes a share of
    the items and all receive every value.
    """
    from obliviate.distributed import sharded_map

    @torch.no_grad()
    def logps(indices: Sequence[int]) -> list[dict[str, float]]:
        device = next(model.parameters()).device
        rows: list[dict[str, float]] = [{} for _ in indices]
        for group in groups:
            for start in range(0, len(indices), batch_size):
                chunk = list(range(start, min(start + batch_size, len(indices))))
                batch = pad_batch([items[indices[k]][group] for k in chunk], pad_id)
                logits = model(input_ids=batch["input_ids"].to(device),
                               attention_mask=batch["attention_mask"].to(device)).logits
                sums, _ = sequence_nll(logits, batch["labels"].to(device))
                for k, value in zip(chunk, (-sums).tolist()):
                    rows[k][group] = value
        return rows

    was_training = model.training
    model.eval()
    try:
        for item, values in zip(items, sharded_map(logps, len(items))):
            item.setdefault("ref_logps", {}).update(values)
    finally:
        model.train(was_training)
