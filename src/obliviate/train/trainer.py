"""The unlearning trainer: ``transformers.Trainer`` whose loss is the recipe's objective.

Everything else is Trainer's own (optimiser, scheduler, accumulation, logging, checkpoints,
Accelerate), so a recipe scales out with the launchers users already know.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import torch
from transformers import Trainer
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from obliviate.errors import TrainingError
from obliviate.logprobs import IGNORE_INDEX
from obliviate.objectives.base import ATTENDED_NORM, POSITIONS_NORM, TOKEN_NORM, Objective, Reference

#: every group a paired batch can carry (the all-reduce of token counts needs one list on all processes)
GROUPS = ("forget", "forget_idk", "neighbour", "retain")


class QuietProgressCallback(ProgressCallback):
    """Trainer's progress bar without a printed dict per logging step (history keeps them)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return None


def use_quiet_progress(trainer: Trainer) -> None:
    """Keep the bar (when enabled) but never print a dict per logging step."""
    trainer.pop_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(QuietProgressCallback)


class UnlearningTrainer(Trainer):
    """Trainer for paired forget/retain batches; ``compute_loss`` calls the objective."""

    def __init__(self, *args: Any, objective: Objective, reference: Reference | None = None,
                 train_sampler: Any = None, train_batch_sampler: Any = None, **kwargs: Any):
        self._schedule_sampler = train_sampler
        self._schedule_batches = train_batch_sampler
        super().__init__(*args, **kwargs)
        self.objective = objective
        self.reference = reference or Reference()
        self._objective_logs: dict[str, list[float]] = defaultdict(list)
        self.history: list[dict[str, float]] = []
        use_quiet_progress(self)

    def _get_train_sampler(self, train_dataset=None):
        # A schedule may choose which forget items each epoch draws (ICU drops forgotten ones).
        if self._schedule_sampler is not None:
            return self._schedule_sampler
        return super()._get_train_sampler(train_dataset)

    def get_train_dataloader(self):
        # A schedule may compose whole batches (EUL's alternating epochs keep each batch to one
        # role); Accelerate shards a batch sampler across processes like any other.
        if self._schedule_batches is None:
            return super().get_train_dataloader()
        from torch.utils.data import DataLoader

        return self.accelerator.prepare(DataLoader(self.train_dataset, batch_sampler=self._schedule_batches,
                                                   collate_fn=self.data_collator, num_workers=0))

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.accelerator.num_processes > 1:
            inputs = self._with_global_token_counts(inputs)
        loss, logs = self.objective(model, inputs, self.reference)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the unlearning loss became {float(loss.detach())} at step {self.state.global_step}; "
                "lower training.learning_rate or the objective's weights")
        for key, value in logs.items():
            self._objective_logs[key].append(value)
        return (loss, None) if return_outputs else loss

    def _with_global_token_counts(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Give each group its answer-token, attended-position and position counts over all
        processes (per process), so token- and position-mean terms equal one process's over the
        global batch. One all-reduce per step over a fixed list of groups, since role-pure batches
        (alternating schedule) differ between processes."""
        device = self.accelerator.device

        def counts_of(group: str) -> torch.Tensor:  # on the training device: no host sync per step
            if group not in inputs:
                return torch.zeros(3, dtype=torch.long, device=device)
            mask = inputs[group]["attention_mask"].to(device)
            answer = (inputs[group]["labels"][:, 1:] != IGNORE_INDEX).sum().to(device)
            return torch.stack([answer, mask.sum(), torch.tensor(mask.numel(), device=device)])

        counts = torch.stack([counts_of(g) for g in GROUPS])
        totals = self.accelerator.reduce(counts, reduction="sum").float() / self.accelerator.num_processes
        out = dict(inputs)
        for g, (tokens, attended, positions) in zip(GROUPS, totals):
            if g in inputs:
                out[g] = {**inputs[g], TOKEN_NORM: tokens, ATTENDED_NORM: attended, POSITIONS_NORM: positions}
        return out

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        means = {k: math.fsum(v) / len(v) for k, v in self._objective_logs.items() if v}
        if self.accelerator.num_processes > 1:  # every process logs at the same steps: average them
            from accelerate.utils import gather_object

            per_process = gather_object([means])
            keys = sorted({k for m in per_process for k in m})
            means = {k: math.fsum(m[k] for m in per_process if k in m) / sum(k in m for m in per_process)
                     for k in keys}
        for key, value in means.items():
            logs[key] = round(value, 5)
        self._objective_logs.clear()
        self.history.append({"step": self.state.global_step, **logs})
        super().log(logs, *args, **kwargs)
