"""ICU vs plain gradient ascent on verbatim passages, at equal epochs.

On the embedded `authors` benchmark's passages task (the forget authors' biographies, which the
target model was trained on verbatim), ICU (ascent + neighbour LM/KL, per-target re-check, MA/EL
stopping) runs first; plain GA then runs for the same number of epochs. The script prints, per
method, EL10 (ICU's suffix form) and MA on the forget passages and perplexity on retained passages,
before and after, and ICU's epochs, as the median and range over training seeds. The paper's
direction: EL falls to a few percent while retain perplexity stays within ~1.3× (GA explodes it).
Writes bench/results/icu.json.

    .venv/bin/python bench/icu.py [--seeds 0 1 2] [--size default] [--lr 1e-3] [--batch-size 2]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("forget_passages_EL10", "forget_passages_MA", "retain_passages_ppl", "model_utility")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size", default="default")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OBLIVIATE_PROGRESS", "0")
    from obliviate.benchmarks import load_benchmark
    from obliviate.report.figures import machine, spread
    from obliviate.benchmarks.authors import ensure_models
    from obliviate.evaluate.tofu import EvalConfig, evaluate_model
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.objectives import OBJECTIVES
    from obliviate.schedules import SCHEDULES
    from obliviate.scopes import SCOPES
    from obliviate.train.unlearn import TrainingConfig, unlearn_model

    data = load_benchmark("authors", "forget10", size=args.size, seed=0, task="passages")
    models = ensure_models("forget10", args.size, 0, show_progress=False, log=lambda *_: None)
    tokenizer = load_tokenizer(models.target)
    config = EvalConfig(mia=False)

    def evaluate(model):
        return evaluate_model(model, tokenizer, data.eval_splits, config=config, passages=data.passages,
                              show_progress=False).summary["metrics"]

    before = evaluate(load_model(models.target))
    print("target: " + ", ".join(f"{k} {before[k]:.4g}" for k in KEYS))
    training = TrainingConfig(learning_rate=args.lr, batch_size=args.batch_size, weight_decay=0.0,
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
        print(f"seed {seed}: ICU {epochs} epochs ({icu_schedule.info['stop_reason']}); "
              + "; ".join(f"{n}: EL10 {a['forget_passages_EL10']:.3f}, MA {a['forget_passages_MA']:.3f}, "
                          f"retain ppl {a['retain_passages_ppl']:.3f}, MU {a['model_utility']:.3f}"
                          for n, a in (("ICU", after_icu), ("GA", after_ga))), flush=True)

    result = {"benchmark": f"authors/{args.size}/forget10 passages", "lr": args.lr, "batch_size": args.batch_size,
              "max_epochs": args.max_epochs, "seeds": args.seeds, "threads": args.threads, **machine(),
              "before": {k: before[k] for k in KEYS},
              "after": {name: {k: spread(v) for k, v in values.items()} for name, values in runs.items()},
              "per_seed": runs}
    for name in ("icu", "ga"):
        a = result["after"][name]
        print(f"{name.upper():<4} EL10 {before['forget_passages_EL10']:.3f} -> {a['forget_passages_EL10']['median']:.3f} "
              f"[{a['forget_passages_EL10']['min']:.3f}, {a['forget_passages_EL10']['max']:.3f}]  "
              f"MA {before['forget_passages_MA']:.3f} -> {a['forget_passages_MA']['median']:.3f}  "
              f"retain ppl {before['retain_passages_ppl']:.3f} -> {a['retain_passages_ppl']['median']:.3f} "
              f"[{a['retain_passages_ppl']['min']:.3f}, {a['retain_passages_ppl']['max']:.3f}]  "
              f"epochs {a['epochs']['median']:g}")
    out = ROOT / "bench" / "results" / "icu.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
