"""ICU vs plain gradient ascent on verbatim passages, at equal epochs.

On the embedded `authors` benchmark's passages task (the forget authors' biographies, which the
target model was trained on verbatim), ICU (ascent + neighbour LM/KL, per-target re-check, MA/EL
stopping) runs first; plain GA then runs for the same number of epochs. The script prints, per
method, EL10 (ICU's suffix form) and MA on the forget passages and perplexity on retained passages,
before and after, and ICU's epochs, as the median and range over training seeds. The paper's
direction: EL falls to a few percent while retain perplexity stays within ~1.3× (GA explodes it).
Writes bench/results/icu.json.

    .venv/bin/python bench/icu.py [--seeds 0 1 2] [--size default] [--lrs 1e-3 3e-4] [--batch-size 2]

Retained passages were trained verbatim (perplexity ≈ 1.0), so their perplexity ratio is harsh;
the never-trained holdout authors' passages give a perplexity on unseen text of the same kind
(the paper's Pile perplexity plays that role).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("forget_passages_EL10", "forget_passages_MA", "retain_passages_ppl", "holdout_passages_ppl", "model_utility")


def run_lr(lr, args, before, data, models, tokenizer, evaluate) -> dict:
    """ICU, then GA for as many epochs, over the seeds at one learning rate."""
    from obliviate.models.loading import load_model
    from obliviate.objectives import OBJECTIVES
    from obliviate.report.figures import spread
    from obliviate.schedules import SCHEDULES
    from obliviate.scopes import SCOPES
    from obliviate.train.unlearn import TrainingConfig, unlearn_model

    training = TrainingConfig(learning_rate=lr, batch_size=args.batch_size, weight_decay=0.0,
                              scheduler="constant", logging_steps=1)
    runs: dict[str, dict[str, list[float]]] = {"icu": {}, "ga": {}}
    for seed in args.seeds:
        icu_schedule = SCHEDULES.build({"name": "icu", "max_epochs": args.max_epochs})
        outcome = unlearn_model(load_model(models.target), tokenizer, data.forget, data.retain,
                                objective=OBJECTIVES.build({"name": "icu"}), scope=SCOPES.build({"name": "full"}),
                                schedule=icu_schedule, training=training, seed=seed, show_progress=False)
        epochs = max(1, icu_schedule.info["epochs"])
        after_icu = evaluate(outcome.model)
        outcome = unlearn_model(load_model(models.target), tokenizer, data.forget, data.retain,
                                objective=OBJECTIVES.build({"name": "ga"}), scope=SCOPES.build({"name": "full"}),
                                schedule=SCHEDULES.build({"name": "epochs", "epochs": epochs}), training=training,
                                seed=seed, show_progress=False)
        after_ga = evaluate(outcome.model)
        for name, after in (("icu", after_icu), ("ga", after_ga)):
            for k in KEYS:
                runs[name].setdefault(k, []).append(after[k])
            runs[name].setdefault("epochs", []).append(epochs)
        runs["icu"].setdefault("cap_hit", []).append(float(icu_schedule.info["cap_hit"]))
        print(f"lr {lr:g} seed {seed}: ICU {epochs} epochs ({icu_schedule.info['stop_reason']}); "
              + "; ".join(f"{n}: EL10 {a['forget_passages_EL10']:.3f}, MA {a['forget_passages_MA']:.3f}, "
                          f"retain ppl {a['retain_passages_ppl']:.3f}, holdout ppl {a['holdout_passages_ppl']:.1f}, "
                          f"MU {a['model_utility']:.3f}" for n, a in (("ICU", after_icu), ("GA", after_ga))), flush=True)
    after = {name: {k: spread(v) for k, v in values.items()} for name, values in runs.items()}
    for name in ("icu", "ga"):
        a = after[name]
        print(f"lr {lr:g} {name.upper():<4} EL10 {before['forget_passages_EL10']:.3f} -> "
              f"{a['forget_passages_EL10']['median']:.3f} [{a['forget_passages_EL10']['min']:.3f}, "
              f"{a['forget_passages_EL10']['max']:.3f}]  MA {before['forget_passages_MA']:.3f} -> "
              f"{a['forget_passages_MA']['median']:.3f}  retain ppl {before['retain_passages_ppl']:.3f} -> "
              f"{a['retain_passages_ppl']['median']:.4g} [{a['retain_passages_ppl']['min']:.4g}, "
              f"{a['retain_passages_ppl']['max']:.4g}]  holdout ppl {before['holdout_passages_ppl']:.1f} -> "
              f"{a['holdout_passages_ppl']['median']:.4g}  MU {a['model_utility']['median']:.3f}  "
              f"epochs {a['epochs']['median']:g}", flush=True)
    return {"lr": lr, "after": after, "per_seed": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size", default="default")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-4])
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OBLIVIATE_PROGRESS", "0")
    from obliviate.benchmarks import load_benchmark
    from obliviate.benchmarks.authors import ensure_models
    from obliviate.evaluate.tofu import EvalConfig, evaluate_model
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.report.figures import machine

    data = load_benchmark("authors", "forget10", size=args.size, seed=0, task="passages")
    models = ensure_models("forget10", args.size, 0, show_progress=False, log=lambda *_: None)
    tokenizer = load_tokenizer(models.target)
    config = EvalConfig(mia=False, max_new_tokens=data.max_new_tokens)

    def evaluate(model):
        return evaluate_model(model, tokenizer, data.eval_splits, config=config, passages=data.passages,
                              show_progress=False).summary["metrics"]

    before = evaluate(load_model(models.target))
    print("target: " + ", ".join(f"{k} {before[k]:.4g}" for k in KEYS))
    results = []
    for lr in args.lrs:
        results.append(run_lr(lr, args, before, data, models, tokenizer, evaluate))
    result = {"benchmark": f"authors/{args.size}/forget10 passages", "batch_size": args.batch_size,
              "max_epochs": args.max_epochs, "seeds": args.seeds, "threads": args.threads, **machine(),
              "before": {k: before[k] for k in KEYS}, "runs": results}
    out = ROOT / "bench" / "results" / "icu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
