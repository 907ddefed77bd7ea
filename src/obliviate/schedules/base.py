"""Schedules set the training length and may add Trainer callbacks that change what is trained on
(ICU's per-sample re-check, EUL's alternating epochs); ``epochs`` is the plain fixed schedule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from obliviate.registry import Registry


class Schedule:
    name: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, config: Any):
        self.config = config

    def training_overrides(self) -> dict[str, Any]:
        """TrainingArguments fields this schedule sets (``num_train_epochs``, ``max_steps``)."""
        return {}

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
