"""Ext-Sub vs plain subtraction on the embedded deficiency task.

Base: the embedded target model (`authors`, default size). Questions: 100 retained authors'
questions, whose facts the base knows. Expert LoRA: fine-tuned on those questions answered well,
except a `contamination` fraction (0.3) answered deficiently, as real instruction data is not free
of the deficiency; anti-expert LoRA: the same questions all answered deficiently. Two deficiencies:
`toxic` (the answer plus an insult from the project's lexicon) and `untruthful` (a wrong value).
For the expert, the anti-expert, plain subtraction and Ext-Sub at α ∈ {0.5, 1, 2} the script prints
the deficiency rate and capability (ROUGE-L recall against the good answers) of greedy answers,
median and range over training seeds. Writes bench/results/extsub.json.

    .venv/bin/python bench/extsub.py [--seeds 0 1 2] [--size default] [--epochs 20] [--lr 3e-3]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALPHAS = (0.5, 1.0, 2.0)


def row_geometry(expert: dict, anti: dict) -> dict[str, float]:
    """How different the two adapters' rows are: their mean cosine, and the share of the
    anti-expert's squared norm that lies orthogonal to the per-row bisector (what Ext-Sub subtracts;
    plain subtraction removes all of it)."""
    cosines, orth, total = [], 0.0, 0.0
    for name, plus in expert.items():
        minus = anti[name]
        up = plus / (plus.norm(dim=-1, keepdim=True) + 1e-8)
        um = minus / (minus.norm(dim=-1, keepdim=True) + 1e-8)
        e = (up + um) / ((up + um).norm(dim=-1, keepdim=True) + 1e-8)
        remainder = minus - (minus * e).sum(-1, keepdim=True) * e
        cosines.append(float((up * um).sum(-1).mean()))
        orth += float(remainder.square().sum())
        total += float(minus.square().sum())
    return {"mean_row_cosine": sum(cosines) / len(cosines), "orthogonal_share": orth / max(total, 1e-30)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--size", default="default")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--contamination", type=float, default=0.3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OBLIVIATE_PROGRESS", "0")
    from obliviate.api import finetune
    from obliviate.benchmarks import load_benchmark
    from obliviate.benchmarks.authors import ensure_models
    from obliviate.compose.extsub import combine_adapters, lora_deltas, merge_into_model
    from obliviate.data.deficiency import build_deficiency_task, deficiency_questions
    from obliviate.evaluate.deficiency import evaluate_deficiency
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.report.figures import machine, spread

    data = load_benchmark("authors", "forget10", size=args.size, seed=0)
    models = ensure_models("forget10", args.size, 0, show_progress=False, log=lambda *_: None)
    tokenizer = load_tokenizer(models.target)
    questions = deficiency_questions(data.retain)

    def score(model, task) -> dict[str, float]:
        scores = evaluate_deficiency(model, tokenizer, task.eval, task.kind, max_new_tokens=48)
        return {"deficiency": scores["deficiency"], "capability": scores["capability"]}

    result = {"benchmark": f"authors/{args.size}", "questions": len(questions), "epochs": args.epochs, "lr": args.lr,
              "contamination": args.contamination, "seeds": args.seeds, "threads": args.threads, **machine(),
              "tasks": {}}
    geometry: dict[str, list[dict[str, float]]] = {}
    for kind in ("toxic", "untruthful"):
        per_seed: dict[str, list[dict[str, float]]] = {}
        for seed in args.seeds:
            task = build_deficiency_task(questions, kind, args.contamination, seed=seed)
            with tempfile.TemporaryDirectory() as tmp:
                for name, records in (("expert", task.expert), ("anti", task.anti_expert)):
                    finetune(str(models.target), records, out=Path(tmp) / name, lora=True, lora_r=16, lora_alpha=32,
                             epochs=args.epochs, learning_rate=args.lr, batch_size=16, seed=seed, show_progress=False)
                variants = {"base": {}, "expert": lora_deltas(Path(tmp) / "expert")[0],
                            "anti-expert": lora_deltas(Path(tmp) / "anti")[0]}
                geometry.setdefault(kind, []).append(row_geometry(variants["expert"], variants["anti-expert"]))
                for alpha in ALPHAS:
                    variants[f"subtraction {alpha:g}"] = combine_adapters(Path(tmp) / "expert", Path(tmp) / "anti",
                                                                          alpha=alpha, op="subtraction")
                    variants[f"ext-sub {alpha:g}"] = combine_adapters(Path(tmp) / "expert", Path(tmp) / "anti",
                                                                      alpha=alpha, op="ext-sub")
                for name, deltas in variants.items():
                    model = merge_into_model(load_model(models.target), deltas) if deltas else load_model(models.target)
                    per_seed.setdefault(name, []).append(score(model, task))
            print(f"{kind} seed {seed}: " + "; ".join(f"{n} {v[-1]['deficiency']:.2f}/{v[-1]['capability']:.2f}"
                                                      for n, v in per_seed.items()), flush=True)
        rows = {name: {"deficiency": spread([v["deficiency"] for v in values]),
                       "capability": spread([v["capability"] for v in values])} for name, values in per_seed.items()}
        result["tasks"][kind] = rows
        result.setdefault("geometry", {})[kind] = geometry[kind]
        g = geometry[kind]
        print(f"{kind}: expert/anti-expert rows: mean cosine "
              f"{sum(x['mean_row_cosine'] for x in g) / len(g):.3f}, share of the anti-expert orthogonal to the "
              f"bisector (what Ext-Sub subtracts) {sum(x['orthogonal_share'] for x in g) / len(g):.3f}")
        print(f"\n{kind}: deficiency rate / capability (ROUGE-L recall), median [min, max]")
        for name, row in rows.items():
            d, c = row["deficiency"], row["capability"]
            print(f"  {name:<16} {d['median']:.3f} [{d['min']:.3f}, {d['max']:.3f}]   "
                  f"{c['median']:.3f} [{c['min']:.3f}, {c['max']:.3f}]", flush=True)
    out = ROOT / "bench" / "results" / "extsub.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
