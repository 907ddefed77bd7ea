"""Checkpoints that a killed run can trust, and finding the one to resume from.

Trainer writes ``checkpoint-N`` folders in place, so a process killed while saving leaves a
half-written one that a naive "newest folder" rule would resume from. A checkpoint counts only
once :class:`CheckpointCallback` has marked it complete (``on_save`` runs after Trainer has
written model, optimiser, scheduler, RNG states and trainer state); older checkpoints are removed
only after the newer one is marked, so a complete one exists at every instant.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from transformers import TrainerCallback

COMPLETE = "obliviate-complete"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found)


def latest_checkpoint(folder: str | Path) -> Path | None:
    """The newest complete checkpoint under ``folder``, or None."""
    complete = [p for _, p in _checkpoints(Path(folder)) if (p / COMPLETE).is_file()]
    return complete[-1] if complete else None


def remove_incomplete(folder: str | Path) -> list[Path]:
    """Delete checkpoints a killed save left half-written; returns what was removed."""
    removed = [p for _, p in _checkpoints(Path(folder)) if not (p / COMPLETE).is_file()]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


class CheckpointCallback(TrainerCallback):
    """Mark each finished checkpoint complete, then drop the older ones."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def on_save(self, args, state, control, **kwargs):
        if not args.should_save:
            return control
        newest = self.folder / f"checkpoint-{state.global_step}"
        if newest.is_dir():
            (newest / COMPLETE).write_text(f"{state.global_step}\n", encoding="utf-8")
            for step, path in _checkpoints(self.folder):
                if step < state.global_step:
                    shutil.rmtree(path, ignore_errors=True)
        return control
