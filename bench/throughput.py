"""Training throughput of the unlearning objectives on a random Llama (CPU, fp32): 25 M parameters
outside the embeddings (33.6 M with the untied input embedding and lm_head).

Per objective, thread count and `training.group_by_length` off/on, one short `unlearn_model` run in
a fresh process: steps/s, real (non-pad) tokens/s over all groups, the padding fraction (pad
tokens / all tokens the timed forward passes saw; `epoch`: the same over every batch of the first
epoch, as the loader batches and the collator pads it), peak RSS (ru_maxrss of that process), and
the useful-token FLOP efficiency = useful FLOP/s / this machine's fp32 matmul peak at that thread
count (best of several 2048³ `torch.mm`, 2·n³ FLOPs each, measured in the same run, before and
after the runs, the better kept). `cpu %`: the run's CPU time / (threads × wall time) over the
timed steps; well under 100 % means another job took the cores and the row is not trustworthy.

Useful FLOPs count real tokens only. Per real token of a trained forward: 4·N + 2·N_trained (N:
parameters of the matmuls, lm_head included, the input embedding and norms not; N_trained: those
trained, so 6·N for full fine-tuning). Per trained sequence of real length L, attention adds
6·2·n_layers·L²·hidden (QKᵀ and AV, 2·L²·hidden each forward, ×3 with the backward); causal
masking is not discounted. A no-grad forward inside a step (the KL term's frozen copy) counts
2·N per token and 2·2·n_layers·L²·hidden. Only steps after the first are timed, so NPO's and
IdkDPO's reference log-probs (computed before training) and first-step allocations are left out.

Lengths are TOFU-like without hub data: question+answer token counts are drawn from a lognormal
with mu = ln 140 − 0.3²/2 (mean 140), sigma 0.3, clipped to [16, 323] (TOFU: mean ≈ 140, max
≈ 323), 30 % question; random words under a word-level tokenizer (one word, one token). 400
forget and 3600 retain records: TOFU forget10's sizes, so length grouping works on as many items
as it would there. Also printed: the FLOP/s of the step's own matrix products alone
(:func:`shape_ceiling`), the most a step's efficiency can reach on this machine.

    .venv/bin/python bench/throughput.py [--threads 1,2] [--objectives ga,graddiff,...] [--steps 3] [--quick]

Three timed steps by default: the 20 runs of the default matrix then take about 18 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import random
import resource
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MU, SIGMA, MIN_LEN, MAX_LEN = math.log(140) - 0.3 ** 2 / 2, 0.3, 16, 323
TEMPLATE_TOKENS = 5  # "Question", ":", "Answer", ":" and EOS around the words
FULL = {"hidden_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8, "intermediate_size": 1376,
        "vocab_size": 8000}
QUICK = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 172,
         "vocab_size": 2000}


def tokenizer_and_records(vocab_size: int, n_forget: int, n_retain: int, seed: int = 0):
    """A word-level tokenizer over random words, and QA records of TOFU-like token counts."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(seed)
    specials = ["<pad>", "</s>", "<unk>", "Question", "Answer", ":"]
    words: set[str] = set()
    while len(words) < vocab_size - len(specials):
        words.add("".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))))
    words_list = sorted(words)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(specials + words_list)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>", model_max_length=512)

    def record() -> dict:
        total = min(MAX_LEN, max(MIN_LEN, round(rng.lognormvariate(MU, SIGMA)))) - TEMPLATE_TOKENS
        n_question = max(3, round(0.3 * total))
        return {"question": " ".join(rng.choices(words_list, k=n_question)),
                "answer": " ".join(rng.choices(words_list, k=total - n_question))}

    return tokenizer, [record() for _ in range(n_forget)], [record() for _ in range(n_retain)]


def build_model(tokenizer, sizes: dict):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**{**sizes, "vocab_size": len(tokenizer)}, max_position_embeddings=512,
                         tie_word_embeddings=False, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    return LlamaForCausalLM(config)


def matmul_peak(threads: int, n: int = 2048, repeats: int = 8) -> float:
    """Best fp32 FLOP/s of one n×n `torch.mm` at ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * n ** 3 / best


def shape_ceiling(threads: int, sizes: dict, rows: int, repeats: int = 5) -> float:
    """FLOP/s of the training step's own matrix products at ``threads`` threads: for each linear
    layer of one decoder layer and the lm_head, with ``rows`` token rows (a batch's tokens), the
    forward product X·W, the input gradient dY·Wᵀ and the weight gradient Xᵀ·dY, best of
    ``repeats``. Their FLOPs over their time is the most a step can reach on matmuls alone, so the
    efficiency of a step cannot exceed it ÷ the 2048³ peak."""
    import torch

    torch.set_num_threads(threads)
    h, i, v = sizes["hidden_size"], sizes["intermediate_size"], sizes["vocab_size"]
    shapes = [(h, h)] * 4 + [(h, i), (h, i), (i, h)]  # q, k, v, o; gate, up, down
    total_flops, total_s = 0.0, 0.0
    for k, n in shapes + [(h, v)]:
        layers = sizes["num_hidden_layers"] if (k, n) != (h, v) else 1
        x, w, dy = torch.randn(rows, k), torch.randn(k, n), torch.randn(rows, n)
        products = [lambda: x @ w, lambda: dy @ w.T, lambda: x.T @ dy]
        for product in products:
            product()
            best = math.inf
            for _ in range(repeats):
                started = time.perf_counter()
                product()
                best = min(best, time.perf_counter() - started)
            total_flops += layers * 2 * rows * k * n
            total_s += layers * best
    return total_flops / total_s


def run_config(payload: dict) -> dict:
    """One short unlearning run in this (fresh) process; throughput figures and peak RSS."""
    import torch
    from transformers import TrainerCallback

    torch.set_num_threads(payload["threads"])
    from obliviate.api import _build_axes
    from obliviate.recipe import resolve_recipe
    from obliviate.train.unlearn import unlearn_model

    tokenizer, forget, retain = tokenizer_and_records(payload["sizes"]["vocab_size"], *payload["records"])
    model = build_model(tokenizer, payload["sizes"])
    recipe = resolve_recipe({}, method=payload["objective"], overrides=[
        "training.batch_size=8", f"training.group_by_length={str(payload['grouped']).lower()}",
        f"schedule.max_steps={payload['steps'] + 1}", "training.logging_steps=1000"])
    objective, scope, schedule, _ = _build_axes(recipe)
    ends: list[float] = []
    cpu: list[float] = []  # process CPU time at each step end: below threads × wall means contention
    seen = {"real": 0, "all": 0, "flops": 0.0}
    cfg = model.config
    n_layers, hidden = cfg.num_hidden_layers, cfg.hidden_size

    def count(module, args, kwargs):
        if not ends:  # before the first step ends: reference log-probs and the warm-up step
            return
        ids, mask = kwargs["input_ids"], kwargs.get("attention_mask")
        lengths = mask.sum(-1) if mask is not None else torch.full((ids.shape[0],), ids.shape[1])
        trained = torch.is_grad_enabled()
        matmul = sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))
        matmul_trained = sum(m.weight.numel() for m in module.modules()
                             if isinstance(m, torch.nn.Linear) and m.weight.requires_grad)
        per_token = 4 * matmul + 2 * matmul_trained if trained else 2 * matmul
        attention = (6 if trained else 2) * 2 * n_layers * hidden * float((lengths.double() ** 2).sum())
        seen["flops"] += per_token * int(lengths.sum()) + attention
        if trained:  # padding and token rate are about the passes that train
            seen["real"] += int(lengths.sum())
            seen["all"] += ids.numel()

    epoch_tokens = {"real": 0, "all": 0}

    class StepTimer(TrainerCallback):
        def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
            # the padding of a whole epoch as the loader batches it (the timed steps are a sample):
            # the first epoch's batches of item keys, collated as training collates them
            for keys in train_dataloader.batch_sampler:
                batch = train_dataloader.collate_fn([train_dataloader.dataset[k] for k in keys])
                for group in batch.values():
                    if isinstance(group, dict) and "attention_mask" in group:
                        epoch_tokens["real"] += int(group["attention_mask"].sum())
                        epoch_tokens["all"] += group["attention_mask"].numel()

        def on_step_end(self, args, state, control, **kwargs):
            ends.append(time.perf_counter())
            cpu.append(time.process_time())

    # unlearn_model attaches the schedule's callbacks; adding ours there times the steps without
    # reimplementing any of the training it does.
    own_callbacks = schedule.callbacks
    schedule.callbacks = lambda: [*own_callbacks(), StepTimer()]
    hook = model.register_forward_pre_hook(count, with_kwargs=True)
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    unlearn_model(model, tokenizer, forget, retain, objective=objective, scope=scope, schedule=schedule,
                  training=recipe.training, seed=0, show_progress=False)
    hook.remove()
    seconds, steps = ends[-1] - ends[0], len(ends) - 1
    return {"objective": payload["objective"], "threads": payload["threads"], "group_by_length": payload["grouped"],
            "timed_steps": steps, "seconds": round(seconds, 3), "steps_per_s": steps / seconds,
            "cpu_busy": (cpu[-1] - cpu[0]) / (seconds * payload["threads"]),
            "tokens_per_s": seen["real"] / seconds, "padding_fraction": 1 - seen["real"] / max(seen["all"], 1),
            "epoch_padding_fraction": 1 - epoch_tokens["real"] / max(epoch_tokens["all"], 1),
            "useful_flops_per_s": seen["flops"] / seconds, "peak_rss_mb": resource.getrusage(
                resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_before_training_mb": rss_model}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--objectives", default="ga,graddiff,npo,simnpo,idkdpo",
                        help="methods (kl also works; eul's alternating schedule ignores schedule.max_steps)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps, after one warm-up step")
    parser.add_argument("--quick", action="store_true", help="tiny model, 16/32 records, 2 steps (development)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "throughput.json"))
    args = parser.parse_args()
    os.environ.setdefault("OBLIVIATE_PROGRESS", "0")
    import torch
    import transformers

    from obliviate.report.figures import machine
    from obliviate.train.data import encode_record

    sizes, records = (QUICK, (16, 32)) if args.quick else (FULL, (400, 3600))
    steps = 2 if args.quick else args.steps
    threads = [int(t) for t in args.threads.split(",")]
    objectives = args.objectives.split(",")
    if "eul" in objectives:
        parser.error("eul: its alternating schedule runs whole cycles (schedule.max_steps does not bound it)")
    started = time.perf_counter()
    tokenizer, forget, retain = tokenizer_and_records(sizes["vocab_size"], *records)
    lengths = [len(encode_record(tokenizer, r, max_length=512)["input_ids"]) for r in forget + retain]
    model = build_model(tokenizer, sizes)
    n_params = sum(p.numel() for p in model.parameters())
    n_matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    del model

    # The peak is measured before and after the runs and the better kept, so that a moment of
    # contention (another job on the cores) does not flatter the efficiency figures.
    peaks_before = {t: matmul_peak(t) for t in threads}
    peaks = dict(peaks_before)  # the better of before and after, once both are measured
    rows = []
    print(f"{'objective':<9} {'thr':>3} {'grouped':>7} {'steps/s':>8} {'tok/s':>7} {'pad %':>6} {'epoch':>6} "
          f"{'RSS MB':>7} {'FLOP/s':>8} {'eff %':>6} {'cpu %':>6}", flush=True)
    for t in threads:
        print(f"-- {t} thread(s): fp32 matmul peak {peaks[t] / 1e9:.1f} GFLOP/s (before the runs)", flush=True)
        for name in objectives:
            for grouped in (False, True):
                payload = {"objective": name, "threads": t, "grouped": grouped, "steps": steps,
                           "sizes": sizes, "records": records}
                # a fresh process per run, so that ru_maxrss is that run's own peak
                with multiprocessing.get_context("spawn").Pool(1) as pool:
                    row = pool.apply(run_config, (payload,))
                rows.append(row)
                print(f"{name:<9} {t:>3} {'on' if grouped else 'off':>7} {row['steps_per_s']:>8.3f} "
                      f"{row['tokens_per_s']:>7.0f} {100 * row['padding_fraction']:>6.1f} "
                      f"{100 * row['epoch_padding_fraction']:>6.1f} "
                      f"{row['peak_rss_mb']:>7.0f} {row['useful_flops_per_s'] / 1e9:>7.1f}G "
                      f"{100 * row['useful_flops_per_s'] / peaks[t]:>6.1f} {100 * row['cpu_busy']:>6.0f}", flush=True)
    # 16 rows of ~140 tokens: one GradDiff batch (8 forget + 8 retain) at the mean length
    rows_per_batch = 16 * round(sum(lengths) / len(lengths))
    ceilings = {t: shape_ceiling(t, sizes, rows_per_batch) for t in threads}
    peaks_after = {t: matmul_peak(t) for t in threads}
    for t in threads:
        print(f"-- {t} thread(s): fp32 matmul peak {peaks_after[t] / 1e9:.1f} GFLOP/s after the runs; "
              f"efficiency against the better of the two", flush=True)
        peaks[t] = max(peaks[t], peaks_after[t])
        print(f"-- {t} thread(s): the step's own matrix products ({rows_per_batch} rows) alone reach "
              f"{ceilings[t] / 1e9:.1f} GFLOP/s = {100 * ceilings[t] / peaks[t]:.0f} % of the peak: the most a "
              "step's efficiency can be", flush=True)
    for row in rows:
        row["flop_efficiency"] = row["useful_flops_per_s"] / peaks[row["threads"]]

    def find(objective, t, grouped):
        return next((r for r in rows
                     if (r["objective"], r["threads"], r["group_by_length"]) == (objective, t, grouped)), None)

    targets = {}
    for grouped in (False, True):
        key = "on" if grouped else "off"
        gd = find("graddiff", 2, grouped)
        if gd:
            targets[f"graddiff_2_threads_flop_efficiency_grouping_{key}"] = {
                "value": gd["flop_efficiency"], "target": ">= 0.85", "met": gd["flop_efficiency"] >= 0.85}
        for t in threads:
            npo, ga = find("npo", t, grouped), find("ga", t, grouped)
            if npo and ga:
                ratio = npo["peak_rss_mb"] / ga["peak_rss_mb"]
                targets[f"npo_over_ga_peak_rss_{t}_threads_grouping_{key}"] = {
                    "value": ratio, "target": "<= 1.15", "met": ratio <= 1.15}
            gd = find("graddiff", t, grouped)
            if npo and gd:  # not a target: NPO against the objective with the same two groups
                print(f"  (npo / graddiff peak RSS, {t} thread(s), grouping {key}: "
                      f"{npo['peak_rss_mb'] / gd['peak_rss_mb']:.3f})")
    print("targets (issue 'Scale and speed'):")
    for name, t in targets.items():
        print(f"  {name}: {t['value']:.3f} (target {t['target']}) -> {'met' if t['met'] else 'NOT met'}")

    result = {"model": {**sizes, "parameters": n_params, "matmul_parameters": n_matmul, "dtype": "float32",
                        "init": "random"},
              "quick": args.quick, "timed_steps": steps, "warmup_steps": 1, "batch_size": 8,
              "records": {"forget": records[0], "retain": records[1]},
              "lengths": {"distribution": f"lognormal(mu={MU:.4f}, sigma={SIGMA}) clipped to [{MIN_LEN}, {MAX_LEN}]",
                          "mean": sum(lengths) / len(lengths), "max": max(lengths), "min": min(lengths)},
              "matmul_peak_flops": {str(t): p for t, p in peaks.items()},
              "matmul_peak_flops_before_runs": {str(t): p for t, p in peaks_before.items()},
              "matmul_peak_flops_after_runs": {str(t): p for t, p in peaks_after.items()},
              "step_matmul_shapes": {"rows": rows_per_batch,
                                     "flops": {str(t): c for t, c in ceilings.items()},
                                     "fraction_of_peak": {str(t): ceilings[t] / peaks[t] for t in threads}},
              **machine(), "torch": torch.__version__, "transformers": transformers.__version__,
              "platform": platform.platform(), "rows": rows, "targets": targets,
              "wall_s": round(time.perf_counter() - started, 1)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
