"""Per-epoch trace of the `until_unseen` stop against forget quality (docs/methods.md, docs/leaderboard.md).

For each benchmark seed: trains the default recipe's objective for a fixed number of epochs and,
after every epoch, prints the schedule's statistic (KS p of forget vs holdout truth ratios under the
current model) next to forget quality (KS p of forget truth ratios vs the retain model's), which a
real user cannot compute; then where the schedule would have stopped (first p >= 0.5; with
--per-record, the schedule's per_record rule) against the best epoch, and where a stop against the
target's (pre-unlearning) holdout truth ratios would have. Also prints, per seed, how far the
retain model itself is from matching the holdout (KS p of its forget vs its holdout truth ratios):
the ceiling of the proxy.

    .venv/bin/python bench/stop_trace.py [--seeds 1 2] [--epochs 60] [--lr 2e-4] [--beta 0.25]
        [--training-seed N (default: the benchmark seed)] [--per-record] [--dump]
    .venv/bin/python bench/stop_trace.py --seeds 1 2 --training-seed 0        # stop_trace.json
    .venv/bin/python bench/stop_trace.py --seeds 5 6 7 8 9 --out bench/results/stop_trace_fresh.json
    .venv/bin/python bench/stop_trace.py --seeds 1 2 3 4 --out bench/results/stop_trace_done_when.json
    .venv/bin/python bench/stop_trace.py --per-record --seeds 5 6 7 8 9 \
        --out bench/results/stop_trace_fresh_per_record.json
    .venv/bin/python bench/stop_trace.py --per-record --seeds 1 2 3 4 \
        --out bench/results/stop_trace_done_when_per_record.json
    .venv/bin/python bench/stop_trace.py --retain-only --seeds 0 1 2 3 4 --out bench/results/stop_trace_retain.json

Writes bench/results/stop_trace.json (or --out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def trace(seed: int, args) -> dict:
    import numpy as np
    from scipy import stats

    from obliviate.api import _as_recipe, _build_axes
    from obliviate.benchmarks import load_benchmark
    from obliviate.benchmarks.authors import ensure_models
    from obliviate.data.templates import set_template
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.schedules.unseen import RecordScorer, UntilUnseenSchedule, below_holdout
    from obliviate.train.unlearn import unlearn_model

    training_seed = seed if args.training_seed is None else args.training_seed
    recipe = _as_recipe(None, overrides=[f"training.learning_rate={args.lr}", f"objective.beta={args.beta}",
                                         f"schedule.epochs={args.epochs}", "threads=1"])
    data = load_benchmark("authors", "forget10", size="default", seed=seed)
    models = ensure_models("forget10", "default", seed, show_progress=False, log=lambda *_: None)
    tokenizer = load_tokenizer(models.target)
    set_template(tokenizer, recipe.model.template)
    forget_scorer = RecordScorer(tokenizer, data.forget, "truth_ratio", max_length=512)
    holdout_scorer = RecordScorer(tokenizer, data.holdout, "truth_ratio", max_length=512)
    retain_model = load_model(models.retain)
    retain_forget = forget_scorer(retain_model)
    ceiling = float(stats.ks_2samp(retain_forget, holdout_scorer(retain_model)).pvalue)
    print(f"seed {seed}: retain model, forget vs holdout KS p {ceiling:.3g}", flush=True)
    out = {"seed": seed, "retain_forget_vs_holdout_p": ceiling}
    if args.retain_only:
        return out
    # an alternative reference: the holdout truth ratios of the model *before* unlearning, fixed
    target_holdout = holdout_scorer(load_model(models.target))
    if args.dump:
        out.update(retain_forget_tr=retain_forget, retain_holdout_tr=holdout_scorer(retain_model),
                   target_holdout_tr=target_holdout)

    rows = []

    class Traced(UntilUnseenSchedule):
        first_stop: dict | None = None  # the row of the check at which the schedule itself stops

        def check(self, model, epoch):
            stops = super().check(model, epoch)
            forget, holdout = self.last_values
            fq = float(stats.ks_2samp(forget, retain_forget).pvalue)
            row = {"epoch": epoch, "holdout_p": self.checks[-1]["p"], "forget_quality": fq,
                   "target_holdout_p": float(stats.ks_2samp(forget, target_holdout).pvalue),
                   "forget_median": float(np.median(forget)), "holdout_median": float(np.median(holdout)),
                   "n_below_holdout": len(below_holdout(forget, holdout))}
            if args.dump:
                row.update(forget_tr=forget, holdout_tr=holdout)
            rows.append(row)
            if stops and self.first_stop is None:
                self.first_stop = row
            print(f"  epoch {epoch:3d}: holdout p {row['holdout_p']:.3g}  forget quality {fq:.3g}  "
                  f"below the holdout {row['n_below_holdout']}", flush=True)
            self.stop_reason = None  # trace every epoch up to the cap ...
            return bool(self.config.per_record and not self.active)  # ... that still has records to train

    objective, scope, _, _ = _build_axes(recipe)
    schedule = Traced(UntilUnseenSchedule.Config(epochs=args.epochs, per_record=args.per_record))
    unlearn_model(load_model(models.target), tokenizer, data.forget, data.retain, objective=objective, scope=scope,
                  schedule=schedule, training=recipe.training, seed=training_seed, show_progress=False,
                  holdout=data.holdout)
    best_fq = max(rows, key=lambda r: r["forget_quality"])
    best_p = max(rows, key=lambda r: r["holdout_p"])
    stop = schedule.first_stop or rows[-1]  # where the schedule itself would have stopped (else: the cap)
    stop_target = next((r for r in rows if r["epoch"] > 0 and r["target_holdout_p"] >= schedule.config.p_value),
                       rows[-1])
    print(f"  the schedule stops at epoch {stop['epoch']} (forget quality {stop['forget_quality']:.3g}); "
          f"best forget quality {best_fq['forget_quality']:.3g} at epoch {best_fq['epoch']}; "
          f"best holdout p {best_p['holdout_p']:.3g} at epoch {best_p['epoch']} "
          f"(forget quality there {best_p['forget_quality']:.3g}); against the target's holdout it would stop "
          f"at epoch {stop_target['epoch']} (forget quality {stop_target['forget_quality']:.3g})", flush=True)
    summary = {"training_seed": training_seed, "stop_epoch": stop["epoch"],
               "stop_forget_quality": stop["forget_quality"], "stop_target_holdout_epoch": stop_target["epoch"],
               "stop_target_holdout_forget_quality": stop_target["forget_quality"], "best_epoch": best_fq["epoch"],
               "best_forget_quality": best_fq["forget_quality"]}
    return {**out, **summary, "epochs": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--beta", type=float, default=0.25)
    parser.add_argument("--training-seed", type=int, default=None,
                        help="default: the benchmark seed, as `obliviate run --set seed=N` trains")
    parser.add_argument("--retain-only", action="store_true", help="only the retain model's ceiling per seed")
    parser.add_argument("--per-record", action="store_true", help="schedule.per_record: train only the forget "
                        "records below the holdout's value at their rank")
    parser.add_argument("--dump", action="store_true", help="also write every truth ratio (forget and holdout, "
                        "per epoch; retain and target model) to compare stopping statistics offline")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "stop_trace.json"))
    args = parser.parse_args()
    import torch

    from obliviate.report.figures import machine, spread

    torch.set_num_threads(1)
    result = {**machine(), "settings": {k: v for k, v in vars(args).items() if k != "out"},
              "seeds": [trace(seed, args) for seed in args.seeds]}
    if not args.retain_only and len(args.seeds) > 1:
        for key in ("stop_forget_quality", "stop_target_holdout_forget_quality", "best_forget_quality"):
            result[key] = spread([s[key] for s in result["seeds"]])
        print(f"forget quality where the schedule stops: median {result['stop_forget_quality']['median']:.3g} "
              f"[{result['stop_forget_quality']['min']:.2g}, {result['stop_forget_quality']['max']:.2g}]; "
              f"stopping against the target's holdout: {result['stop_target_holdout_forget_quality']['median']:.3g}; "
              f"at the best epoch: {result['best_forget_quality']['median']:.3g}", flush=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
