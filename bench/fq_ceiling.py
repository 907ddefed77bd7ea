"""The forget quality that retraining from scratch reaches on the embedded benchmark (docs/leaderboard.md).

Forget quality compares an unlearned model's forget truth ratios with those of *one* retain model
(KS p-value). A second retain model, trained on exactly the same records with another
initialisation and data-order seed, is what exact unlearning (retraining without the forget set)
gives: its forget quality against the cached retain model is the most any unlearning method can
be expected to reach on an instance, and its spread over instances is the metric's own noise.
Also printed: the same KS p between the two retain models on the holdout authors (never trained by
either), and the Spearman correlation of their per-question truth ratios on the forget set.

    .venv/bin/python bench/fq_ceiling.py [--seeds 0 1 2 3 4] [--retrain-seeds 1000] [--split forget10]
    .venv/bin/python bench/fq_ceiling.py --retrain-seeds 1000 1001 1002    # fq_ceiling.json (~25 min)
    .venv/bin/python bench/fq_ceiling.py --report-only \
        --compare bench/results/stop_trace_done_when.json+bench/results/stop_trace_fresh.json \
        bench/results/leaderboard_amd.json:default

``--compare`` sets a method's forget qualities against the retrains (one-sided Mann-Whitney: is the
method lower?): a ``bench/stop_trace.py`` results file gives its stops, ``FILE:METHOD`` of a
``bench/leaderboard.py`` results file that row's test runs on the split; ``+`` pools files.
``--report-only`` reads the retrains from ``--out`` instead of scoring them again.

Writes bench/results/fq_ceiling.json (or --out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_seed(seed: int, retrain_seed: int, split: str) -> dict:
    import numpy as np
    import torch
    from scipy import stats

    from obliviate import metrics
    from obliviate.benchmarks import load_benchmark
    from obliviate.benchmarks.authors import ensure_models
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.schedules.unseen import RecordScorer

    torch.set_num_threads(1)
    models = ensure_models(split, "default", seed, show_progress=False, log=lambda *_: None)
    again = ensure_models(split, "default", seed, retain_seed=retrain_seed, show_progress=False, log=lambda *_: None)
    data = load_benchmark("authors", split, size="default", seed=seed)
    tokenizer = load_tokenizer(models.retain)
    retrained = load_model(again.retain)
    cached = load_model(models.retain)
    forget = RecordScorer(tokenizer, data.forget, "truth_ratio", max_length=512)
    holdout = RecordScorer(tokenizer, data.holdout, "truth_ratio", max_length=512)
    f_cached, f_new = forget(cached), forget(retrained)
    h_cached, h_new = holdout(cached), holdout(retrained)
    row = {"seed": seed, "retrain_seed": retrain_seed, "split": split,
           "forget_quality": metrics.forget_quality(f_new, f_cached),
           "holdout_ks_p": float(stats.ks_2samp(h_new, h_cached).pvalue),
           "forget_spearman": float(stats.spearmanr(f_new, f_cached).correlation),
           "median_log_tr": {"cached": float(np.median(np.log(f_cached))),
                             "retrained": float(np.median(np.log(f_new)))},
           "train_seconds": again.built.get("retain")}  # None: it was cached
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--retrain-seeds", type=int, nargs="+", default=[1000])
    parser.add_argument("--split", default="forget10")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fq_ceiling.json")
    parser.add_argument("--compare", nargs="+", default=[], metavar="FILE[:METHOD][+FILE...]")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    from obliviate.report.figures import machine, spread

    if args.report_only:
        saved = json.loads(args.out.read_text())
        rows, context = saved["rows"], {k: v for k, v in saved.items() if k not in ("rows", "summary", "compare")}
    else:
        rows = [one_seed(s, r, args.split) for s in args.seeds for r in args.retrain_seeds]
        context = {**machine(), "seeds": args.seeds, "retrain_seeds": args.retrain_seeds, "split": args.split}
    fq = [r["forget_quality"] for r in rows]
    summary = {**spread(fq), "share_at_least_0.5": sum(v >= 0.5 for v in fq) / len(fq)}
    print(f"retraining from scratch: forget quality median {summary['median']:.3g} "
          f"[{summary['min']:.3g}, {summary['max']:.3g}] over {len(fq)} retrains", flush=True)
    compare = {spec: against_retraining(spec, fq, context["split"]) for spec in args.compare}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**context, "rows": rows, "summary": summary, "compare": compare},
                                   indent=1) + "\n")


def method_qualities(spec: str, split: str) -> list[float]:
    """Forget qualities named by ``FILE`` (a stop_trace result: its stops) or ``FILE:METHOD`` (a
    leaderboard result: that row's test runs on ``split``); ``+`` joins several."""
    values: list[float] = []
    for part in spec.split("+"):
        path, _, method = part.partition(":")
        data = json.loads(Path(path).read_text())
        if method:
            values += [r["forget_quality"] for r in data["board"][method]["test"][split]["runs"]]
        else:
            values += [r["stop_forget_quality"] for r in data["seeds"]]
    return values


def against_retraining(spec: str, retrains: list[float], split: str) -> dict:
    from scipy import stats

    from obliviate.report.figures import spread

    values = method_qualities(spec, split)
    p = float(stats.mannwhitneyu(values, retrains, alternative="less").pvalue)
    print(f"{spec}: forget quality median {spread(values)['median']:.3g} over {len(values)} runs; "
          f"lower than retraining: one-sided Mann-Whitney p {p:.2g}", flush=True)
    return {"values": values, **spread(values), "mann_whitney_less_p": p}


if __name__ == "__main__":
    main()
