"""Atomic outputs: temporaries of killed writers are found and removed by the next writer, live
writers' are left alone, and a failed write leaves no folder it created."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from obliviate.errors import ConfigError, TrainingError
from obliviate.io import (
    atomic_directory,
    atomic_path,
    check_output_path,
    remove_stale_temporaries,
    write_text_atomic,
)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_writer_removes_a_killed_writers_temporaries_and_names_them(tmp_path, caplog):
    stale = tmp_path / f".run-1.{dead_pid()}.k3x9.tmp"
    (stale / "model").mkdir(parents=True)
    live = tmp_path / f".run-2.{os.getppid()}.a1b2.tmp"  # a writer that still runs
    live.mkdir()
    with caplog.at_level(logging.WARNING, logger="obliviate"):
        write_text_atomic(tmp_path / "summary.json", "{}")
    assert not stale.exists() and live.exists() and (tmp_path / "summary.json").read_text() == "{}"
    assert str(stale) in caplog.text and "interrupted run" in caplog.text
    assert remove_stale_temporaries(tmp_path) == []  # nothing more to remove


def test_a_failed_write_removes_the_folders_made_for_it(tmp_path):
    out = tmp_path / "a" / "b" / "run"
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as tmp:
            (tmp / "partial.json").write_text("{")
            raise RuntimeError("failed half-way")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "c" / "mask.safetensors") as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("failed half-way")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(out) as tmp:
        (tmp / "done.json").write_text("{}")
    assert (out / "done.json").is_file() and [p.name for p in out.parent.iterdir()] == ["run"]


@pytest.mark.parametrize("path, expected", [("", "empty"), ("  ", "empty")])
def test_empty_output_names_are_refused(path, expected):
    with pytest.raises(ConfigError, match=expected):
        check_output_path(path)


def test_a_nan_loss_stops_training_naming_the_step(tiny_models, tiny_data, tmp_path):
    from obliviate import api

    with pytest.raises(TrainingError, match=r"became nan at step \d+"):
        api.unlearn(tiny_models.target, tiny_data.forget, tiny_data.retain, method="ga",
                    overrides=["schedule.max_steps=2", "objective.retain_loss=none", "training.learning_rate=1e38",
                               "training.scheduler=constant"],
                    out=tmp_path / "unlearned", show_progress=False)
    assert list(tmp_path.iterdir()) == []  # nothing saved as "unlearned"
