"""Which process is which under ``accelerate launch`` (or torchrun), without touching
``torch.distributed`` in a plain single-process run.

Every process of a multi-process run executes the whole command: they check the same inputs, load
the same model and train their shard of each batch through Trainer (which all-reduces gradients).
Only the main process writes outputs and prints results; the others wait for it where an output
must exist before they go on.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence, TypeVar

S = TypeVar("S")
T = TypeVar("T")


def world_size() -> int:
    """Processes in this run (``WORLD_SIZE``, set by ``accelerate launch`` and torchrun)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _state() -> Any:
    import torch
    from accelerate import PartialState

    # Initialises the process group once (gloo on CPU, nccl on GPU); the state is shared with the
    # Trainer's Accelerator, so it must be created as Trainer would (``use_cpu`` without a GPU),
    # else every CPU process would think it runs alone.
    return PartialState(cpu=not torch.cuda.is_available())


def is_main_process() -> bool:
    return world_size() == 1 or _state().is_main_process


def process_index() -> int:
    return 0 if world_size() == 1 else _state().process_index


def wait_for_everyone() -> None:
    if world_size() > 1:
        _state().wait_for_everyone()


def sharded_map(fn: Callable[[Sequence[int]], list[T]], n: int) -> list[T]:
    """``fn`` over the indices ``0..n-1``, each process computing every ``world``-th one; every
    process gets all ``n`` results in order. Used for work done once before training (reference
    log-probs), so that it is not repeated on every process."""
    world = world_size()
    if world == 1:
        return fn(list(range(n)))
    from accelerate.utils import gather_object

    rank = process_index()
    mine = list(range(rank, n, world))
    pairs = gather_object(list(zip(mine, fn(mine))))
    out: list[Any] = [None] * n
    for index, value in pairs:
        out[index] = value
    return out


def sharded_list(fn: Callable[[list[S]], list[T]], items: Sequence[S]) -> list[T]:
    """``fn`` over ``items`` (one result per item, in order), split across the processes of a run:
    each scores or generates for every ``world``-th item and all get every result. Every process
    must call it at the same point (evaluation runs on all of them); one process calls ``fn`` once
    on all items."""
    items = list(items)
    return sharded_map(lambda indices: fn([items[i] for i in indices]), len(items))


def training_device() -> Any:
    """The device this process trains and evaluates on: its GPU (``LOCAL_RANK``) when there is
    one, else the CPU, as Trainer chooses. Models, frozen references and precomputed reference
    log-probs go there before training, so no computation mixes devices."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")
