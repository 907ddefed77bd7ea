"""Atomic output: every file or folder appears whole or not at all.

A run that fails half-way must not leave a half-written results file that a later comparison
would read as real, so writers write to a temporary sibling (``.NAME.<pid>.<random>.tmp``) and
rename. A process killed with SIGKILL cannot clean up; the next writer into the same folder
finds temporaries whose process is gone, removes them and says so. Folders created only to hold
an output that then failed are removed again, so a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from obliviate.errors import ConfigError

log = logging.getLogger("obliviate")
_TEMP = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")
#: free space an output folder's file system must keep beyond the estimated output
MIN_FREE_BYTES = 64 * 2 ** 20


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove temporaries in ``folder`` left by writers that no longer run (killed with SIGKILL,
    power loss); returns them. Live writers' temporaries are left alone."""
    folder = Path(folder)
    removed = []
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            match = _TEMP.match(entry.name)
            if not match or int(match.group(1)) == os.getpid() or _pid_alive(int(match.group(1))):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
            log.warning("obliviate: removed %s, left by an interrupted run (process %s)", entry, match.group(1))
            removed.append(entry)
    return removed


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those created, deepest last."""
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    return list(reversed(missing))


def _remove_if_empty(created: list[Path]) -> None:
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only succeeds when empty


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_output_path(path: str | os.PathLike | None, *, needed_bytes: int = 0) -> Path:
    """Refuse, before any work, an output that could not be written: an empty name, an existing
    path, a parent that is a file, a folder without write permission, too little free space for
    ``needed_bytes`` (plus :data:`MIN_FREE_BYTES`)."""
    if path is None or not str(path).strip():
        raise ConfigError("--out is empty; give the path of a new folder")
    path = Path(path).expanduser()
    if path.exists() or path.is_symlink():
        kind = "folder" if path.is_dir() else "file"
        raise ConfigError(f"--out {path}: a {kind} of that name already exists; choose another name or remove it")
    base = _nearest_existing(path.parent)
    if not base.is_dir():
        raise ConfigError(f"--out {path}: {base} is a file, not a folder; choose a path under a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {path}: {base} is not writable (permission denied or read-only); "
                          "choose a folder you can write to")
    free = shutil.disk_usage(base).free
    if free < needed_bytes + MIN_FREE_BYTES:
        raise ConfigError(f"--out {path}: only {free / 2 ** 20:.0f} MiB free on that disk, about "
                          f"{(needed_bytes + MIN_FREE_BYTES) / 2 ** 20:.0f} MiB needed; free space or choose another disk")
    return path


def describe_os_error(exc: OSError) -> str | None:
    """One line for the OS errors a user can fix (disk full, permissions, read-only file system)."""
    fixes = {errno.ENOSPC: "free space on that disk", errno.EDQUOT: "free space (disk quota exceeded)",
             errno.EACCES: "choose a location you can write to", errno.EPERM: "choose a location you can write to",
             errno.EROFS: "choose a writable location", errno.ENOTDIR: "a path component is a file, not a folder"}
    if exc.errno not in fixes:
        return None
    where = f" {exc.filename}" if exc.filename else ""
    return f"could not write{where}: {exc.strerror or os.strerror(exc.errno)}; {fixes[exc.errno]}"


def _default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    created = _make_parents(path.parent)
    remove_stale_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _remove_if_empty(created)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, default=_default) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
    return write_text_atomic(path, "".join(json.dumps(r, default=_default) + "\n" for r in rows))


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling file name for a writer that wants a path; renamed on success."""
    path = Path(path)
    created = _make_parents(path.parent)
    remove_stale_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _remove_if_empty(created)  # after the temporary is gone, or the parent is not empty
        raise


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    created = _make_parents(path.parent)
    remove_stale_temporaries(path.parent)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_prefix(path), suffix=".tmp"))
    try:
        yield tmp
        if path.exists():
            if not overwrite:
                raise FileExistsError(path)
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_if_empty(created)  # after the temporary is gone, or the parent is not empty
        raise
