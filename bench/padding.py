"""Padding of the training batches, with and without `training.group_by_length`, without a model run.

For each data set, three ways to batch: `off` (shuffled items, retain partners by position), `sorted`
(length-sorted batches only, partners by position: how grouping worked before partners were matched)
and `on` (sorted batches and length-matched retain partners, what `group_by_length: true` does). For
each, the fraction of pad tokens over every batch of epochs 0-2 as the sampler orders them and
the collator pads them (forget and retain groups; GradDiff's and NPO's batches).

Data sets: the TOFU-like records of bench/throughput.py (lognormal lengths, mean ~140 tokens) at
TOFU's forget10 sizes (400 forget, 3600 retain) and forget01 sizes (40, 360), batch 8; and the
embedded benchmark (`authors`, default size, forget10, seed 0, its own tokenizer, the default
recipe's batch of 16 and fact-only forget labels). The embedded models are built first when they
are not cached (a few minutes).

    .venv/bin/python bench/padding.py [--epochs 3]

Writes bench/results/padding.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

MODES = {"off": (False, False), "sorted": (True, False), "on": (True, True)}  # (grouped batches, matched partners)


def padding(forget_items: list[dict], retain_items: list[dict], pad_id: int, batch_size: int, epochs: int,
            grouped: bool, matched: bool) -> float:
    from obliviate.schedules.base import ForgetSampler
    from obliviate.train.data import PairedCollator, PairedDataset

    dataset = PairedDataset(forget_items, retain_items, seed=0, match_lengths=matched)
    sampler = ForgetSampler(len(forget_items), seed=0)
    if grouped:
        sampler.group_by_length(batch_size, dataset.padded_length)
    collate = PairedCollator(pad_id)
    real = total = 0
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        keys = list(sampler)
        for start in range(0, len(keys), batch_size):
            batch = collate([dataset[k] for k in keys[start:start + batch_size]])
            for group in ("forget", "retain"):
                real += int(batch[group]["attention_mask"].sum())
                total += batch[group]["attention_mask"].numel()
    return 1 - real / total


def tofu_like(n_forget: int, n_retain: int) -> tuple[list[dict], list[dict], int]:
    from throughput import FULL, tokenizer_and_records

    from obliviate.train.data import encode_forget, encode_record

    tokenizer, forget, retain = tokenizer_and_records(FULL["vocab_size"], n_forget, n_retain)
    items = encode_forget(tokenizer, forget, forget_tokens="answer", max_length=512, with_idk=False, seed=0)
    return items, [encode_record(tokenizer, r, max_length=512) for r in retain], tokenizer.pad_token_id


def embedded() -> tuple[list[dict], list[dict], int]:
    from obliviate.benchmarks.authors import ensure_models, load
    from obliviate.models.loading import load_tokenizer
    from obliviate.train.data import encode_forget, encode_record

    data = load("forget10", "default", seed=0)
    tokenizer = load_tokenizer(ensure_models("forget10", "default", 0, show_progress=False).target)
    items = encode_forget(tokenizer, data.forget, forget_tokens="fact", max_length=512, with_idk=False, seed=0)
    return items, [encode_record(tokenizer, r, max_length=512) for r in data.retain], tokenizer.pad_token_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "results" / "padding.json"))
    args = parser.parse_args()
    sets = {"tofu_like_forget10 (400/3600, batch 8)": (lambda: tofu_like(400, 3600), 8),
            "tofu_like_forget01 (40/360, batch 8)": (lambda: tofu_like(40, 360), 8),
            "embedded_authors_default (batch 16)": (embedded, 16)}
    rows = {}
    print(f"{'data':<46} " + " ".join(f"{m:>7}" for m in MODES), flush=True)
    for name, (build, batch_size) in sets.items():
        forget, retain, pad_id = build()
        rows[name] = {"forget": len(forget), "retain": len(retain), "batch_size": batch_size,
                      **{mode: padding(forget, retain, pad_id, batch_size, args.epochs, *flags)
                         for mode, flags in MODES.items()}}
        print(f"{name:<46} " + " ".join(f"{100 * rows[name][m]:>6.1f}%" for m in MODES), flush=True)
    Path(args.out).write_text(json.dumps({"epochs": args.epochs, "padding_fraction": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
