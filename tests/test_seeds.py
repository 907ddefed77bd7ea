"""Runs over several seeds (`obliviate run --seeds N`) and figures that reproduce.

One test-size run over seeds 0 and 1 (about 15 s on one thread, models shared with the session)
serves both: its spread is checked for shape, and its figures against ``tests/data/seeded_run.json``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from tests.conftest import TEST_OVERRIDES

FIGURES = Path(__file__).parent / "data" / "seeded_run.json"
SEEDS = [0, 1]
# The TOFU figures a user compares. Memorisation and MIA numbers are left out: they are checked
# elsewhere, and their definitions still follow the reference implementations as those change.
KEYS = ("forget_quality", "model_utility", "forget_Q_A_Prob", "forget_Truth_Ratio", "forget_Q_A_ROUGE",
        "retain_Q_A_Prob", "retain_Q_A_ROUGE")


# --- units: seeds, spread, table cells ---------------------------------------------------------

def test_training_seeds_count_up_from_the_recipe_seed_or_are_given():
    from obliviate.api import _training_seeds
    from obliviate.errors import ConfigError

    assert _training_seeds(None, 7) == [7]
    assert _training_seeds(1, 7) == [7]
    assert _training_seeds(3, 7) == [7, 8, 9]
    assert _training_seeds([4, 2], 0) == [4, 2]
    for bad in (0, -1, True, [], [1, 1], ["1"], "3", [1.5]):
        with pytest.raises(ConfigError):
            _training_seeds(bad, 0)


def test_seed_spread_gives_median_range_and_values():
    from obliviate.report.figures import seed_spread

    got = seed_spread([{"a": 3.0, "b": None, "c": 1.0}, {"a": 1.0, "b": None}, {"a": 2.0, "c": float("nan")}])
    assert got["a"] == {"median": 2.0, "min": 1.0, "max": 3.0, "values": [3.0, 1.0, 2.0]}
    assert "b" not in got  # no number at all
    assert got["c"]["median"] == 1.0 and got["c"]["values"][1] is None


def test_table_cells_show_median_and_range_only_where_given():
    from obliviate.report.tables import comparison_table, spread_note

    rows = {"target": {"forget_quality": 1e-7, "model_utility": 0.8},
            "unlearned": {"forget_quality": 3.8e-6, "model_utility": 0.81}}
    spreads = {"unlearned": {"forget_quality": {"min": 2.1e-6, "max": 2.2e-4}, "model_utility": {"min": 0.8, "max": 0.82}}}
    table = comparison_table(rows, spreads=spreads)
    assert "3.80e-06 [2.10e-06, 2.20e-04]" in table and "0.810 [0.800, 0.820]" in table
    target_line = next(line for line in table.splitlines() if line.startswith("| target"))
    assert "[" not in target_line
    assert comparison_table(rows) == comparison_table(rows, spreads=None)  # one seed: as before
    assert "over 3 unlearning seeds (5, 6, 7)" in spread_note(spreads, [5, 6, 7])
    assert spread_note(None, [0]) == "" and spread_note(spreads, [0]) == ""


def test_run_cli_passes_seeds(monkeypatch):
    from obliviate import api
    from obliviate.cli import main

    calls = []
    monkeypatch.setattr(api, "run", lambda *a, **kw: calls.append(kw))
    assert main(["run", "--seeds", "3", "--quiet"]) == 0
    assert main(["run", "--quiet"]) == 0
    assert [c["seeds"] for c in calls] == [3, 1]
    for bad in ("0", "two"):
        with pytest.raises(SystemExit) as exc:
            main(["run", "--seeds", bad])
        assert exc.value.code == 2


# --- one run over two seeds --------------------------------------------------------------------

@pytest.fixture(scope="module")
def seeded_run(tiny_models, tmp_path_factory):
    from obliviate import run

    out = tmp_path_factory.mktemp("seeds") / "run"
    return run(overrides=TEST_OVERRIDES, out=out, seeds=len(SEEDS), show_progress=False, log=lambda *_: None)


@pytest.mark.slow
def test_run_over_seeds_reports_each_metric_median_and_range(seeded_run):
    out, summary, rows = seeded_run.out, seeded_run.summary, seeded_run.rows
    assert summary["seed"] == 0 and summary["training_seeds"] == SEEDS and summary["saved_seed"] == 0
    spread = summary["metrics_spread"]["unlearned"]
    assert set(KEYS) <= set(spread)
    for key, s in spread.items():
        assert len(s["values"]) == len(SEEDS)
        assert s["min"] <= s["median"] <= s["max"], key
        assert rows["unlearned"][key] == s["median"] == summary["metrics"]["unlearned"][key]
    # the seeds train differently (data order), from the same target: the target is evaluated once
    assert spread["forget_Q_A_Prob"]["min"] < spread["forget_Q_A_Prob"]["max"]
    assert sorted(p.name for p in (out / "eval").iterdir()) == ["retain", "target", "unlearned", "unlearned-seed1"]
    # the saved model and eval/unlearned are the first seed's
    first = json.loads((out / "eval" / "unlearned" / "summary.json").read_text())["metrics"]
    second = json.loads((out / "eval" / "unlearned-seed1" / "summary.json").read_text())["metrics"]
    assert all(first[k] == spread[k]["values"][0] and second[k] == spread[k]["values"][1] for k in KEYS)
    assert (out / "model" / "model.safetensors").is_file() and (out / "train_log-seed1.jsonl").is_file()
    report = (out / "report.md").read_text()
    unlearned_line = next(line for line in report.splitlines() if line.startswith("| unlearned"))
    assert unlearned_line.count("[") >= len(KEYS) and "over 2 unlearning seeds (0, 1)" in report
    assert summary["timings"]["unlearn_per_seed"] and len(summary["timings"]["unlearn_per_seed"]) == 2


def _cpu_flags() -> str:
    """The vector extensions float kernels dispatch on (a CPU model name can be as vague as
    "Intel(R) Xeon(R) Processor")."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return " ".join(sorted(f for f in line.split(":", 1)[1].split()
                                       if f.startswith(("avx", "amx", "fma", "sse4"))))
    except OSError:
        pass
    return ""


def _figures(result) -> dict:
    import torch

    from obliviate.report.figures import machine

    spread = result.summary["metrics_spread"]["unlearned"]
    metrics = {name: {k: result.rows[name][k] for k in KEYS} for name in ("target", "retain")}
    for i, seed in enumerate(SEEDS):
        metrics[f"unlearned_seed{seed}"] = {k: spread[k]["values"][i] for k in KEYS}
    versions = result.summary["versions"]
    return {"what": "api.run(overrides=tests.conftest.TEST_OVERRIDES, seeds=2) on one thread; written by "
                    "OBLIVIATE_UPDATE_FIGURES=1 pytest tests/test_seeds.py",
            "environment": {"cpu": machine()["cpu"], "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                            "cpu_flags": _cpu_flags(), **{k: versions[k] for k in ("torch", "transformers", "peft")}},
            "metrics": metrics}


@pytest.mark.slow
def test_seeded_run_reproduces_stored_figures(seeded_run):
    """The stored figures of a seeded test-size run come back.

    Tolerance. On the machine and library versions that wrote the file (same CPU model and vector
    extensions, torch, transformers, peft) training and evaluation are deterministic on one thread, so every figure
    must match to 1e-6 (forget quality to a relative 1e-6). Elsewhere float kernels differ with the
    CPU (Intel or AMD, vector width), the tiny models train to slightly different weights, and the
    KS p-value on 20 forget items moves by orders of magnitude (issue 9: the default run's forget
    quality spans 1.2e-4 to 9.9e-3 over three machines, model utility within 0.01); so there
    probabilities, truth ratios and model utility must lie within 0.05, ROUGE-L (greedy
    generations, one flipped token changes an item) within 0.1, and forget quality within two
    decades (|log10 ratio| <= 2). That still fails when unlearning or evaluation change in kind.

    The file keeps one entry per machine that wrote it (Intel Xeon and AMD EPYC so far: their
    greedy generations differ by up to 0.3 ROUGE-L at this size). On a machine it holds, figures
    must match exactly as above; on any other, within the loose tolerances of at least one entry.

    After a deliberate change of the figures, rewrite this machine's entry with
    ``OBLIVIATE_UPDATE_FIGURES=1 pytest tests/test_seeds.py`` and review the diff (then rewrite the
    other machines' entries on them, or drop them).
    """
    got = _figures(seeded_run)
    stored = json.loads(FIGURES.read_text())
    if os.environ.get("OBLIVIATE_UPDATE_FIGURES"):
        others = [m for m in stored["machines"] if m["environment"] != got["environment"]]
        FIGURES.parent.mkdir(exist_ok=True)
        FIGURES.write_text(json.dumps({"what": got["what"], "machines": [*others, {
            "environment": got["environment"], "metrics": got["metrics"]}]}, indent=1) + "\n")
        pytest.skip(f"wrote this machine's figures into {FIGURES}")

    def differences(entry: dict, same: bool) -> list[str]:
        failures = []
        for name, expected in entry["metrics"].items():
            for key, want in expected.items():
                have = got["metrics"][name][key]
                if key == "forget_quality":
                    ok = (math.isclose(have, want, rel_tol=1e-6) if same else
                          abs(math.log10(max(have, 1e-300)) - math.log10(max(want, 1e-300))) <= 2)
                else:
                    ok = abs(have - want) <= (1e-6 if same else 0.1 if key.endswith("ROUGE") else 0.05)
                if not ok:
                    failures.append(f"{name} {key}: {have:.6g}, stored {want:.6g}")
        return failures

    this_machine = [m for m in stored["machines"] if m["environment"] == got["environment"]]
    if this_machine:
        failures = differences(this_machine[0], same=True)
        where = "this machine's"
    else:
        tries = [(m["environment"], differences(m, same=False)) for m in stored["machines"]]
        failures = [] if any(not f for _, f in tries) else tries[0][1]
        where = f"every stored machine's (first: {tries[0][0]})"
    assert not failures, f"figures differ from {where} stored ones:\n" + "\n".join(failures)
