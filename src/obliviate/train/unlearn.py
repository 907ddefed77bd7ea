"""One unlearning run: wrap the model in its scope, pair the data, train with the objective."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from obliviate.data.encoding import encode_pair
from obliviate.objectives.base import Objective, Reference
from obliviate.schedules.base import Schedule
from obliviate.scopes.base import Scope
from obliviate.train.args import training_arguments
from obliviate.train.data import PairedCollator, PairedDataset, attach_reference_logps, encode_forget


@dataclass
class TrainingConfig:
    """Optimiser settings. Defaults are TOFU's unlearning setup (lr 1e-5, weight decay 0.01,
    linear decay) scaled to one device; the embedded recipe sets values for its tiny model."""

    learning_rate: float = 1e-5
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.01
    scheduler: str = "linear"
    warmup_ratio: float = 0.0
    max_length: int = 512
    logging_steps: int = 5
    report_to: str = "none"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class UnlearnOutcome:
    model: Any
    history: list[dict]
    seconds: float
    trainable_parameters: int


def unlearn_model(model: Any, tokenizer: Any, forget: Sequence[dict], retain: Sequence[dict], *,
                  objective: Objective, scope: Scope, schedule: Schedule, training: TrainingConfig,
                  seed: int = 0, show_progress: bool = True) -> UnlearnOutcome:
    """Unlearn ``forget`` from ``model`` while keeping ``retain``; returns the trained model."""
    started = time.perf_counter()
    cfg = objective.config
    forget_items = encode_forget(tokenizer, forget, forget_tokens=cfg.forget_tokens,
                                 max_length=training.max_length, with_idk="forget_idk" in objective.extra_groups,
                                 seed=seed)
    retain_items = []
    if "retain" in objective.groups():
        retain_items = [{"input_ids": e.input_ids, "labels": e.labels} for e in
                        (encode_pair(tokenizer, r["question"], r["answer"], max_length=training.max_length)
                         for r in retain)]
    if objective.reference_logps:
        attach_reference_logps(model, forget_items, objective.reference_logps, tokenizer.pad_token_id)

    model = scope.prepare(model)
    reference = Reference(model_logits=scope.reference_logits(model) if objective.needs_reference_model else None)
    args = training_arguments(
        output_dir=None, epochs=1, learning_rate=training.learning_rate, batch_size=training.batch_size,
        gradient_accumulation_steps=training.gradient_accumulation_steps, seed=seed,
        scheduler=training.scheduler, weight_decay=training.weight_decay, warmup_ratio=training.warmup_ratio,
        logging_steps=training.logging_steps, report_to=training.report_to, show_progress=show_progress,
        extra=None)
    for key, value in schedule.training_overrides().items():
        setattr(args, key, value)

    from obliviate.train.trainer import UnlearningTrainer

    trainer = UnlearningTrainer(
        model=model, args=args, train_dataset=PairedDataset(forget_items, retain_items, seed=seed),
        data_collator=PairedCollator(tokenizer.pad_token_id), objective=objective, reference=reference,
        callbacks=schedule.callbacks())
    trainer.train()
    return UnlearnOutcome(trainer.model, trainer.history, time.perf_counter() - started,
                          scope.trainable_parameters(trainer.model))
