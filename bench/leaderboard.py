"""An honest quality leaderboard on the embedded benchmark (docs/leaderboard.md).

Procedure, fixed before any test figure is seen:
1. **Tune** on benchmark seed 0, forget10: each method's small grid (learning rate × epochs, plus
   at most one method-specific value). The pick maximises forget quality among the points whose
   model utility is at least 0.98× the target's; ties go to the higher utility. When no point keeps
   0.98×, the pick is the point with the highest utility ratio, flagged ``kept: false``.
2. **Test** the picks on benchmark seeds 1-4 (fresh authors, fresh target and retain models) and
   splits forget01, forget05, forget10: median and range of forget quality, model utility (also
   as a ratio to the target's), forget truth ratio, forget ROUGE-L and wall time.
3. The ``retrain`` row: a retain model retrained from scratch with another seed on each test
   instance (exact unlearning), scored the same way: the reference every other row is read against.

Every (method, values, seed, split) run writes one JSON file under --work, so a killed
leaderboard continues where it stopped; the embedded models are cached per seed as usual. Runs
skip membership inference, passages and the audit (none of them enters the table), so a run costs
unlearning plus three TOFU evaluations.

    .venv/bin/python bench/leaderboard.py [--methods npo graddiff ...] [--phase tune|test|all]
        [--test-seeds 1 2 3 4] [--splits forget01 forget05 forget10] [--work /tmp/obliviate-leaderboard]
    .venv/bin/python bench/leaderboard.py --report-only   # tables from what --work holds

Writes bench/results/leaderboard.json, and docs/leaderboard.md + docs/leaderboard.png with --docs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TUNE_SEED = 0
TUNE_SPLIT = "forget10"
MU_FLOOR = 0.98
#: settings that keep a leaderboard run to what the table reads
RUN_SETTINGS = ["eval.mia=false", "eval.passages=false", "audit.after_run=false"]


def grid(lrs: list[float], epochs: list[int], epochs_key: str = "schedule.epochs",
         extra: tuple[str, list[Any]] | None = None) -> list[list[str]]:
    points = [[f"training.learning_rate={lr:g}", f"{epochs_key}={e}"] for lr in lrs for e in epochs]
    if extra:
        key, values = extra
        points = [[*p, f"{key}={v}"] for p in points for v in values]
    return points


#: method -> (preset, fixed overrides, grid). Learning rates around each method's documented
#: working rate (docs/methods.md); epochs at the default recipe's 15 and twice that.
METHODS: dict[str, tuple[str | None, list[str], list[list[str]]]] = {
    # the embedded default recipe (default.yaml): NPO on the fact tokens, retain weight 2, trained
    # until the forget set looks like the never-trained holdout (schedule until_unseen, cap 60
    # epochs); the grid's extra value is NPO's beta
    "default": (None, [], [[f"training.learning_rate={lr:g}", f"objective.beta={b}"]
                           for lr in (2e-4, 5e-4, 1e-3) for b in (0.25, 0.5)]),
    # the default recipe going back to the best check when the cap ends training (restore_best)
    "default-restore": (None, ["schedule.restore_best=true"],
                        [[f"training.learning_rate={lr:g}", f"objective.beta={b}"]
                         for lr in (2e-4, 5e-4, 1e-3) for b in (0.25, 0.5)]),
    # the default recipe training, each epoch, only the forget records still below the holdout at
    # their rank, and stopping only once at most half are left below (schedule.per_record)
    "default-per-record": (None, ["schedule.per_record=true"],
                           [[f"training.learning_rate={lr:g}", f"objective.beta={b}"]
                            for lr in (2e-4, 5e-4, 1e-3) for b in (0.25, 0.5)]),
    # the previous default recipe: the same objective with beta 0.5 for a fixed number of epochs
    "default-epochs": (None, ["schedule=epochs", "objective.beta=0.5"], grid([2e-4, 5e-4, 1e-3], [15, 30])),
    "npo": ("npo", [], grid([2e-4, 5e-4, 1e-3], [15, 30])),
    "graddiff": ("graddiff", [], grid([5e-5, 2e-4, 5e-4], [15, 30])),
    "simnpo": ("simnpo", [], grid([2e-4, 5e-4, 1e-3], [15, 30])),
    "ga": ("ga", [], grid([2e-5, 5e-5, 2e-4], [15, 30])),
    "kl": ("kl", [], grid([5e-5, 2e-4, 5e-4], [15, 30])),
    "idkdpo": ("idkdpo", [], grid([2e-4, 5e-4, 1e-3], [15, 30])),
    "wagle": ("wagle", [], grid([2e-4, 5e-4, 1e-3], [15, 30])),
    "uld": ("uld", [], grid([5e-4, 1e-3, 2e-3], [15, 30])),
    "eul": ("eul", [], grid([3e-3, 1e-2, 3e-2], [10, 20], "schedule.cycles")),
    "offset": ("offset", [], grid([2e-4, 5e-4, 1e-3], [15, 30])),
    "icu": ("icu", [], grid([2e-4, 5e-4, 1e-3], [10, 20], "schedule.max_epochs")),
    # default-epochs on a LoRA adapter (peft's default targets, r 8): rates 10x higher
    "default-epochs-lora": (None, ["scope=lora", "schedule=epochs", "objective.beta=0.5"],
                            grid([1e-3, 3e-3, 1e-2], [15, 30])),
}
#: the gold standard's row: no method, a retain model retrained from scratch (another
#: initialisation and data-order seed, ``ensure_models(retain_seed=...)``) on the test instances,
#: scored like an unlearned model against the benchmark's retain model: the forget quality exact
#: unlearning reaches, i.e. the metric's ceiling and its noise on each instance (bench/fq_ceiling.py)
RETRAIN = "retrain"
RETRAIN_SEED = 1000
#: rows whose tuning points each run this many training seeds on the tuning instance (the pick
#: reads their medians): one training seed of seed 0 proved a lucky draw for the default recipe
#: (forget quality 0.58, 0.28 and 0.0013 over training seeds 0-2 at one grid point)
TUNE_TRAINING_SEEDS: dict[str, int] = {"default": 3, "default-restore": 3, "default-per-record": 3}


def run_key(method: str, point: list[str], seed: int, split: str, training_seeds: int = 1) -> str:
    digest = hashlib.sha1(json.dumps(point).encode()).hexdigest()[:10]
    return f"{method}-{split}-seed{seed}-{digest}" + (f"-x{training_seeds}" if training_seeds > 1 else "")


def run_point(method: str, point: list[str], seed: int, split: str, work: Path, size: str,
              training_seeds: int = 1) -> dict[str, Any]:
    """One run, or its saved result; with ``training_seeds`` > 1 the run repeats unlearning over
    that many training seeds and the row holds their medians (and each seed's values)."""
    key = run_key(method, point, seed, split, training_seeds)
    path = work / "results" / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    from obliviate import api

    preset, fixed, _ = METHODS[method]
    folder = work / "runs" / key
    if folder.exists():
        import shutil

        shutil.rmtree(folder)  # an interrupted run: start it again
    started = time.perf_counter()
    result = api.run(method=preset, forget_split=split, out=folder, show_progress=False, log=lambda *_: None,
                     overrides=[f"benchmark.size={size}", f"seed={seed}", "threads=1", *RUN_SETTINGS, *fixed, *point],
                     seeds=training_seeds if training_seeds > 1 else None)
    rows = result.rows
    row = {"method": method, "point": point, "seed": seed, "split": split, "size": size,
           "forget_quality": rows["unlearned"]["forget_quality"], "model_utility": rows["unlearned"]["model_utility"],
           "target_model_utility": rows["target"]["model_utility"],
           "retain_model_utility": rows["retain"]["model_utility"],
           "forget_truth_ratio": rows["unlearned"]["forget_Truth_Ratio"],
           "forget_rouge": rows["unlearned"]["forget_Q_A_ROUGE"], "forget_prob": rows["unlearned"]["forget_Q_A_Prob"],
           "seconds": round(time.perf_counter() - started, 1)}
    row["mu_ratio"] = row["model_utility"] / row["target_model_utility"]
    if training_seeds > 1:
        spread = result.summary["metrics_spread"]["unlearned"]
        row["training_seeds"] = result.summary["training_seeds"]
        row["per_seed"] = {"forget_quality": spread["forget_quality"]["values"],
                           "model_utility": spread["model_utility"]["values"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row, indent=1))
    tmp.replace(path)
    import shutil

    shutil.rmtree(folder, ignore_errors=True)  # the numbers are kept; the models are not needed
    print(f"{method} {' '.join(point)} seed {seed} {split}: FQ {row['forget_quality']:.3g} "
          f"MU {row['model_utility']:.3f} ({row['mu_ratio']:.3f}x) in {row['seconds']:.0f} s", flush=True)
    return row


def retrain_path(work: Path, split: str, seed: int) -> Path:
    return work / "results" / f"{RETRAIN}-{split}-seed{seed}-r{RETRAIN_SEED}.json"


def run_retrain(seed: int, split: str, work: Path, size: str) -> dict[str, Any]:
    """The ``retrain`` row's run on one test instance, or its saved result."""
    path = retrain_path(work, split, seed)
    if path.is_file():
        return json.loads(path.read_text())
    from obliviate import api
    from obliviate.benchmarks.authors import ensure_models

    quiet = {"show_progress": False, "log": lambda *_: None}
    started = time.perf_counter()
    models = ensure_models(split, size, seed, **quiet)
    again = ensure_models(split, size, seed, retain_seed=RETRAIN_SEED, **quiet)
    common = {"forget_split": split, "size": size, "seed": seed, "show_progress": False}
    retrained = api.evaluate(again.retain, retain_model=models.retain, **common).summary["metrics"]
    target = api.evaluate(models.target, **common).summary["metrics"]
    row = {"method": RETRAIN, "point": [f"retain_seed={RETRAIN_SEED}"], "seed": seed, "split": split, "size": size,
           "forget_quality": retrained["forget_quality"], "model_utility": retrained["model_utility"],
           "target_model_utility": target["model_utility"], "retain_model_utility": None,
           "forget_truth_ratio": retrained["forget_Truth_Ratio"], "forget_rouge": retrained["forget_Q_A_ROUGE"],
           "forget_prob": retrained["forget_Q_A_Prob"], "seconds": round(time.perf_counter() - started, 1)}
    row["mu_ratio"] = row["model_utility"] / row["target_model_utility"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row, indent=1))
    tmp.replace(path)
    print(f"{RETRAIN} seed {seed} {split}: FQ {row['forget_quality']:.3g} MU {row['model_utility']:.3f} "
          f"({row['mu_ratio']:.3f}x) in {row['seconds']:.0f} s", flush=True)
    return row


def pick(rows: list[dict[str, Any]], floor: float = MU_FLOOR) -> dict[str, Any]:
    """The tuning rule: the highest forget quality among points with MU ≥ floor × the target's
    (ties: higher MU); else the highest MU ratio, flagged."""
    kept = [r for r in rows if r["mu_ratio"] >= floor]
    if kept:
        best = max(kept, key=lambda r: (r["forget_quality"], r["model_utility"]))
        return {**best, "kept": True}
    return {**max(rows, key=lambda r: r["mu_ratio"]), "kept": False}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    from obliviate.report.figures import spread

    keys = ("forget_quality", "model_utility", "mu_ratio", "forget_truth_ratio", "forget_rouge", "seconds")
    return {"n": len(rows), "seeds": sorted(r["seed"] for r in rows), **{k: spread([r[k] for r in rows]) for k in keys}}


def leaderboard(methods: list[str], test_seeds: list[int], splits: list[str], work: Path, size: str,
                phase: str = "all", run: bool = True) -> dict[str, Any]:
    """Tune, then test; with ``run=False`` only what ``work`` already holds is read."""
    def get(method: str, point: list[str], seed: int, split: str, training_seeds: int = 1) -> dict[str, Any] | None:
        if run:
            return run_point(method, point, seed, split, work, size, training_seeds)
        path = work / "results" / f"{run_key(method, point, seed, split, training_seeds)}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    board: dict[str, Any] = {}
    for method in methods:
        if method == RETRAIN:
            if phase == "tune":
                continue
            entry = {"preset": None, "grid": [], "tuning": [], "tuning_training_seeds": 0,
                     "pick": {"point": [f"retain_seed={RETRAIN_SEED}"], "kept": True, "forget_quality": None,
                              "mu_ratio": None}, "test": {}}
            for split in splits:
                paths = {s: retrain_path(work, split, s) for s in test_seeds}
                rows = [run_retrain(s, split, work, size) if run else json.loads(p.read_text())
                        for s, p in paths.items() if run or p.is_file()]
                if rows:
                    entry["test"][split] = {**summarise(rows), "runs": rows}
            board[method] = entry
            continue
        n_tune = TUNE_TRAINING_SEEDS.get(method, 1)
        tuned = [r for r in (get(method, p, TUNE_SEED, TUNE_SPLIT, n_tune) for p in METHODS[method][2]) if r]
        if not tuned:
            continue
        chosen = pick(tuned)
        entry: dict[str, Any] = {"preset": METHODS[method][0], "grid": METHODS[method][2], "tuning": tuned,
                                 "tuning_training_seeds": n_tune,
                                 "pick": {"point": chosen["point"], "kept": chosen["kept"],
                                          "forget_quality": chosen["forget_quality"],
                                          "mu_ratio": chosen["mu_ratio"]}, "test": {}}
        if phase in ("test", "all"):
            for split in splits:
                rows = [r for r in (get(method, chosen["point"], s, split) for s in test_seeds) if r]
                if rows:
                    entry["test"][split] = {**summarise(rows), "runs": rows}
        board[method] = entry
    return board


def fmt(value: dict[str, float], digits: str = ".3f") -> str:
    return f"{value['median']:{digits}} [{value['min']:{digits}}, {value['max']:{digits}}]"


def fq(value: dict[str, float]) -> str:
    def one(x: float) -> str:
        return f"{x:.2g}" if x >= 1e-3 else f"{x:.1e}"
    return f"{one(value['median'])} [{one(value['min'])}, {one(value['max'])}]"


def markdown(board: dict[str, Any], splits: list[str]) -> str:
    lines = ["| method | picked (tuned on seed 0, forget10) | split | forget quality | model utility | MU / target "
             "| forget TR | forget ROUGE-L | s / run |", "|" + "---|" * 9]
    order = sorted(board, key=lambda m: -(board[m]["test"].get("forget10", {}).get("forget_quality", {})
                                           .get("median", board[m]["pick"]["forget_quality"] or 0.0)))
    for method in order:
        entry = board[method]
        if method == RETRAIN:
            picked = f"exact unlearning: retrained without the forget set (seed {RETRAIN_SEED}); not tuned"
        else:
            picked = ", ".join(p.split(".", 1)[1] for p in entry["pick"]["point"])
        if entry.get("tuning_training_seeds", 1) > 1:
            picked += f" (median of {entry['tuning_training_seeds']} training seeds)"
        if not entry["pick"]["kept"]:
            picked += f" (no point kept {MU_FLOOR}x MU)"
        for split in splits:
            test = entry["test"].get(split)
            if not test:
                continue
            lines.append(f"| {method} | {picked} | {split} | {fq(test['forget_quality'])} "
                         f"| {fmt(test['model_utility'])} | {fmt(test['mu_ratio'])} "
                         f"| {fmt(test['forget_truth_ratio'])} | {fmt(test['forget_rouge'])} "
                         f"| {test['seconds']['median']:.0f} |")
    return "\n".join(lines)


def plot(board: dict[str, Any], path: Path, split: str = "forget10") -> Path | None:
    from obliviate.report.writer import plot_quality_utility

    rows, spreads = {}, {}
    for method, entry in board.items():
        test = entry["test"].get(split)
        if test:
            rows[method] = {"forget_quality": test["forget_quality"]["median"],
                            "model_utility": test["model_utility"]["median"]}
            spreads[method] = {k: test[k] for k in ("forget_quality", "model_utility")}
    return plot_quality_utility(rows, path, spreads) if rows else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=[*METHODS, RETRAIN], choices=[*METHODS, RETRAIN])
    parser.add_argument("--test-seeds", nargs="+", type=int, default=[1, 2, 3, 4])
    parser.add_argument("--splits", nargs="+", default=["forget01", "forget05", "forget10"])
    parser.add_argument("--phase", choices=("tune", "test", "all"), default="all")
    parser.add_argument("--size", default="default")
    parser.add_argument("--work", default="/tmp/obliviate-leaderboard")
    parser.add_argument("--tune-training-seeds", type=int, default=None,
                        help="training seeds per tuning point for the --methods given (default: TUNE_TRAINING_SEEDS)")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--docs", action="store_true", help="write docs/leaderboard.md's table and plot")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "leaderboard.json"),
                        help="results file (the board of --methods only)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.tune_training_seeds:
        TUNE_TRAINING_SEEDS.update({m: args.tune_training_seeds for m in args.methods})
    work = Path(args.work)
    board = leaderboard(args.methods, args.test_seeds, args.splits, work, args.size, args.phase,
                        run=not args.report_only)
    from obliviate.report.figures import machine

    print()
    for method, entry in board.items():
        if method == RETRAIN:
            continue
        print(f"{method}: picked {' '.join(entry['pick']['point'])} (seed 0 FQ {entry['pick']['forget_quality']:.3g}, "
              f"MU {entry['pick']['mu_ratio']:.3f}x target{'' if entry['pick']['kept'] else ', below the floor'})")
    table = markdown(board, args.splits)
    print("\n" + table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"size": args.size, "tune": {"seed": TUNE_SEED, "split": TUNE_SPLIT,
                                                           "mu_floor": MU_FLOOR},
                               "test_seeds": args.test_seeds, "splits": args.splits, **machine(),
                               "board": board}, indent=1) + "\n")
    print(f"\nwrote {out}")
    if args.docs:
        print(f"wrote {plot(board, ROOT / 'docs' / 'leaderboard.png')}")
        (ROOT / "bench" / "results" / "leaderboard_table.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
