"""The relearning attack: a few steps of ordinary fine-tuning on a copy of the model.

An honestly unlearned model should relearn the forgotten facts no faster than a model that never
saw them (the retain model under the same fine-tuning). A model that only hid them comes back
after a handful of steps, on forget data or even on unrelated data ("benign" relearning).
"""

from __future__ import annotations

import random
from typing import Any, Mapping, Sequence

from obliviate.registry import make_config
from obliviate.train.finetune import UserFinetuneConfig, finetune


def halves(n: int, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split of ``n`` forget items: the half relearned on, and the held-out half judged."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    cut = n // 2
    return sorted(order[:cut]), sorted(order[cut:])


def step_records(records: Sequence[Mapping], steps: int, batch_size: int, seed: int) -> list[Mapping]:
    """Exactly ``steps × batch_size`` records: seeded passes over ``records``, so one epoch of
    fine-tuning is exactly ``steps`` optimiser steps whatever the number of records."""
    if not records:
        raise ValueError("relearning needs at least one record")
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < steps * batch_size:
        block = list(range(len(records)))
        rng.shuffle(block)
        order += block
    return [records[i] for i in order[:steps * batch_size]]


def relearn(model: Any, tokenizer: Any, records: Sequence[Mapping], *, steps: int, batch_size: int,
            learning_rate: float, max_length: int, seed: int, show_progress: bool = True) -> Any:
    """Fine-tune every parameter of ``model`` (already a copy: the caller loads one) for ``steps``
    AdamW steps at a constant ``learning_rate``; returns the model."""
    for p in model.parameters():
        p.requires_grad_(True)
    config = make_config(UserFinetuneConfig, {"epochs": 1, "learning_rate": learning_rate, "batch_size": batch_size,
                                              "max_length": max_length, "scheduler": "constant"},
                         where="audit relearning")
    return finetune(model, tokenizer, step_records(records, steps, batch_size, seed), config, seed=seed,
                    show_progress=show_progress)
