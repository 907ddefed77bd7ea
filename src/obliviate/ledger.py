"""The request ledger: which deletion requests a saved model honours (``requests.json``).

Each unlearning run appends one entry to the ledger it inherits from the model it started from:
a request id, the SHA-256 of the forget set (records in canonical JSON, so the data itself need
not be kept to prove which set was meant), its size, the date, the method and where the records
came from (a file path or an embedded-benchmark split), so that ``obliviate eval --requests`` can
re-check every honoured request. Fusing adapters (``obliviate compose fuse``) unites their ledgers.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

from obliviate.errors import ConfigError

LEDGER_FILE = "requests.json"


def forget_set_hash(records: Sequence[dict]) -> str:
    """SHA-256 over the records in order, each as sorted-key JSON on its own line."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def new_request(records: Sequence[dict], *, method: str, source: dict[str, Any] | None = None,
                request_id: str | None = None) -> dict[str, Any]:
    sha = forget_set_hash(records)
    return {"id": request_id or f"req-{sha[:12]}", "forget_sha256": sha, "n_records": len(records),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "method": method,
            "source": source}


def read_ledger(folder: str | Path | None) -> list[dict[str, Any]]:
    """The ledger of a model folder; empty for a folder without one (or a hub id)."""
    if folder is None:
        return []
    path = Path(folder) / LEDGER_FILE
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))["requests"]
        if not all(isinstance(e, dict) and "id" in e and "forget_sha256" in e for e in entries):
            raise ValueError("entries need id and forget_sha256")
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a valid request ledger ({exc})") from None
    return entries


def write_ledger(folder: str | Path, entries: Sequence[dict[str, Any]]) -> Path:
    from obliviate.io import write_json_atomic

    return write_json_atomic(Path(folder) / LEDGER_FILE, {"requests": list(entries)})


def merge_ledgers(ledgers: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Entries of all ledgers in order, each (id, forget set) once."""
    seen, merged = set(), []
    for ledger in ledgers:
        for entry in ledger:
            key = (entry["id"], entry["forget_sha256"])
            if key not in seen:
                seen.add(key)
                merged.append(entry)
    return merged

