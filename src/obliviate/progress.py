"""One progress-bar helper so every long loop shows rate and ETA the same way."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    """Bars on unless OBLIVIATE_PROGRESS=0 (tests and logs that do not want them)."""
    return os.environ.get("OBLIVIATE_PROGRESS", "1") != "0"


def progress(items: Iterable[T], *, desc: str, disable: bool = False, total: int | None = None) -> Iterable[T]:
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, disable=disable or not progress_enabled(),
                leave=False, file=sys.stderr, dynamic_ncols=True)
