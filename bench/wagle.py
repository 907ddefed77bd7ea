"""WAGLE vs dense unlearning at equal learning rate and steps, with the mask ablations.

On the embedded `authors` benchmark (forget10, default size) the default recipe's NPO objective
(β 0.5, retain NLL weight 2, fact tokens) is run densely and under the WAGLE scope at ratios
0.5 / 0.8 / 0.95, and at 0.8 with the four ablation scores (random, magnitude, gradient, SNIP).
Each configuration runs with several training seeds on the same target model; the script prints
the median and range of forget quality and model utility, the mask time, and, as a sweep (not a
tuned benchmark), dense and the ratios (plus 0.2) at a second learning rate. Writes bench/results/wagle.json.

    .venv/bin/python bench/wagle.py [--seeds 0 1 2] [--size default] [--lrs 2e-4 5e-4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [("dense", {"name": "full"})] + [
    (f"wagle {r}", {"name": "wagle", "ratio": r}) for r in (0.5, 0.8, 0.95)] + [
    (f"{s} 0.8", {"name": "wagle", "ratio": 0.8, "score": s}) for s in ("random", "magnitude", "gradient", "snip")]
SWEEP = [("wagle 0.2", {"name": "wagle", "ratio": 0.2})]


def below_adam_eps_share(model, tokenizer, data, recipe, eps: float = 1e-8) -> float:
    """Share of weights whose mean per-item forget-NLL gradient is below Adam's ε: Adam moves such a
    weight by about lr·g/ε, next to nothing, so a mask that freezes only them changes nothing."""
    from obliviate.scopes.wagle import summed_nll_gradients
    from obliviate.train.data import encode_forget

    items = encode_forget(tokenizer, data.forget, forget_tokens=recipe.objective.get("forget_tokens", "answer"),
                          max_length=recipe.training.max_length, with_idk=False, seed=0)
    grads = summed_nll_gradients(model, [it["forget"] for it in items], tokenizer.pad_token_id)
    below = sum(int(((g / len(items)).abs() < eps).sum()) for g in grads.values())
    return below / sum(g.numel() for g in grads.values())


def threshold_scale_check(n_weights: int, n_tensors: int = 100) -> dict[str, float]:
    """Time the global top-ratio mask on ``n_weights`` random scores (as one model's worth of
    tensors) against a full sort of the flat vector, which is what the reference code does."""
    import torch

    from obliviate.scopes.wagle import top_fraction_masks

    gen = torch.Generator().manual_seed(0)
    scores = {f"t{i}": torch.rand(n_weights // n_tensors, generator=gen) for i in range(n_tensors)}
    started = time.perf_counter()
    masks = top_fraction_masks(lambda n: scores[n], {n: s.shape for n, s in scores.items()}, 0.8)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    torch.cat(list(scores.values())).sort()
    full_sort = time.perf_counter() - started
    selected = sum(int(m.sum()) for m in masks.values())
    return {"weights": n_weights, "threshold_seconds": ours, "full_sort_seconds": full_sort,
            "exact_count": selected == int(0.8 * n_weights)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size", default="default")
    parser.add_argument("--lrs", type=float, nargs="+", default=[2e-4, 5e-4])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scale-check", type=int, default=0, metavar="N",
                        help="only time the mask threshold on N random scores vs a full sort, and exit")
    args = parser.parse_args()
    if args.scale_check:
        print(json.dumps(threshold_scale_check(args.scale_check)))
        return

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OBLIVIATE_PROGRESS", "0")
    from obliviate.benchmarks import load_benchmark
    from obliviate.report.figures import machine, spread
    from obliviate.benchmarks.authors import ensure_models
    from obliviate.evaluate.tofu import EvalConfig, evaluate_model
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.objectives import OBJECTIVES
    from obliviate.recipe import load_recipe
    from obliviate.schedules import SCHEDULES
    from obliviate.scopes import SCOPES
    from obliviate.train.unlearn import unlearn_model

    # the 0.1 default recipe's objective and schedule, which docs/methods.md's figures were measured with
    recipe = load_recipe(overrides=[f"benchmark.size={args.size}", "schedule=epochs", "schedule.epochs=15",
                                    "objective.beta=0.5"])
    data = load_benchmark("authors", "forget10", size=args.size, seed=0)
    models = ensure_models("forget10", args.size, 0, show_progress=False, log=lambda *_: None)
    tokenizer = load_tokenizer(models.target)
    config = EvalConfig(mia=False, passages=False, max_new_tokens=data.max_new_tokens)
    retain = evaluate_model(load_model(models.retain), tokenizer, data.eval_splits, config=config, show_progress=False)
    target = evaluate_model(load_model(models.target), tokenizer, data.eval_splits, config=config,
                            retain_result=retain, show_progress=False)
    target_mu = target.summary["metrics"]["model_utility"]
    print(f"target: FQ {target.summary['metrics']['forget_quality']:.2e}, MU {target_mu:.3f}")
    quiet_share = below_adam_eps_share(load_model(models.target), tokenizer, data, recipe)
    print(f"weights whose forget gradient is below Adam's eps (1e-8): {quiet_share:.3f} "
          "(dense Adam barely moves them; a mask that freezes only them changes nothing)")

    rows = []
    for lr in args.lrs:
        # the sweep at other rates: dense and the ratios, down to 0.2 where the mask must bite
        configs = CONFIGS if lr == args.lrs[0] else CONFIGS[:1] + SWEEP + CONFIGS[1:4]
        for label, scope_section in configs:
            fq, mu, mask_s, unlearn_s = [], [], [], []
            for seed in args.seeds:
                training = recipe.training.__class__(**{**recipe.training.as_dict(), "learning_rate": lr})
                scope = SCOPES.build(scope_section)
                started = time.perf_counter()
                outcome = unlearn_model(load_model(models.target), tokenizer, data.forget, data.retain,
                                        objective=OBJECTIVES.build(recipe.objective), scope=scope,
                                        schedule=SCHEDULES.build(recipe.schedule), training=training, seed=seed,
                                        show_progress=False)
                unlearn_s.append(time.perf_counter() - started)
                mask_s.append(scope.info.get("mask_seconds", 0.0))
                m = evaluate_model(outcome.model, tokenizer, data.eval_splits, config=config, retain_result=retain,
                                   show_progress=False).summary["metrics"]
                fq.append(m["forget_quality"])
                mu.append(m["model_utility"])
            row = {"lr": lr, "config": label, "forget_quality": spread(fq), "model_utility": spread(mu),
                   "mask_seconds": statistics.median(mask_s), "unlearn_seconds": statistics.median(unlearn_s),
                   "per_seed": {"forget_quality": fq, "model_utility": mu}}
            rows.append(row)
            print(f"lr {lr:g}  {label:<16} FQ {row['forget_quality']['median']:.2e} "
                  f"[{row['forget_quality']['min']:.1e}, {row['forget_quality']['max']:.1e}]  "
                  f"MU {row['model_utility']['median']:.3f} [{row['model_utility']['min']:.3f}, "
                  f"{row['model_utility']['max']:.3f}]  mask {row['mask_seconds']:.2f} s  "
                  f"unlearn {row['unlearn_seconds']:.1f} s", flush=True)

    result = {"below_adam_eps_share": quiet_share, "benchmark": f"authors/{args.size}/forget10", "recipe": "default NPO (beta 0.5, retain 2, fact tokens), "
              f"{recipe.schedule.get('epochs')} epochs, batch {recipe.training.batch_size}",
              "seeds": args.seeds, "threads": args.threads, **machine(),
              "target": {"forget_quality": target.summary["metrics"]["forget_quality"], "model_utility": target_mu},
              "retain": {"model_utility": retain.summary["metrics"]["model_utility"]}, "rows": rows}
    out = ROOT / "bench" / "results" / "wagle.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
