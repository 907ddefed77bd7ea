"""One unlearning run: pair the data, let the scope and schedule look at it, train with the
objective."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from obliviate.objectives.base import Objective, Reference
from obliviate.schedules.base import Schedule, ScheduleContext
from obliviate.scopes.base import Scope
from obliviate.train.args import training_arguments
from obliviate.train.data import (
    PairedCollator,
    PairedDataset,
    attach_reference_logps,
    encode_forget,
    encode_record,
    forget_targets,
    record_text,
    scope_data,
)


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
    info: dict[str, Any] = field(default_factory=dict)  # what scope, schedule and pairing recorded
    composition: Any = None  # set by the caller that composes the answering model


def pair_neighbours(forget: Sequence[dict], retain: Sequence[dict], embedder_kind: str) -> tuple[list[dict], str]:
    """Each forget record's nearest retain record by sentence embedding (ICU's 1-NN pairing)."""
    from obliviate.data.neighbours import nearest_neighbours
    from obliviate.errors import DataError
    from obliviate.models.embedding import load_embedder

    if not retain:
        raise DataError("the objective pairs each forget item with its nearest retain item; give retain records")
    queries, candidates = [record_text(r) for r in forget], [record_text(r) for r in retain]
    embedder = load_embedder(embedder_kind, corpus=queries + candidates)
    index = nearest_neighbours(queries, candidates, embedder)
    return [retain[i] for i in index], embedder.name


def unlearn_model(model: Any, tokenizer: Any, forget: Sequence[dict], retain: Sequence[dict], *,
                  objective: Objective, scope: Scope, schedule: Schedule, training: TrainingConfig,
                  seed: int = 0, show_progress: bool = True) -> UnlearnOutcome:
    """Unlearn ``forget`` from ``model`` while keeping ``retain``; returns the trained model."""
    started = time.perf_counter()
    cfg = objective.config
    info: dict[str, Any] = {}
    if getattr(cfg, "augment", False):
        from obliviate.data.augment import augment_forget, augment_retain

        forget, retain = augment_forget(forget), augment_retain(forget, retain)
        info["augmented"] = {"forget": len(forget), "retain": len(retain)}
    neighbours = None
    if "neighbour" in objective.extra_groups:
        neighbours, embedder_name = pair_neighbours(forget, retain, getattr(cfg, "embedder", "auto"))
        info["neighbours"] = {"embedder": embedder_name}
    forget_items = encode_forget(tokenizer, forget, forget_tokens=cfg.forget_tokens,
                                 max_length=training.max_length, with_idk="forget_idk" in objective.extra_groups,
                                 seed=seed, neighbours=neighbours)
    retain_items = []
    if "retain" in objective.groups() or scope.needs_data:
        retain_items = [encode_record(tokenizer, r, max_length=training.max_length) for r in retain]
    if objective.reference_logps:
        attach_reference_logps(model, forget_items, objective.reference_logps, tokenizer.pad_token_id)

    from transformers import set_seed

    set_seed(seed)  # a scope may initialise weights (LoRA, an assistant): same seed, same run
    model = scope.prepare(model, scope_data(forget_items, retain_items, tokenizer.pad_token_id, seed)
                          if scope.needs_data else None)
    schedule.prepare(ScheduleContext(tokenizer, forget_targets(tokenizer, forget, forget_items,
                                                               max_length=training.max_length), seed))
    trained_retain = retain_items if "retain" in objective.groups() else []
    composed = schedule.train_batches(forget_items, trained_retain, training.batch_size)
    dataset, batch_sampler = composed or (PairedDataset(forget_items, trained_retain, seed=seed), None)
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
        model=model, args=args, train_dataset=dataset, data_collator=PairedCollator(tokenizer.pad_token_id),
        objective=objective, reference=reference, train_sampler=schedule.train_sampler(),
        train_batch_sampler=batch_sampler,
        callbacks=[*scope.callbacks(), *schedule.callbacks()])
    trainer.train()
    if scope.info:
        info["scope"] = scope.info
    if schedule.info:
        info["schedule"] = schedule.info
    return UnlearnOutcome(trainer.model, trainer.history, time.perf_counter() - started,
                          scope.trainable_parameters(trainer.model), info)
