"""The leaderboard procedure at test size: two grid points tuned on benchmark seed 0, the pick
tested on seed 1, resumable from its result files (the full run is bench/leaderboard.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import TEST_OVERRIDES

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_leaderboard", ROOT / "bench" / "leaderboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pick_rule_prefers_forget_quality_above_the_utility_floor():
    bench = _bench()
    rows = [{"point": ["a"], "forget_quality": 0.9, "model_utility": 0.5, "mu_ratio": 0.90},
            {"point": ["b"], "forget_quality": 0.2, "model_utility": 0.8, "mu_ratio": 0.99},
            {"point": ["c"], "forget_quality": 0.4, "model_utility": 0.8, "mu_ratio": 0.985}]
    assert bench.pick(rows)["point"] == ["c"] and bench.pick(rows)["kept"]
    below = [dict(r, mu_ratio=0.5) for r in rows]
    assert bench.pick(below)["kept"] is False


def test_leaderboard_tunes_tests_and_resumes(tmp_path, monkeypatch, tiny_models):
    bench = _bench()
    fixed = [o for o in TEST_OVERRIDES if not o.startswith(("benchmark.", "training.learning_rate", "schedule."))]
    monkeypatch.setitem(bench.METHODS, "npo", ("npo", fixed, bench.grid([5e-4, 1e-3], [10])))
    monkeypatch.setitem(bench.TUNE_TRAINING_SEEDS, "npo", 2)  # each tuning point: training seeds 0 and 1
    board = bench.leaderboard(["npo"], test_seeds=[1], splits=["forget10"], work=tmp_path, size="test")
    entry = board["npo"]
    assert len(entry["tuning"]) == 2 and all(r["seed"] == 0 for r in entry["tuning"])
    for row in entry["tuning"]:  # the pick reads the median over the training seeds
        assert row["training_seeds"] == [0, 1] and len(row["per_seed"]["forget_quality"]) == 2
        fqs = row["per_seed"]["forget_quality"]
        assert row["forget_quality"] == pytest.approx((fqs[0] + fqs[1]) / 2)
    assert "(median of 2 training seeds)" in bench.markdown(board, ["forget10"])
    assert entry["pick"]["point"] in bench.METHODS["npo"][2]
    test = entry["test"]["forget10"]
    assert test["seeds"] == [1] and 0 <= test["forget_quality"]["median"] <= 1
    assert 0 < test["model_utility"]["median"] <= 1 and test["mu_ratio"]["median"] > 0.5
    assert len(list((tmp_path / "results").glob("*.json"))) == 3
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())

    import obliviate.api

    def refuse(*_args, **_kwargs):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(obliviate.api, "run", refuse)
    again = bench.leaderboard(["npo"], test_seeds=[1], splits=["forget10"], work=tmp_path, size="test")
    assert again["npo"]["test"] == entry["test"]
    assert "| npo |" in bench.markdown(again, ["forget10"])
    with pytest.raises(AssertionError, match="run again"):
        bench.leaderboard(["npo"], test_seeds=[2], splits=["forget10"], work=tmp_path, size="test")


def test_the_embedded_picks_are_the_leaderboards():
    """resources/picks.yaml (what `obliviate run --method NAME` starts from) holds each preset's
    pick of the committed leaderboard, so neither can change without the other."""
    import json

    from obliviate.methods import METHODS
    from obliviate.recipe import benchmark_picks

    board = json.loads((ROOT / "bench" / "results" / "leaderboard.json").read_text())["board"]
    presets = {name for name in board if name in METHODS}
    assert presets >= {"npo", "graddiff", "simnpo", "ga", "kl", "idkdpo", "wagle", "uld", "eul", "offset", "icu"}
    for name in presets:
        assert benchmark_picks(name) == board[name]["pick"]["point"], name


def test_retrain_row_scores_an_independent_retain_model(tmp_path, monkeypatch, tiny_models):
    """The gold standard's row: a retain model retrained with another seed, scored against the
    benchmark's retain model like an unlearned model; resumable like every other row."""
    from obliviate.benchmarks.authors import ensure_models

    bench = _bench()
    quiet = {"show_progress": False, "log": lambda *_: None}
    default = ensure_models("forget10", "test", 0, **quiet)
    assert ensure_models("forget10", "test", 0, retain_seed=0, **quiet).retain == default.retain  # same cache key
    board = bench.leaderboard([bench.RETRAIN], test_seeds=[0], splits=["forget10"], work=tmp_path, size="test")
    again = ensure_models("forget10", "test", 0, retain_seed=bench.RETRAIN_SEED, **quiet)
    assert again.retain != default.retain and again.target == default.target and again.built == {}
    from safetensors.torch import load_file

    weights = [load_file(folder / "model.safetensors") for folder in (default.retain, again.retain)]
    assert any(not (weights[0][k] == weights[1][k]).all() for k in weights[0])  # trained from another seed
    test = board[bench.RETRAIN]["test"]["forget10"]
    row = test["runs"][0]
    assert row["seed"] == 0 and 0 < row["forget_quality"] <= 1 and 0.5 < row["mu_ratio"] < 1.5
    assert row["forget_truth_ratio"] > 0 and row["target_model_utility"] > 0
    assert "exact unlearning" in bench.markdown(board, ["forget10"])

    import obliviate.api

    def refuse(*_args, **_kwargs):
        raise AssertionError("a finished run was run again")

    monkeypatch.setattr(obliviate.api, "evaluate", refuse)
    assert bench.leaderboard([bench.RETRAIN], test_seeds=[0], splits=["forget10"], work=tmp_path,
                             size="test")[bench.RETRAIN]["test"] == board[bench.RETRAIN]["test"]
