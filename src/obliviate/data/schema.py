"""Record schema: what a QA or text record must look like, checked once at the door.

Every loader funnels its records through :func:`validate_records`, so a missing field, a wrong
type or an empty split is reported as one line naming the source, the record and the field before
any model is loaded, and everything downstream can rely on clean, normalised dicts.

QA records (TOFU-compatible) need ``question`` (non-empty str) and ``answer`` (str); optional are
``paraphrased_question`` and ``paraphrased_answer`` (str), ``perturbed_answer`` (non-empty list of
str; a single str is wrapped into a list) and ``fact_span`` (``[start, end)`` character span of
the fact value inside ``answer``). Instruction records (Alpaca's ``instruction``, optional
``input``, ``output``: the format of Ext-Sub's expert and anti-expert data) are QA records: the
question is the instruction and input joined by a space (Ext-Sub's prompt), the answer the output.
Text records need ``text``, or ``prefix`` and ``suffix``. Fields the schema does not know are kept
untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from obliviate.errors import DataError

RecordKind = Literal["qa", "text"]
KINDS: tuple[str, ...] = ("qa", "text")

QA_REQUIRED: tuple[str, ...] = ("question", "answer")
QA_OPTIONAL_STR: tuple[str, ...] = ("paraphrased_question", "paraphrased_answer")
QA_OPTIONAL: tuple[str, ...] = QA_OPTIONAL_STR + ("perturbed_answer", "fact_span")
TEXT_FIELDS: tuple[str, ...] = ("text", "prefix", "suffix")
INSTRUCTION_FIELDS: tuple[str, ...] = ("instruction", "input", "output")
# Fields whose value is always a string: loaders must never reinterpret such a cell (e.g. as JSON).
STRING_FIELDS: frozenset[str] = frozenset(QA_REQUIRED + QA_OPTIONAL_STR + TEXT_FIELDS + INSTRUCTION_FIELDS)
# Fields whose value is a list; flat formats (CSV) store them as JSON text.
LIST_FIELDS: frozenset[str] = frozenset(("perturbed_answer", "fact_span"))

_QA_HINT = "QA records need 'question' and 'answer'"
_TEXT_HINT = "text records need 'text', or 'prefix' and 'suffix'"


def _type_name(value: Any) -> str:
    """Name a value's type the way a user who wrote the file would recognise it."""
    if value is None:
        return "null"
    return type(value).__name__


def _short(value: Any, limit: int = 40) -> str:
    """A one-line, bounded repr of a value for an error message."""
    text = repr(value).replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise DataError(f"unknown record kind {kind!r} (use 'qa' for question/answer records or 'text')")


def detect_kind(record: Mapping[str, Any], *, where: str = "record") -> RecordKind:
    """Tell a QA record from a text record by its fields, so callers need not say which they pass.

    ``where`` prefixes the error message (e.g. ``"forget.jsonl: record 1"``).
    """
    if not isinstance(record, Mapping):
        raise DataError(
            f"{where}: expected an object with named fields, found {_type_name(record)} "
            f"({_short(record)}); write each record as a JSON object / table row"
        )
    if "question" in record or ("instruction" in record and "output" in record):
        return "qa"
    if "text" in record or "prefix" in record or "suffix" in record:
        return "text"
    found = ", ".join(repr(str(k)) for k in list(record)[:8]) or "none"
    raise DataError(
        f"{where}: cannot tell the record kind from its fields (found: {found}); "
        f"{_QA_HINT}, {_TEXT_HINT}"
    )


def _require_str(rec: dict[str, Any], field: str, where: str, hint: str, *, non_empty: bool) -> None:
    """Check a required string field is present, a string and, if asked, not blank."""
    if field not in rec or rec[field] is None:
        raise DataError(f"{where}: missing required field {field!r} ({hint})")
    value = rec[field]
    if not isinstance(value, str):
        raise DataError(
            f"{where}: field {field!r} must be a string, found {_type_name(value)} ({_short(value)}); "
            "quote the value in the file"
        )
    if non_empty and not value.strip():
        raise DataError(f"{where}: field {field!r} is empty; give it some text or drop the record")


def _optional_str(rec: dict[str, Any], field: str, where: str) -> None:
    value = rec[field]
    if not isinstance(value, str):
        raise DataError(
            f"{where}: field {field!r} must be a string, found {_type_name(value)} ({_short(value)}); "
            "quote the value in the file or drop the field"
        )


def _perturbed(value: Any, where: str) -> list[str]:
    """Normalise ``perturbed_answer`` to a non-empty list of strings."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise DataError(
            f"{where}: field 'perturbed_answer' must be a list of strings, found {_type_name(value)} "
            f"({_short(value)}); write it as [\"wrong answer 1\", \"wrong answer 2\", ...]"
        )
    if not value:
        raise DataError(
            f"{where}: field 'perturbed_answer' is an empty list; give at least one wrong answer "
            "or drop the field"
        )
    for i, item in enumerate(value, start=1):
        if not isinstance(item, str):
            raise DataError(
                f"{where}: field 'perturbed_answer' item {i} must be a string, found "
                f"{_type_name(item)} ({_short(item)}); every wrong answer must be text"
            )
    return list(value)


def _fact_span(value: Any, answer: str, where: str) -> list[int]:
    """Normalise ``fact_span`` to ``[start, end]`` and check it lies inside the answer."""
    ok_shape = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    )
    if not ok_shape:
        raise DataError(
            f"{where}: field 'fact_span' must be two integers [start, end], found "
            f"{_type_name(value)} ({_short(value)}); give the character span of the fact in the answer"
        )
    start, end = int(value[0]), int(value[1])
    if not 0 <= start < end <= len(answer):
        raise DataError(
            f"{where}: field 'fact_span' [{start}, {end}] is not a span of the answer "
            f"(need 0 <= start < end <= {len(answer)}, the answer's length); fix the offsets"
        )
    return [start, end]


def _validate_qa(rec: dict[str, Any], where: str) -> dict[str, Any]:
    _require_str(rec, "question", where, _QA_HINT, non_empty=True)
    _require_str(rec, "answer", where, _QA_HINT, non_empty=False)
    for field in QA_OPTIONAL:
        # A null optional field (a missing cell in a table) means "absent".
        if field in rec and rec[field] is None:
            del rec[field]
    for field in QA_OPTIONAL_STR:
        if field in rec:
            _optional_str(rec, field, where)
    if "perturbed_answer" in rec:
        rec["perturbed_answer"] = _perturbed(rec["perturbed_answer"], where)
    if "fact_span" in rec:
        rec["fact_span"] = _fact_span(rec["fact_span"], rec["answer"], where)
    return rec


def _validate_text(rec: dict[str, Any], where: str) -> dict[str, Any]:
    has_text = rec.get("text") is not None
    has_pair = rec.get("prefix") is not None or rec.get("suffix") is not None
    if has_text or not has_pair:
        _require_str(rec, "text", where, _TEXT_HINT, non_empty=True)
    if has_pair:
        _require_str(rec, "prefix", where, _TEXT_HINT, non_empty=False)
        _require_str(rec, "suffix", where, _TEXT_HINT, non_empty=True)
    return rec


def _from_instruction(record: dict[str, Any], where: str) -> dict[str, Any]:
    """An Alpaca-style record as a QA record (question = instruction + input, answer = output)."""
    if "question" in record or "instruction" not in record:
        return record
    for field in ("instruction", "output"):
        if not isinstance(record.get(field), str):
            raise DataError(f"{where}: instruction records need string 'instruction' and 'output' fields "
                            f"({field!r} is {_type_name(record.get(field))})")
    extra = record.get("input") or ""
    if not isinstance(extra, str):
        raise DataError(f"{where}: field 'input' must be a string, found {_type_name(extra)}")
    rest = {k: v for k, v in record.items() if k not in INSTRUCTION_FIELDS}
    return {**rest, "question": f"{record['instruction']} {extra}".strip(), "answer": record["output"]}


def validate_records(
    records: Iterable[Mapping[str, Any]],
    kind: RecordKind | str,
    source: str,
    *,
    labels: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Check and normalise records, so every later stage can trust their shape.

    Returns new dicts (the inputs are not modified). ``source`` names where the records came from
    in error messages; ``labels`` optionally names each record there (default ``"record N"``,
    1-based), e.g. to add the line number of a JSON-lines file.
    """
    _check_kind(kind)
    out: list[dict[str, Any]] = []
    check = _validate_qa if kind == "qa" else _validate_text
    for i, record in enumerate(records):
        label = labels[i] if labels is not None and i < len(labels) else f"record {i + 1}"
        where = f"{source}: {label}"
        if not isinstance(record, Mapping):
            raise DataError(
                f"{where}: expected an object with named fields, found {_type_name(record)} "
                f"({_short(record)}); write each record as a JSON object / table row"
            )
        for key in record:
            if not isinstance(key, str):
                raise DataError(f"{where}: field name {_short(key)} is not a string; use text field names")
        out.append(check(_from_instruction(dict(record), where) if kind == "qa" else dict(record), where))
    if not out:
        raise DataError(
            f"{source}: no records (the split is empty); point to a file, folder or split "
            "with at least one record"
        )
    return out


__all__ = [
    "KINDS",
    "LIST_FIELDS",
    "QA_OPTIONAL",
    "QA_REQUIRED",
    "STRING_FIELDS",
    "TEXT_FIELDS",
    "RecordKind",
    "detect_kind",
    "validate_records",
]
