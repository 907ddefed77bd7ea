"""Per-epoch trace of the `until_unseen` stop against forget quality (docs/methods.md, docs/leaderboard.md).

For each benchmark seed: trains the default recipe's objective for a fixed number of epochs and,
after every epoch, prints the schedule's statistic (KS p of forget vs holdout truth ratios under the
current model) next to forget quality (KS p of forget truth ratios vs the retain model's), which a
real user cannot compute. Also prints, per seed, how far the retain model itself is from matching
the holdout (KS p of its forget vs its holdout truth ratios): the ceiling of the proxy.

    .venv/bin/python bench/stop_trace.py [--seeds 1 2] [--epochs 60] [--lr 2e-4] [--beta 0.25]
        [--training-seed 0] [--retain-only --seeds 0 1 2 3 4 --out bench/results/stop_trace_retain.json]

Writes bench/results/stop_trace.json (or --out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def trace(seed: int, args) -> dict:
    from scipy import stats

    from obliviate.api import _as_recipe, _build_axes
    from obliviate.benchmarks import load_benchmark
    from obliviate.benchmarks.authors import ensure_models
    from obliviate.data.templates import set_template
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.schedules.unseen import RecordScorer, UntilUnseenSchedule
    from obliviate.train.unlearn import unlearn_model

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

    rows = []

    class Traced(UntilUnseenSchedule):
        def check(self, model, epoch):
            super().check(model, epoch)
            last = self.checks[-1]
            fq = float(stats.ks_2samp(forget_scorer(model), retain_forget).pvalue)
            rows.append({"epoch": epoch, "holdout_p": last["p"], "forget_quality": fq,
                         "forget_median": last["forget_median"], "holdout_median": last["holdout_median"]})
            print(f"  epoch {epoch:3d}: holdout p {last['p']:.3g}  forget quality {fq:.3g}", flush=True)
            return False  # trace every epoch up to the cap

    objective, scope, _, _ = _build_axes(recipe)
    schedule = Traced(UntilUnseenSchedule.Config(epochs=args.epochs))
    unlearn_model(load_model(models.target), tokenizer, data.forget, data.retain, objective=objective, scope=scope,
                  schedule=schedule, training=recipe.training, seed=args.training_seed, show_progress=False,
                  holdout=data.holdout)
    best_fq = max(rows, key=lambda r: r["forget_quality"])
    best_p = max(rows, key=lambda r: r["holdout_p"])
    print(f"  best forget quality {best_fq['forget_quality']:.3g} at epoch {best_fq['epoch']}; "
          f"best holdout p {best_p['holdout_p']:.3g} at epoch {best_p['epoch']} "
          f"(forget quality there {best_p['forget_quality']:.3g})", flush=True)
    return {**out, "epochs": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--beta", type=float, default=0.25)
    parser.add_argument("--training-seed", type=int, default=0)
    parser.add_argument("--retain-only", action="store_true", help="only the retain model's ceiling per seed")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "stop_trace.json"))
    args = parser.parse_args()
    import torch

    from obliviate.report.figures import machine

    torch.set_num_threads(1)
    result = {**machine(), "settings": {k: v for k, v in vars(args).items() if k != "out"},
              "seeds": [trace(seed, args) for seed in args.seeds]}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
