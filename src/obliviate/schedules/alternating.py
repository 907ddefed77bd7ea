"""Alternating epochs: one epoch on the retained data, then one on the forget data, repeated
(EUL, arXiv 2310.20150, §2.3 of the spec, after SCRUB's min-max alternation).

Every batch holds one role only, so an objective applies its retain terms on retain epochs and
its forget terms on forget epochs (each objective handles batches that lack a group). A *cycle*
is one retain epoch followed by one forget epoch (``first: forget`` swaps them); the Trainer sees
one cycle as one epoch, so its learning-rate schedule spans exactly the steps that run.

``retain_per_cycle`` limits a retain epoch to that many items, taken in turn from a seeded
permutation so that successive cycles cover the whole retain set (0, the default, is the paper's
full pass). The paper trains at most 3 or 5 epochs; 3 cycles is the default here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from obliviate.errors import ConfigError
from obliviate.schedules.base import SCHEDULES, Schedule, ScheduleContext
from obliviate.validation import option


@dataclass
class AlternatingConfig:
    cycles: int = option(3, ge=1)
    first: str = option("retain", choices=("retain", "forget"))
    retain_per_cycle: int = option(0, ge=0, hint="0: the whole retain set each cycle")


class RoleDataset(torch.utils.data.Dataset):
    """Forget examples at indices ``[0, F)``, retain records (as ``{"retain": record}``) after them."""

    def __init__(self, forget_items: list[dict], retain_items: list[dict]):
        self.forget_items = forget_items
        self.retain_items = retain_items

    def __len__(self) -> int:
        return len(self.forget_items) + len(self.retain_items)

    def __getitem__(self, index: int) -> dict:
        if index < len(self.forget_items):
            return self.forget_items[index]
        return {"retain": self.retain_items[index - len(self.forget_items)]}


class AlternatingBatches(torch.utils.data.Sampler):
    """Per cycle: the retain epoch's batches, then the forget epoch's (or the reverse), each
    shuffled with a generator seeded by (seed, cycle). Batches never mix roles."""

    def __init__(self, n_forget: int, n_retain: int, batch_size: int, *, first: str = "retain",
                 retain_per_cycle: int = 0, seed: int = 0):
        self.n_forget, self.n_retain, self.batch_size = n_forget, n_retain, batch_size
        self.first, self.seed = first, seed
        self.retain_per_cycle = min(retain_per_cycle or n_retain, n_retain)
        self._order = torch.randperm(n_retain, generator=torch.Generator().manual_seed(seed)).tolist()
        self._cycle = 0

    def set_epoch(self, epoch: int) -> None:
        self._cycle = epoch

    def __len__(self) -> int:
        return math.ceil(self.n_forget / self.batch_size) + math.ceil(self.retain_per_cycle / self.batch_size)

    def _chunks(self, indices: list[int]) -> list[list[int]]:
        return [indices[i:i + self.batch_size] for i in range(0, len(indices), self.batch_size)]

    def cycle_batches(self, cycle: int) -> list[list[int]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + cycle)
        forget = torch.randperm(self.n_forget, generator=gen).tolist()
        k = self.retain_per_cycle
        window = [self._order[(cycle * k + j) % self.n_retain] for j in range(k)]
        retain = [self.n_forget + window[i] for i in torch.randperm(k, generator=gen).tolist()]
        phases = [self._chunks(retain), self._chunks(forget)]
        return phases[0] + phases[1] if self.first == "retain" else phases[1] + phases[0]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.cycle_batches(self._cycle)
        self._cycle += 1
        return iter(batches)


@SCHEDULES.register("alternating")
class AlternatingSchedule(Schedule):
    """EUL / SCRUB: alternate an epoch on the retain set with an epoch on the forget set."""

    Config = AlternatingConfig

    def __init__(self, config: AlternatingConfig):
        super().__init__(config)
        self.seed = 0

    def prepare(self, context: ScheduleContext) -> None:
        self.seed = context.seed

    def training_overrides(self) -> dict[str, Any]:
        return {"num_train_epochs": self.config.cycles, "max_steps": -1}

    def train_batches(self, forget_items: list[dict], retain_items: list[dict],
                      batch_size: int) -> tuple[Any, Any]:
        if not retain_items:
            raise ConfigError("schedule 'alternating' trains retain epochs; give retain records and an objective "
                              "with a retain term")
        sampler = AlternatingBatches(len(forget_items), len(retain_items), batch_size, first=self.config.first,
                                     retain_per_cycle=self.config.retain_per_cycle,
                                     seed=self.seed)
        self.info = {"cycles": self.config.cycles, "first": self.config.first,
                     "retain_per_cycle": sampler.retain_per_cycle, "batches_per_cycle": len(sampler)}
        return RoleDataset(forget_items, retain_items), sampler
