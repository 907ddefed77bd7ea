"""TOFU loader on the genuine TOFU files (real authors, world facts), and config pairing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from obliviate.data import TOFU_CONFIGS, load_records, load_tofu
from obliviate.data.tofu import TOFU_HUB_ID, holdout_config_for, retain_config_for
from obliviate.errors import DataError

TOFU_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tofu-format"


@pytest.fixture()
def tofu_dir() -> Path:
    if not (TOFU_DIR / "real_authors_perturbed.json").is_file():
        pytest.skip(f"genuine TOFU files not found at {TOFU_DIR}")
    return TOFU_DIR


def _check_eval_set(records: list[dict[str, Any]], expected: int) -> None:
    assert len(records) == expected
    for record in records:
        assert record["question"].strip() and isinstance(record["answer"], str)
        assert len(record["perturbed_answer"]) == 3
        assert all(isinstance(a, str) for a in record["perturbed_answer"])
        assert "paraphrased_answer" not in record  # the evaluator uses the answer itself here


def test_real_authors_perturbed(tofu_dir: Path) -> None:
    records = load_tofu("real_authors_perturbed", tofu_dir)
    _check_eval_set(records, 100)
    first = json.loads((tofu_dir / "real_authors_perturbed.json").read_text(encoding="utf-8").splitlines()[0])
    assert records[0] == first


def test_world_facts_perturbed(tofu_dir: Path) -> None:
    _check_eval_set(load_tofu("world_facts_perturbed", tofu_dir), 117)


def test_generic_loader_reads_tofu_json_lines(tofu_dir: Path) -> None:
    records = load_records(tofu_dir / "world_facts_perturbed.json")
    assert len(records) == 117


def test_local_folder_under_config_names(tofu_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "forget01_perturbed.json").symlink_to(tofu_dir / "real_authors_perturbed.json")
    # a config stored with another supported suffix is found too
    rows = load_records(tofu_dir / "world_facts_perturbed.json")
    (tmp_path / "retain_perturbed.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    assert len(load_tofu("forget01_perturbed", tmp_path)) == 100
    assert len(load_tofu("retain_perturbed", tmp_path)) == 117
    with pytest.raises(DataError, match="forget10") as info:
        load_tofu("forget10", tmp_path)
    assert "\n" not in str(info.value)


def test_hub_source_is_requested_with_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    datasets = pytest.importorskip("datasets")
    calls: list[tuple[Any, ...]] = []

    def fake(name: str, config: str | None = None, *, split: str | None = None) -> Any:
        calls.append((name, config, split))
        return datasets.Dataset.from_list(
            [{"question": "Q?", "answer": "A", "paraphrased_answer": "P", "perturbed_answer": ["w"] * 5}]
        )

    monkeypatch.setattr(datasets, "load_dataset", fake)
    records = load_tofu("forget10_perturbed")
    assert calls == [(TOFU_HUB_ID, "forget10_perturbed", "train")]
    assert records[0]["perturbed_answer"] == ["w"] * 5


def test_unknown_config() -> None:
    with pytest.raises(DataError) as info:
        load_tofu("forget20")
    message = str(info.value)
    assert "'forget20'" in message and "forget10" in message and "world_facts_perturbed" in message
    assert "\n" not in message


def test_configs_match_spec() -> None:
    assert len(TOFU_CONFIGS) == len(set(TOFU_CONFIGS)) == 16
    for name in ("full", "retain90", "holdout05", "retain_perturbed", "real_authors_perturbed"):
        assert name in TOFU_CONFIGS


def test_retain_and_holdout_config_for() -> None:
    assert retain_config_for("forget10") == "retain90"
    assert retain_config_for("forget05") == "retain95"
    assert retain_config_for("forget01") == "retain99"
    assert retain_config_for("forget10_perturbed") == "retain90"
    assert holdout_config_for("forget05") == "holdout05"
    for config in ("full", "retain90", "forget20"):
        with pytest.raises(DataError, match="not a forget config"):
            retain_config_for(config)
