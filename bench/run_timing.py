"""Time `obliviate run` (the README's main job) with a cold and a warm model cache.

Cold: an empty cache, so the tokenizer, target and retain models are trained first.
Warm: the same cache again, so only unlearning, evaluation and the report run.
Prints the figures and the run's key metrics, and writes bench/results/run_timing.json.

    .venv/bin/python bench/run_timing.py [--size default] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_run(cache: Path, out: Path, size: str, threads: int | None) -> tuple[float, dict]:
    env = {**os.environ, "OBLIVIATE_CACHE": str(cache), "OBLIVIATE_PROGRESS": "0"}
    cmd = [str(Path(sys.executable).parent / "obliviate"), "run", "--out", str(out), "--set", f"benchmark.size={size}"]
    if threads:
        cmd += ["--set", f"threads={threads}"]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    return seconds, json.loads((out / "summary.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="default")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    from obliviate.report.figures import machine

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cold_s, cold = timed_run(cache, Path(tmp) / "cold", args.size, args.threads)
        warm_s, warm = timed_run(cache, Path(tmp) / "warm", args.size, args.threads)
    m = warm["metrics"]
    result = {
        "size": args.size, "threads": args.threads or "torch default", "cpu_count": os.cpu_count(),
        "machine": platform.machine(), **machine(), "seed": 0, "cold_s": round(cold_s, 1), "warm_s": round(warm_s, 1),
        "cold_stages_s": cold["timings"], "warm_stages_s": warm["timings"],
        # the robustness audit that ends the run (the first measures all three models; the second
        # reuses the target's and retain model's measurements from the model cache)
        "cold_audit_s": (cold.get("audit") or {}).get("timings", {}).get("total"),
        "warm_audit_s": (warm.get("audit") or {}).get("timings", {}).get("total"),
        "metrics": {role: {k: m[role].get(k) for k in ("forget_quality", "model_utility", "forget_Q_A_Prob",
                                                       "forget_Truth_Ratio", "mia_auc_min_k", "privleak",
                                                       "forget_passages_EL10")} for role in m},
    }
    print(f"obliviate run, size {args.size}: cold cache {cold_s:.1f} s, warm cache {warm_s:.1f} s "
          f"(audit {result['cold_audit_s']} s / {result['warm_audit_s']} s)")
    for role, row in result["metrics"].items():
        print(f"  {role:<10} " + "  ".join(f"{k}={v:.3g}" for k, v in row.items() if v is not None))
    out = ROOT / "bench" / "results" / "run_timing.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
