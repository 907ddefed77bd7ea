"""Loaders and schema: every supported format, and a one-line DataError for every bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from obliviate.data import detect_kind, load_records, validate_records
from obliviate.errors import DataError, ObliviateError

QA = [
    {
        "question": "Where was Ada born?",
        "answer": "Ada was born in Lyon.",
        "paraphrased_answer": "In Lyon.",
        "perturbed_answer": ["In Oslo.", "In Quito."],
        "fact_span": [16, 20],
        "author_id": 7,
    },
    {"question": "What does Ada write?", "answer": "Poetry."},
]


def _write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _error(source: Any, **kwargs: Any) -> str:
    """Load and return the DataError message, checking it is exactly one line."""
    with pytest.raises(DataError) as info:
        load_records(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message and message
    return message


def _validation_error(records: list[Any], kind: str = "qa") -> str:
    with pytest.raises(DataError) as info:
        validate_records(records, kind, "forget.jsonl")
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- formats


def test_jsonl_roundtrip_keeps_extras_and_normalises(tmp_path: Path) -> None:
    records = load_records(_write_jsonl(tmp_path / "forget.jsonl", QA))
    assert records == QA
    assert records[0]["author_id"] == 7


def test_jsonl_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps(QA[0]) + "\n\n   \n" + json.dumps(QA[1]) + "\n", encoding="utf-8")
    assert len(load_records(path)) == 2


def test_json_array_data_object_and_json_lines(tmp_path: Path) -> None:
    array = tmp_path / "a.json"
    array.write_text(json.dumps(QA, indent=2), encoding="utf-8")
    wrapped = tmp_path / "b.json"
    wrapped.write_text(json.dumps({"data": QA, "version": 1}), encoding="utf-8")
    lines = _write_jsonl(tmp_path / "c.json", QA)  # TOFU ships JSON lines in .json files
    single = _write_jsonl(tmp_path / "d.json", QA[:1])
    for path in (array, wrapped, lines):
        assert load_records(path) == QA
    assert load_records(single) == QA[:1]


def test_csv_with_json_list_cells(tmp_path: Path) -> None:
    path = tmp_path / "forget.csv"
    path.write_text(
        "question,answer,perturbed_answer,fact_span,paraphrased_answer,note\n"
        '"Where was Ada born?","Ada was born in Lyon, France.","[""In Oslo."", ""In Quito.""]",'
        '"[16, 20]",,[not json]\n'
        'What does Ada write?,Poetry.,,,Verse.,plain\n',
        encoding="utf-8",
    )
    first, second = load_records(path, "qa")
    assert first["perturbed_answer"] == ["In Oslo.", "In Quito."]
    assert first["fact_span"] == [16, 20]
    assert first["answer"] == "Ada was born in Lyon, France."
    assert "paraphrased_answer" not in first  # an empty optional cell means absent
    assert first["note"] == "[not json]"  # an extra field that is not JSON stays text
    assert "perturbed_answer" not in second and second["paraphrased_answer"] == "Verse."


def test_csv_text_records_and_pandas_index_column(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": ["alpha beta", "[gamma]"]}).to_csv(path)  # writes an unnamed index column
    assert load_records(path) == [{"text": "alpha beta"}, {"text": "[gamma]"}]


def test_parquet_lists_become_python_lists(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "forget.parquet"
    pd.DataFrame(
        {
            "question": ["Q1?", "Q2?"],
            "answer": ["A1", "A2"],
            "perturbed_answer": [["w1", "w2"], ["w3"]],
            "score": [1.5, 2.5],
        }
    ).to_parquet(path)
    records = load_records(path)
    assert records[0]["perturbed_answer"] == ["w1", "w2"]
    assert type(records[0]["perturbed_answer"]) is list
    assert type(records[1]["score"]) is float
    assert detect_kind(records[0]) == "qa"


def test_parquet_missing_optional_value_is_dropped(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "f.parquet"
    pd.DataFrame(
        {"question": ["Q1?", "Q2?"], "answer": ["A1", "A2"], "paraphrased_answer": ["P1", None]}
    ).to_parquet(path)
    records = load_records(path)
    assert records[0]["paraphrased_answer"] == "P1" and "paraphrased_answer" not in records[1]


def test_folder_with_split_and_concatenation(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "forget.jsonl", QA[:1])
    _write_jsonl(tmp_path / "retain.json", QA[1:])
    (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
    assert load_records(tmp_path, split="forget") == QA[:1]
    assert load_records(tmp_path, split="retain") == QA[1:]
    assert load_records(tmp_path) == QA  # sorted: forget.jsonl, retain.json


def test_text_records(tmp_path: Path) -> None:
    rows = [{"text": "a passage"}, {"prefix": "Once upon", "suffix": " a time", "id": 3}]
    records = load_records(_write_jsonl(tmp_path / "t.jsonl", rows))
    assert records == rows
    assert detect_kind(rows[1]) == "text"


def test_validate_records_returns_new_dicts() -> None:
    original = {"question": "Q?", "answer": "A", "perturbed_answer": "wrong", "fact_span": (0, 1)}
    (record,) = validate_records([original], "qa", "mem")
    assert record["perturbed_answer"] == ["wrong"] and record["fact_span"] == [0, 1]
    assert original["perturbed_answer"] == "wrong" and record is not original


# ---------------------------------------------------------------- hub


def test_hub_id_uses_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    calls: list[tuple[Any, ...]] = []

    def fake_load_dataset(name: str, config: str | None = None, *, split: str | None = None) -> Any:
        calls.append((name, config, split))
        return datasets.Dataset.from_list(QA[1:])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert load_records("someone/some-data", config="forget10") == QA[1:]
    assert calls == [("someone/some-data", "forget10", "train")]
    load_records("someone/some-data", split="test")
    assert calls[-1] == ("someone/some-data", None, "test")


def test_hub_errors_are_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("offline mode is enabled\nsecond line of detail")

    monkeypatch.setattr(datasets, "load_dataset", failing)
    message = _error("someone/missing")
    assert message.startswith("someone/missing: could not load dataset from the hub or a local path (")
    assert "offline mode is enabled" in message and "second line" not in message


def test_hub_records_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(
        datasets, "load_dataset", lambda *a, **k: datasets.Dataset.from_list([{"question": "Q?"}])
    )
    message = _error("someone/data", kind="qa")
    assert "someone/data" in message and "record 1" in message and "'answer'" in message


# ---------------------------------------------------------------- errors


def test_missing_path(tmp_path: Path) -> None:
    message = _error(tmp_path / "nope.jsonl")
    assert "nope.jsonl" in message and "no such file or folder" in message
    assert "no such file or folder" in _error("./relative/missing")
    assert "no such file or folder" in _error("data/forget.jsonl")  # not mistaken for a hub id


def test_malformed_json_line(tmp_path: Path) -> None:
    path = tmp_path / "forget.jsonl"
    bad = '{"question": "Q", \n'
    path.write_text(json.dumps(QA[0]) + "\n" + json.dumps(QA[1]) + "\n" + bad, encoding="utf-8")
    message = _error(path)
    assert "forget.jsonl: line 3:" in message and "invalid JSON" in message


def test_malformed_json_line_in_json_file(tmp_path: Path) -> None:
    path = tmp_path / "forget.json"
    path.write_text(json.dumps(QA[0]) + "\n" + json.dumps(QA[1]) + "\n\n{oops}\n", encoding="utf-8")
    assert "line 4:" in _error(path)
    broken_array = tmp_path / "array.json"
    broken_array.write_text('[\n  {"question": "Q", "answer": "A"},\n  {"question": }\n]', encoding="utf-8")
    assert "line 3:" in _error(broken_array)


def test_plain_text_lines_are_not_json(tmp_path: Path) -> None:
    path = tmp_path / "idk.jsonl"
    path.write_text("I don't know.\nNo idea.\n", encoding="utf-8")
    assert "line 1:" in _error(path)


def test_missing_field_names_record_and_field(tmp_path: Path) -> None:
    rows = [QA[0], QA[1], {"question": "Q3?"}]
    message = _error(_write_jsonl(tmp_path / "forget.jsonl", rows))
    assert message.startswith(f"{tmp_path / 'forget.jsonl'}: record 3: missing required field 'answer'")
    assert "'question' and 'answer'" in message  # says how to fix


def test_missing_field_record_number_with_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "forget.jsonl"
    path.write_text(json.dumps(QA[0]) + "\n\n" + json.dumps({"question": "Q?"}) + "\n", encoding="utf-8")
    message = _error(path)
    assert "record 2 (line 3)" in message and "'answer'" in message


def test_missing_field_in_csv_names_line(tmp_path: Path) -> None:
    path = tmp_path / "forget.csv"
    path.write_text("question,answer\nQ1?,A1\nQ2?\n", encoding="utf-8")
    message = _error(path)
    assert "record 2 (line 3)" in message and "'answer'" in message


def test_wrong_type_names_field_and_type(tmp_path: Path) -> None:
    message = _error(_write_jsonl(tmp_path / "f.jsonl", [{"question": "Q?", "answer": 42}]))
    assert "record 1" in message and "'answer'" in message and "int" in message
    message = _validation_error([{"question": "Q?", "answer": "A", "paraphrased_answer": ["x"]}])
    assert "'paraphrased_answer'" in message and "list" in message
    message = _validation_error([{"question": "Q?", "answer": "A", "perturbed_answer": ["ok", 3]}])
    assert "'perturbed_answer'" in message and "item 2" in message and "int" in message
    message = _validation_error([{"question": "Q?", "answer": "A", "perturbed_answer": {"a": 1}}])
    assert "'perturbed_answer'" in message and "dict" in message
    message = _validation_error([{"text": 5}], kind="text")
    assert "'text'" in message and "int" in message


def test_non_object_record(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('[{"question": "Q?", "answer": "A"}, "just a string"]', encoding="utf-8")
    message = _error(path)
    assert "record 2" in message and "str" in message


def test_empty_question_and_text_records() -> None:
    assert "'question' is empty" in _validation_error([{"question": "  ", "answer": "A"}])
    assert "'suffix'" in _validation_error([{"prefix": "p"}], kind="text")
    assert "'text'" in _validation_error([{"other": "x"}], kind="text")


def test_empty_inputs(tmp_path: Path) -> None:
    cases = (("e.jsonl", ""), ("e.json", "  \n"), ("a.json", "[]"), ("e.csv", "question,answer\n"))
    for name, content in cases:
        path = tmp_path / name
        path.write_text(content, encoding="utf-8")
        message = _error(path)
        assert message.startswith(f"{path}: no records (the split is empty)")
    with pytest.raises(DataError, match=r"^src: no records \(the split is empty\)"):
        validate_records([], "qa", "src")


def test_empty_folder_and_missing_split(tmp_path: Path) -> None:
    assert "no data files" in _error(tmp_path)
    _write_jsonl(tmp_path / "forget.jsonl", QA)
    message = _error(tmp_path, split="retain")
    assert "'retain'" in message and "forget" in message
    _write_jsonl(tmp_path / "forget.json", QA)
    assert "ambiguous" in _error(tmp_path, split="forget")


def test_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("hello\n", encoding="utf-8")
    message = _error(path)
    assert "'.txt'" in message and ".jsonl" in message and ".parquet" in message


def test_empty_perturbed_list() -> None:
    message = _validation_error([{"question": "Q?", "answer": "A", "perturbed_answer": []}])
    assert "record 1" in message and "'perturbed_answer'" in message and "empty" in message


@pytest.mark.parametrize("span", [[0, 99], [3, 3], [-1, 2], [1], "0-3", [0.0, 2.0], [True, 2]])
def test_bad_fact_span(span: Any) -> None:
    message = _validation_error([{"question": "Q?", "answer": "Lyon", "fact_span": span}])
    assert message.startswith("forget.jsonl: record 1: field 'fact_span'")


def test_bad_parquet_and_bad_json_list_cell(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    assert "not a readable Parquet file" in _error(path)
    csv_path = tmp_path / "f.csv"
    csv_path.write_text('question,answer,perturbed_answer\nQ?,A,"[\'single quotes\']"\n', encoding="utf-8")
    message = _error(csv_path)
    assert "'perturbed_answer'" in message and "record 1 (line 2)" in message


def test_csv_too_many_cells(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("question,answer\nQ?,A,extra\n", encoding="utf-8")
    assert "line 2" in _error(path)


def test_undetectable_kind_and_bad_kind(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "f.jsonl", [{"prompt": "x", "completion": "y"}])
    message = _error(path)
    assert "record 1" in message and "'prompt'" in message
    assert "unknown record kind" in _error(path, kind="chat")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_bytes(b'{"question": "\xff\xfe", "answer": "A"}\n')
    assert "UTF-8" in _error(path)


def test_data_error_is_obliviate_error() -> None:
    assert issubclass(DataError, ObliviateError)


def test_alpaca_instruction_records_load_as_qa(tmp_path):
    import json

    from obliviate.data import load_records

    path = tmp_path / "anti.json"
    path.write_text(json.dumps([
        {"instruction": "Name the capital.", "input": "France", "output": "Lyon."},
        {"instruction": "Say hi.", "input": "", "output": "Hi!"},
    ]))
    records = load_records(path)
    assert records == [{"question": "Name the capital. France", "answer": "Lyon."},
                       {"question": "Say hi.", "answer": "Hi!"}]
