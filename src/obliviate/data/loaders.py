"""Load records from JSON-lines, JSON, CSV or Parquet files, a folder, or a ``datasets`` hub id.

One entry point, :func:`load_records`, so recipes can name data the way users have it. Every file
problem (missing, unreadable, malformed line, wrong suffix) becomes a one-line :class:`DataError`
naming the file and the line or record, and every result goes through the schema check.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from obliviate.data.schema import (
    KINDS,
    LIST_FIELDS,
    QA_OPTIONAL,
    STRING_FIELDS,
    detect_kind,
    validate_records,
)
from obliviate.errors import DataError, ObliviateError

SUPPORTED_SUFFIXES: tuple[str, ...] = (".jsonl", ".json", ".csv", ".parquet")
_SUPPORTED_TEXT = ", ".join(SUPPORTED_SUFFIXES)
# owner/name: one slash, no leading dot; the characters the hub allows in repository ids.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+$")
# how ``datasets`` reports a split the dataset does not have
_UNKNOWN_SPLIT = re.compile(r"Unknown split \"[^\"]*\"\. Should be one of \[(.*)\]")

Raw = tuple[list[Any], list[str] | None]  # records and, optionally, how to name each in messages


def _one_line(text: str, limit: int = 200) -> str:
    """First non-empty line of an exception text, bounded, so messages stay one line."""
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


# UTF-32 first: its little-endian mark starts with UTF-16's.
_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def decode_utf8(data: bytes, source: str, error: type[ObliviateError] = DataError) -> str:
    """The text of a file that must be UTF-8 (a UTF-8 byte-order mark is dropped). UTF-16/32 and
    other encodings are refused in one line naming the encoding or the line of the first bad
    byte, not decoded into mojibake or NUL-riddled text that fails later, far from the cause."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            raise error(f"{source}: the file is {encoding} text, not UTF-8; save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(
            f"{source}: line {line}: not valid UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise error(
            f"{source}: line {line}: contains NUL bytes, so it is binary or UTF-16 text, not UTF-8; "
            "save the file as UTF-8"
        )
    return text


def read_utf8_text(path: str | os.PathLike[str], source: str | None = None,
                   error: type[ObliviateError] = DataError) -> str:
    """Read a UTF-8 text file (data, recipe) or raise ``error`` in one line naming ``source``."""
    source = source or os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        reason = _one_line(exc.strerror or exc)
        raise error(f"{source}: could not read the file ({reason}); check that it is readable") from None
    return decode_utf8(data, source, error)


def _read_text(path: Path, source: str) -> str:
    return read_utf8_text(path, source)


def _json_lines(text: str, source: str) -> Raw:
    """Parse JSON lines, skipping blank lines, and name records by line where they differ."""
    records: list[Any] = []
    line_numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{source}: line {number}: invalid JSON ({exc.msg} at column {exc.colno}); "
                "each line must be one complete JSON object"
            ) from None
        line_numbers.append(number)
    labels = None
    if any(n != i for i, n in enumerate(line_numbers, start=1)):
        labels = [f"record {i} (line {n})" for i, n in enumerate(line_numbers, start=1)]
    return records, labels


def _read_jsonl(path: Path, source: str) -> Raw:
    return _json_lines(_read_text(path, source), source)


def _read_json(path: Path, source: str) -> Raw:
    """A JSON array, a ``{"data": [...]}`` object, or JSON lines (TOFU ships those as ``.json``)."""
    text = _read_text(path, source)
    stripped = text.strip()
    if not stripped:
        return [], None
    try:
        document = json.loads(stripped)
    except json.JSONDecodeError as exc:
        first_line = stripped.splitlines()[0]
        looks_like_lines = exc.msg == "Extra data"
        if not looks_like_lines and stripped.startswith("{"):
            try:
                json.loads(first_line)
                looks_like_lines = True
            except json.JSONDecodeError:
                pass
        if looks_like_lines:
            return _json_lines(text, source)
        raise DataError(
            f"{source}: line {exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno}); "
            "expected a JSON array of objects, {\"data\": [...]}, or one JSON object per line"
        ) from None
    if isinstance(document, list):
        return document, None
    if isinstance(document, Mapping):
        data = document.get("data")
        if isinstance(data, list):
            return data, None
        return [document], None  # a JSON-lines file holding a single record
    raise DataError(
        f"{source}: expected a JSON array of objects or {{\"data\": [...]}}, found a bare "
        f"{type(document).__name__}; wrap the records in a list"
    )


def _csv_cell(field: str, cell: str | None, where: str) -> Any:
    """Turn a CSV cell into a value: JSON lists come back as lists, missing cells as absent."""
    if cell is None:
        return None
    body = cell.strip()
    if field in QA_OPTIONAL and not body:
        return None  # an empty cell in an optional column means "this record has no value"
    if field in STRING_FIELDS:
        return cell
    if body.startswith("[") and body.endswith("]"):
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            if field in LIST_FIELDS:
                raise DataError(
                    f"{where}: field {field!r} is not a valid JSON list ({exc.msg} at column "
                    f"{exc.colno}); write it as [\"a\", \"b\"] with double quotes"
                ) from None
    return cell


_SEPARATORS = {";": "semicolon", "\t": "tab", "|": "pipe"}


def _check_separator(names: list[str], source: str) -> None:
    """A one-column header holding ``;``, tab or ``|`` is a file written with another separator
    (spreadsheets in many locales): say so rather than report odd field names."""
    if len(names) != 1:
        return
    found = next((name for sep, name in _SEPARATORS.items() if sep in names[0]), None)
    if found:
        raise DataError(
            f"{source}: line 1: the header is one column {names[0]!r}; the file looks {found}-separated, "
            "but CSV files must be comma-separated: save it as CSV with commas"
        )


def _read_csv(path: Path, source: str) -> Raw:
    """CSV with a header row; list-valued cells may hold JSON text."""
    text = _read_text(path, source)
    records: list[dict[str, Any]] = []
    labels: list[str] = []
    old_limit = csv.field_size_limit()
    # Long documents (books, news) exceed csv's default 128 KiB cell limit.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    start = 1
    try:
        # strict: a stray quote ('"a"b') is refused instead of silently dropped
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        try:
            header = next(reader, None)
            if header is None:
                return [], None
            names = [h.strip() for h in header]
            _check_separator(names, source)
            seen: set[str] = set()
            for name in names:
                if name and name in seen:
                    raise DataError(
                        f"{source}: line 1: column {name!r} appears twice in the header; rename one"
                    )
                seen.add(name)
            start = reader.line_num + 1
            for row in reader:
                if not any(cell.strip() for cell in row):
                    start = reader.line_num + 1
                    continue
                label = f"record {len(records) + 1} (line {start})"
                if len(row) > len(names):
                    raise DataError(
                        f"{source}: line {start}: {len(row)} cells but the header has {len(names)} "
                        "columns; quote cells that contain commas"
                    )
                where = f"{source}: {label}"
                record: dict[str, Any] = {}
                for i, name in enumerate(names):
                    if not name:
                        continue  # an unnamed column is a written-out index (pandas to_csv)
                    value = _csv_cell(name, row[i] if i < len(row) else None, where)
                    if value is not None:
                        record[name] = value
                records.append(record)
                labels.append(label)
                start = reader.line_num + 1
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise DataError(
                    f"{source}: line {start}: a quoted cell starting on this record is never closed; "
                    "close the quote (a quote inside a cell is written \"\")"
                ) from None
            raise DataError(
                f"{source}: line {reader.line_num}: malformed CSV ({_one_line(exc)}); check the quoting "
                "(a quote inside a cell is written \"\")"
            ) from None
    finally:
        csv.field_size_limit(old_limit)
    return records, labels


def _to_python(value: Any) -> Any:
    """Numpy arrays and scalars (from Parquet or ``datasets``) become plain lists and numbers."""
    if isinstance(value, dict):
        return {k: _to_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_python(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if tolist is not None and type(value).__module__ == "numpy":
        return _to_python(tolist())
    return value


def _read_parquet(path: Path, source: str) -> Raw:
    try:
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(
            f"{source}: not a readable Parquet file ({type(exc).__name__}: {_one_line(exc)}); "
            "re-export it, e.g. with pandas DataFrame.to_parquet"
        ) from None
    records = [
        {k: _to_python(v) for k, v in row.items() if not str(k).startswith("__index_level_")}
        for row in rows
    ]
    return records, None


_READERS = {
    ".jsonl": _read_jsonl,
    ".json": _read_json,
    ".csv": _read_csv,
    ".parquet": _read_parquet,
}


def _read_file(path: Path, source: str) -> Raw:
    suffix = path.suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        raise DataError(
            f"{source}: unsupported file type {suffix or '(no suffix)'!r}; use one of {_SUPPORTED_TEXT}"
        )
    return reader(path, source)


def _folder_files(folder: Path, source: str, split: str | None) -> list[Path]:
    """The file(s) a folder stands for: ``{split}.<ext>``, or every supported file in sorted order."""
    files = sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUPPORTED_SUFFIXES
    )
    if split is None:
        if not files:
            raise DataError(f"{source}: no data files in the folder; add files ending in {_SUPPORTED_TEXT}")
        return files
    matches = [p for p in files if p.stem == split]
    if len(matches) == 1:
        return matches
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise DataError(f"{source}: split {split!r} is ambiguous ({names}); keep only one of these files")
    available = sorted({p.stem for p in files})
    raise DataError(
        f"{source}: no file for split {split!r} (expected {split}.jsonl, .json, .csv or .parquet); "
        f"splits found: {', '.join(available) or 'none'}"
    )


def _looks_like_hub_id(name: str) -> bool:
    """``owner/name`` that is not a plausible local file name (e.g. ``data/forget.jsonl``)."""
    if not _HUB_ID.match(name) or "\\" in name:
        return False
    return not name.lower().endswith(SUPPORTED_SUFFIXES)


def _load_hub(name: str, config: str | None, split: str | None) -> list[dict[str, Any]]:
    """Load a split from the hub; ``datasets`` is imported here because it is slow to import."""
    try:
        import datasets

        dataset = datasets.load_dataset(name, config, split=split or "train")
        return [_to_python(dict(row)) for row in dataset]
    except Exception as exc:  # network, missing repo, bad config: all the user's to fix
        unknown = _UNKNOWN_SPLIT.search(str(exc))
        if unknown:
            splits = ", ".join(s.strip(" '\"") for s in unknown.group(1).split(",") if s.strip()) or "none"
            raise DataError(
                f"{name}: no split {split or 'train'!r} in this dataset; its splits are {splits}: give one of those"
            ) from None
        reason = f"{type(exc).__name__}: {_one_line(exc)}" if _one_line(exc) else type(exc).__name__
        raise DataError(
            f"{name}: could not load dataset from the hub or a local path ({reason}); "
            "check the id, config and split, or pass a local file or folder"
        ) from None


def _validate(raw: Raw, kind: str | None, source: str) -> list[dict[str, Any]]:
    records, labels = raw
    if kind is None and records:
        first = labels[0] if labels else "record 1"
        kind = detect_kind(records[0], where=f"{source}: {first}")
    return validate_records(records, kind or "qa", source, labels=labels)


def load_records(
    source: str | os.PathLike[str],
    kind: str | None = None,
    *,
    split: str | None = None,
    config: str | None = None,
) -> list[dict[str, Any]]:
    """Load and validate records from wherever the user keeps them.

    ``source`` is a ``.jsonl``/``.json``/``.csv``/``.parquet`` file, a folder (with ``split``: the
    one file ``{split}.<ext>`` in it; without: all supported files, sorted, concatenated), or a hub
    id ``owner/name`` loaded with ``datasets`` (``config``, ``split`` default ``"train"``).
    ``kind`` is ``"qa"`` or ``"text"``; None detects it from the first record. ``split`` and
    ``config`` are ignored for a single local file.
    """
    if kind is not None and kind not in KINDS:
        raise DataError(
            f"{source}: unknown record kind {kind!r}; use 'qa', 'text', or leave it unset to detect"
        )
    name = os.fspath(source)
    path = Path(name)
    if path.is_dir():
        out: list[dict[str, Any]] = []
        for file in _folder_files(path, name, split):
            file_source = str(path / file.name)
            records = _validate(_read_file(file, file_source), kind, file_source)
            kind = kind or detect_kind(records[0])
            out.extend(records)
        return out
    if path.exists():
        return _validate(_read_file(path, name), kind, name)
    if _looks_like_hub_id(name):
        shown = f"split {split or 'train'!r}"
        if config is not None:
            shown = f"config {config!r}, {shown}"
        return _validate((_load_hub(name, config, split), None), kind, f"{name} ({shown})")
    hint = "check the path" if Path(name).suffix else "check the path, or give a hub dataset as owner/name"
    raise DataError(f"{name}: no such file or folder; {hint}")


__all__ = ["SUPPORTED_SUFFIXES", "decode_utf8", "load_records", "read_utf8_text"]
