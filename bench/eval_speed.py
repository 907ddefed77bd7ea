"""Seconds to evaluate one model, split into scoring, generation and membership inference.

Two workloads:

* **embedded**: the `authors` benchmark (default size, forget10) on its target model, exactly what
  `obliviate run` evaluates three times;
* **tofu-sized**: TOFU's split sizes (forget10 400 QA, retain 400, real authors 100, world facts
  117, holdout 400 for membership inference) with TOFU-like token lengths (question+answer ~140
  tokens on average, at most ~320), 5 perturbed answers per forget/retain item and 3 per real /
  world item, 200 new tokens, on a random 26 M-parameter Llama (hidden 512, 8 layers). Nothing is
  downloaded: the records are random words with those lengths. A random model never emits EOS, so
  every answer runs the whole 200-token budget: the worst case for generation.

Evaluation scores every answer of a split (answer, paraphrase, perturbed answers) in one batched
forward pass sorted by length and generates with a KV cache, also sorted by prompt length; rows
stop at EOS. `--scale` shrinks the TOFU-sized splits (e.g. 0.25 for a quick look).

    .venv/bin/python bench/eval_speed.py [--scale 1.0] [--threads N] [--skip-embedded]

Writes bench/results/eval_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TOFU_SIZES = {"forget": 400, "retain": 400, "real_authors": 100, "world_facts": 117, "holdout": 400}
PERTURBED = {"forget": 5, "retain": 5, "real_authors": 3, "world_facts": 3, "holdout": 5}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def words(rng: random.Random, vocabulary: list[str], n: int) -> str:
    return " ".join(rng.choice(vocabulary) for _ in range(max(1, n)))


def tofu_like_records(split: str, n: int, rng: random.Random, vocabulary: list[str]) -> list[dict]:
    """Questions of ~20 words and answers of ~lognormal(3.6, 0.45) words (median ~37, clipped at
    180): with a word-level vocabulary of plain words that is TOFU's spread of QA lengths."""
    out = []
    for _ in range(n):
        q_len = int(min(60, rng.lognormvariate(2.9, 0.3)))
        a_len = int(min(180, rng.lognormvariate(3.6, 0.45)))
        answer = words(rng, vocabulary, a_len)
        out.append({"question": words(rng, vocabulary, q_len) + "?", "answer": answer,
                    "paraphrased_answer": words(rng, vocabulary, a_len),
                    "perturbed_answer": [words(rng, vocabulary, a_len) for _ in range(PERTURBED[split])]})
    return out


def tofu_sized(scale: float, seed: int = 0):
    """A random Llama, its tokenizer and the TOFU-sized splits."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from obliviate.models.tiny import train_tokenizer

    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(7000)]
    splits = {name: tofu_like_records(name, max(4, int(n * scale)), rng, vocabulary)
              for name, n in TOFU_SIZES.items()}
    corpus = [" ".join(vocabulary[i:i + 50]) for i in range(0, len(vocabulary), 50)]
    corpus += [f"{r['question']} {r['answer']}" for r in splits["forget"][:50]]
    tokenizer = train_tokenizer(corpus, vocab_size=8000)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=512, num_hidden_layers=8, num_attention_heads=8,
                         intermediate_size=1376, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config).eval(), tokenizer, splits


def timed(model, tokenizer, splits, config, passages=None) -> dict:
    from obliviate.evaluate.tofu import evaluate_model

    started = time.perf_counter()
    result = evaluate_model(model, tokenizer, splits, config=config, passages=passages, show_progress=False)
    timings = dict(result.summary["timings"])
    timings["wall_s"] = round(time.perf_counter() - started, 2)
    timings["items"] = {name: len(records) for name, records in splits.items()}
    timings["per_split"] = {name: r.timings for name, r in result.splits.items() if r.timings}
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of TOFU's split sizes (default 1)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "eval_speed.json"))
    args = parser.parse_args()

    import torch

    from obliviate.evaluate.tofu import EvalConfig
    from obliviate.models.loading import load_model, load_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    results = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "python": platform.python_version(),
               "torch": torch.__version__, "scale": args.scale}
    if not args.skip_embedded:
        from obliviate.benchmarks import load_benchmark
        from obliviate.benchmarks.authors import ensure_models

        data = load_benchmark("authors", "forget10", size="default", seed=0)
        models = ensure_models("forget10", "default", 0, show_progress=False, log=lambda *_: None)
        splits = {**data.eval_splits, "holdout": data.holdout}
        config = EvalConfig(max_new_tokens=data.max_new_tokens, batch_size=args.batch_size)
        results["embedded"] = timed(load_model(models.target), load_tokenizer(models.target), splits, config,
                                    passages=data.passages)
        print_row("embedded (authors, default size)", results["embedded"])
    model, tokenizer, splits = tofu_sized(args.scale)
    config = EvalConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, passages=False)
    results["tofu_sized"] = timed(model, tokenizer, splits, config)
    results["tofu_sized"]["parameters"] = sum(p.numel() for p in model.parameters())
    print_row(f"TOFU-sized x{args.scale:g} (random 26 M Llama, {args.max_new_tokens} new tokens)",
              results["tofu_sized"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"machine: {results['cpu']}, {results['threads']} threads; written to {args.out}")


def print_row(name: str, t: dict) -> None:
    n = sum(t["items"].values())
    print(f"{name}: {t['wall_s']:.1f} s for {n} items  (scoring {t['scoring_s']:.1f} s, generation "
          f"{t['generation_s']:.1f} s, membership inference {t['mia_s']:.1f} s)")


if __name__ == "__main__":
    main()
