"""One unlearning run: pair the data, let the scope and schedule look at it, train with the
objective."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from obliviate.errors import ConfigError
from obliviate.objectives.base import Objective, Reference
from obliviate.schedules.base import Schedule, ScheduleContext
from obliviate.scopes.base import Scope
from obliviate.train.args import trainer_output_dir, training_arguments
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
from obliviate.train.finetune import (
    WARMUP_HINT,
    reporting_integrations,
    trainer_schedulers,
)
from obliviate.validation import option


@dataclass
class TrainingConfig:
    """Optimiser settings. Defaults are TOFU's unlearning setup (lr 1e-5, weight decay 0.01,
    linear decay) scaled to one device; the embedded recipe sets values for its tiny model.
    ``save_every``/``keep_checkpoints``: checkpoints for resuming an interrupted run."""

    learning_rate: float = option(1e-5, gt=0)
    batch_size: int = option(8, ge=1)
    gradient_accumulation_steps: int = option(1, ge=1)
    weight_decay: float = option(0.01, ge=0)
    scheduler: str = option("linear", choices=trainer_schedulers)
    warmup_ratio: float = option(0.0, ge=0, hint=WARMUP_HINT)
    max_length: int = option(512, ge=2)  # a prompt token and an answer token
    logging_steps: int = option(5, ge=1)
    report_to: str = option("none", choices=reporting_integrations,
                            hint="installed reporting integrations; install the one you name first")
    #: checkpoint every N optimiser steps into the output folder (``--resume`` continues); None: never
    save_every: int | None = option(None, ge=1)
    #: keep the checkpoints in the output folder after the run completes (default: removed)
    keep_checkpoints: bool = False
    #: batches of similar lengths, each forget item paired with a retain item of its length: on
    #: TOFU-like lengths padding falls from ~39 % to ~7.5 % of the tokens (bench/padding.py). The
    #: embedded recipe turns it off: its values were tuned without it, and it changes the data order
    group_by_length: bool = True
    #: recompute activations in the backward pass (gradient checkpointing): less memory, more compute
    activation_checkpointing: bool = False

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


def check_training_records(tokenizer: Any, forget: Sequence[dict], retain: Sequence[dict], *,
                           objective: Objective, scope: Scope, training: TrainingConfig) -> dict[str, int]:
    """Encode the records as training will, without a model, so that a record that cannot be
    trained on (an answer longer than ``max_length``, no label tokens) is refused before the
    model loads. Returns how many prompts each side had shortened."""
    cfg = objective.config
    forget_counts, retain_counts = Counter(), Counter()
    encode_forget(tokenizer, forget, forget_tokens=cfg.forget_tokens, max_length=training.max_length,
                  with_idk="forget_idk" in objective.extra_groups, seed=0, counts=forget_counts)
    if "retain" in objective.groups() or scope.needs_data or "neighbour" in objective.extra_groups:
        for n, record in enumerate(retain, 1):
            encode_record(tokenizer, record, max_length=training.max_length, where=f"retain record {n}",
                          counts=retain_counts)
    return {"forget": forget_counts["shortened"], "retain": retain_counts["shortened"]}


def unlearn_model(model: Any, tokenizer: Any, forget: Sequence[dict], retain: Sequence[dict], *,
                  objective: Objective, scope: Scope, schedule: Schedule, training: TrainingConfig,
                  seed: int = 0, show_progress: bool = True, checkpoint_dir: str | Path | None = None,
                  resume: bool = False, holdout: Sequence[dict] = ()) -> UnlearnOutcome:
    """Unlearn ``forget`` from ``model`` while keeping ``retain``; returns the trained model.

    ``holdout``: never-trained records of the forget set's kind, for a schedule that compares the
    forget set with unseen data (``until_unseen``); never trained on.

    With ``checkpoint_dir`` and ``training.save_every``, Trainer checkpoints (model or adapter,
    optimiser, scheduler, RNG states, step) go there; ``resume`` continues from the newest
    complete one. Everything before training (encoding, reference log-probs, a scope's mask or
    initialisation) is recomputed from the same inputs and seed, so a resumed run equals an
    uninterrupted one."""
    started = time.perf_counter()
    cfg = objective.config
    info: dict[str, Any] = {}
    requested = list(forget)  # what a schedule checks: the request, not its augmentations
    if getattr(cfg, "augment", False):
        from obliviate.data.augment import augment_forget, augment_retain

        forget, retain = augment_forget(forget), augment_retain(forget, retain)
        info["augmented"] = {"forget": len(forget), "retain": len(retain)}
    neighbours = None
    if "neighbour" in objective.extra_groups:
        neighbours, embedder_name = pair_neighbours(forget, retain, getattr(cfg, "embedder", "auto"))
        info["neighbours"] = {"embedder": embedder_name}
    forget_counts, retain_counts = Counter(), Counter()
    forget_items = encode_forget(tokenizer, forget, forget_tokens=cfg.forget_tokens,
                                 max_length=training.max_length, with_idk="forget_idk" in objective.extra_groups,
                                 seed=seed, neighbours=neighbours, counts=forget_counts)
    retain_items = []
    if "retain" in objective.groups() or scope.needs_data:
        retain_items = [encode_record(tokenizer, r, max_length=training.max_length, where=f"retain record {n}",
                                      counts=retain_counts) for n, r in enumerate(retain, 1)]
    if forget_counts["shortened"] or retain_counts["shortened"]:
        info["shortened_prompts"] = {"forget": forget_counts["shortened"], "retain": retain_counts["shortened"],
                                     "max_length": training.max_length}
    if objective.reference_logps:
        attach_reference_logps(model, forget_items, objective.reference_logps, tokenizer.pad_token_id)

    from transformers import set_seed

    set_seed(seed)  # a scope may initialise weights (LoRA, an assistant): same seed, same run
    model = scope.prepare(model, scope_data(forget_items, retain_items, tokenizer.pad_token_id, seed)
                          if scope.needs_data else None)
    schedule.prepare(ScheduleContext(tokenizer, forget_targets(tokenizer, forget, forget_items,
                                                               max_length=training.max_length), seed,
                                     forget=requested, holdout=list(holdout), max_length=training.max_length))
    trained_retain = retain_items if "retain" in objective.groups() else []
    composed = schedule.train_batches(forget_items, trained_retain, training.batch_size)
    dataset, batch_sampler = composed or (PairedDataset(forget_items, trained_retain, seed=seed,
                                                                match_lengths=training.group_by_length), None)
    reference = Reference(model_logits=scope.reference_logits(model) if objective.needs_reference_model else None)
    from obliviate.train.checkpoints import (
        CheckpointCallback,
        latest_checkpoint,
        remove_incomplete,
    )
    from obliviate.train.trainer import UnlearningTrainer

    save_every = training.save_every
    if save_every and checkpoint_dir is None:
        raise ConfigError("training.save_every needs a folder for the checkpoints (the run's output folder)")
    sampler = None
    if batch_sampler is None:
        sampler = schedule.train_sampler(len(forget_items), seed)
        if training.group_by_length:
            from obliviate.distributed import world_size

            # Accelerate gives each process one of every N consecutive batches: group by the global
            # batch, so N processes × batch b see the batches one process × batch N·b sees
            sampler.group_by_length(training.batch_size * world_size(), dataset.padded_length)
    callbacks = [*scope.callbacks(), *schedule.callbacks()]
    with trainer_output_dir(str(checkpoint_dir) if save_every else None) as output_dir:
        args = training_arguments(
            output_dir=output_dir, epochs=1, learning_rate=training.learning_rate, batch_size=training.batch_size,
            gradient_accumulation_steps=training.gradient_accumulation_steps, seed=seed,
            scheduler=training.scheduler, weight_decay=training.weight_decay, warmup_ratio=training.warmup_ratio,
            logging_steps=training.logging_steps, report_to=training.report_to, show_progress=show_progress,
            save_steps=save_every, extra={"activation_checkpointing": training.activation_checkpointing})
        for key, value in schedule.training_overrides().items():
            setattr(args, key, value)
        resume_from = None
        if save_every:
            callbacks.append(CheckpointCallback(output_dir))
            if resume:
                remove_incomplete(output_dir)
                resume_from = latest_checkpoint(output_dir)
        trainer = UnlearningTrainer(
            model=model, args=args, train_dataset=dataset, data_collator=PairedCollator(tokenizer.pad_token_id),
            objective=objective, reference=reference, train_sampler=sampler, train_batch_sampler=batch_sampler,
            callbacks=callbacks)
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if resume_from:
        info["resumed_from_step"] = int(resume_from.name.split("-")[1])
    if scope.info:
        info["scope"] = scope.info
    if schedule.info:
        info["schedule"] = schedule.info
    return UnlearnOutcome(trainer.model, trainer.history, time.perf_counter() - started,
                          scope.trainable_parameters(trainer.model), info)
