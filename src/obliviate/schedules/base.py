"""Schedules set the training length and may change what is trained on while training runs
(ICU's per-sample re-check, EUL's alternating epochs); ``epochs`` is the plain fixed schedule.
A schedule may also compose the batches itself (:meth:`Schedule.train_batches`).

Before the trainer is built, :meth:`Schedule.prepare` receives a :class:`ScheduleContext` (the
tokenizer and, per forget item, what to prompt with and what it must stop producing). A schedule
may then choose which items each epoch draws (:meth:`Schedule.train_sampler`) and attach Trainer
callbacks that look at the model between epochs and stop training. ``info`` is what the run
summary records (epochs used, whether a cap was hit).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from obliviate.memorisation import Target
from obliviate.registry import Registry


@dataclass
class ForgetTarget:
    """One forget item as a schedule sees it: ``prompt_ids`` (question prompt or passage prefix),
    ``reference`` (the answer or suffix text it should stop producing) and the scored sequence."""

    prompt_ids: list[int]
    reference: str
    target: Target


@dataclass
class ScheduleContext:
    tokenizer: Any
    targets: list[ForgetTarget]
    seed: int = 0


class Schedule:
    name: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, config: Any):
        self.config = config
        self.info: dict[str, Any] = {}

    def training_overrides(self) -> dict[str, Any]:
        """TrainingArguments fields this schedule sets (``num_train_epochs``, ``max_steps``)."""
        return {}

    def prepare(self, context: ScheduleContext) -> None:
        """Called once before training with the forget targets."""

    def train_sampler(self) -> Any | None:
        """A sampler over forget-item indices that replaces the Trainer's random sampler, or None."""
        return None

    def train_batches(self, forget_items: list[dict], retain_items: list[dict],
                      batch_size: int) -> tuple[Any, Any] | None:
        """A ``(dataset, batch sampler)`` that replaces the paired forget/retain dataset, or None.

        ``forget_items`` are the encoded forget examples (``{"forget": ..., ...}``), ``retain_items``
        the encoded retain records; each batch must hold examples with the same groups.
        """
        return None

    def callbacks(self) -> list[Any]:
        """``transformers.TrainerCallback`` instances to attach to the unlearning trainer."""
        return []


SCHEDULES: Registry[Schedule] = Registry("schedule")


@dataclass
class EpochsConfig:
    epochs: float = 10.0
    max_steps: int = -1

    def __post_init__(self) -> None:
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("epochs or max_steps must be positive")


@SCHEDULES.register("epochs")
class EpochsSchedule(Schedule):
    """A fixed number of epochs over the forget set (or a fixed number of steps)."""

    Config = EpochsConfig

    def training_overrides(self) -> dict[str, Any]:
        return {"num_train_epochs": self.config.epochs, "max_steps": self.config.max_steps}
