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
from typing import Any, Callable, ClassVar, Iterator, NamedTuple, Sequence

import torch

from obliviate.memorisation import Target
from obliviate.registry import Registry
from obliviate.validation import option


@dataclass
class ForgetTarget:
    """One forget item as a schedule sees it: ``prompt_ids`` (question prompt or passage prefix),
    ``reference`` (the answer or suffix text it should stop producing) and the scored sequence."""

    prompt_ids: list[int]
    reference: str
    target: Target


@dataclass
class ScheduleContext:
    """What a schedule may look at: the forget ``targets`` as above, the forget records, and
    never-trained ``holdout`` records of the same kind when the caller has them."""

    tokenizer: Any
    targets: list[ForgetTarget]
    seed: int = 0
    forget: Sequence[dict] = ()
    holdout: Sequence[dict] = ()
    max_length: int = 512


class ItemKey(NamedTuple):
    """What a forget sampler yields: the forget item and the epoch drawing it. The dataset pairs
    the item's retain partner from these alone, so every process of a multi-process run, and a
    resumed run, serves the same pairs (no counter that differs per process or restarts)."""

    index: int
    epoch: int


class ForgetSampler(torch.utils.data.Sampler):
    """Each epoch, a shuffle of the forget items seeded by (seed, epoch). The Trainer (through
    Accelerate) calls :meth:`set_epoch` before every epoch, also when it resumes mid-run."""

    #: length grouping sorts this many batches' worth of items at a time (as Trainer's own
    #: LengthGroupedSampler does), so batches still vary between epochs
    MEGABATCH = 16

    def __init__(self, n_items: int, seed: int = 0):
        self.n_items = n_items
        self.seed = seed
        self.epoch = 0
        self._grouping: tuple[int, Callable[[int, int], int]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def group_by_length(self, batch_size: int, length: Callable[[int, int], int]) -> None:
        """Order each epoch so that every batch holds items of similar padded length
        (``length(index, epoch)``): shuffle, sort within megabatches, cut into batches, shuffle the
        full batches (a short one stays last, so batch boundaries stay where the loader cuts)."""
        self._grouping = (int(batch_size), length)

    def active(self) -> list[int]:
        """The items this epoch draws from (all of them; ICU drops the forgotten ones)."""
        return list(range(self.n_items))

    def __len__(self) -> int:
        return len(self.active())

    def __iter__(self) -> Iterator[ItemKey]:
        active = self.active()
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = [active[i] for i in torch.randperm(len(active), generator=gen).tolist()]
        if self._grouping is not None:
            order = self._grouped(order, gen)
        return iter([ItemKey(i, self.epoch) for i in order])

    def _grouped(self, order: list[int], gen: torch.Generator) -> list[int]:
        size, length = self._grouping
        lengths = {i: length(i, self.epoch) for i in order}
        mega = size * self.MEGABATCH
        batches: list[list[int]] = []
        for start in range(0, len(order), mega):
            chunk = sorted(order[start:start + mega], key=lambda i: -lengths[i])
            batches += [chunk[j:j + size] for j in range(0, len(chunk), size)]
        full = [b for b in batches if len(b) == size]
        short = [b for b in batches if len(b) < size]
        return [i for k in torch.randperm(len(full), generator=gen).tolist() for i in full[k]] + \
            [i for b in short for i in b]


class Schedule:
    name: ClassVar[str]
    #: whether a run can resume mid-way (a schedule with state between epochs cannot yet)
    supports_checkpoints: ClassVar[bool] = True
    #: whether the schedule reads never-trained holdout records (:attr:`ScheduleContext.holdout`)
    reads_holdout: ClassVar[bool] = False
    Config: ClassVar[type]

    def __init__(self, config: Any):
        self.config = config
        self.info: dict[str, Any] = {}

    def training_overrides(self) -> dict[str, Any]:
        """TrainingArguments fields this schedule sets (``num_train_epochs``, ``max_steps``)."""
        return {}

    def check_inputs(self, forget: Sequence[dict], holdout: Sequence[dict]) -> None:
        """Raise a one-line error when the records cannot serve this schedule (before any model loads)."""

    def prepare(self, context: ScheduleContext) -> None:
        """Called once before training with the forget targets."""

    def train_sampler(self, n_items: int, seed: int) -> ForgetSampler:
        """The sampler of forget items (:class:`ItemKey`) each epoch trains on."""
        return ForgetSampler(n_items, seed)

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
    epochs: float = option(10.0, ge=0)
    max_steps: int = option(-1, ge=-1, hint="-1: as many as the epochs take")

    def __post_init__(self) -> None:
        # One of the two must bound training: a rule across options, not a per-option range
        # (those are checked after construction, so out-of-range values are left to them here).
        if self.epochs == 0 and self.max_steps in (-1, 0):
            raise ValueError("epochs or max_steps must be positive")


@SCHEDULES.register("epochs")
class EpochsSchedule(Schedule):
    """A fixed number of epochs over the forget set (or a fixed number of steps)."""

    Config = EpochsConfig

    def training_overrides(self) -> dict[str, Any]:
        return {"num_train_epochs": self.config.epochs, "max_steps": self.config.max_steps}
