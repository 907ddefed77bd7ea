"""Inter-process file locks, so that concurrent runs build a shared artefact once.

``file_lock(path)`` holds an exclusive ``flock`` on ``path`` (created if missing) for the ``with``
block. The kernel drops the lock when its holder exits, however it exits (``kill -9`` included),
so a lock file left behind is harmless: the next process simply takes it. Lock files are never
deleted: a process may already have opened one and be waiting on it, and deleting it then would let
a third process lock a new file of the same name while the second still believes it holds the lock.

Where ``fcntl`` does not exist (Windows) the lock is a no-op; callers must stay correct without it
(write atomically, re-check after locking), the lock only saves duplicated work.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _holder(fd: int) -> str:
    """The pid the current holder wrote into the lock file, as text ('' when unknown)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, log: Callable[[str], object] | None = None,
              waiting: str | None = None) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` for the ``with`` block, waiting (blocking) for it if needed.

    When another process holds the lock, ``log`` (if given) gets one line first: ``waiting``, else
    ``"waiting for another process holding <path>"``, followed by the holder's pid when known. The
    holder's pid is written into the lock file for that message; it is informative only.
    Yields the lock file's path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    locked = False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if log is not None:
                    pid = _holder(fd)
                    log((waiting or f"waiting for another process holding {path}")
                        + (f" (pid {pid})" if pid else ""))
                fcntl.flock(fd, fcntl.LOCK_EX)
            locked = True
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        # Closing the descriptor releases the flock; the file stays (see the module docstring).
        if locked:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        os.close(fd)


__all__ = ["file_lock"]
