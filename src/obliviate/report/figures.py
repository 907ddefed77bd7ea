"""Figures that carry their spread and their machine: benchmark scripts report the median and
range over seeds, and say which CPU produced them (the same recipe can move by orders of magnitude
between an Intel and an AMD machine)."""

from __future__ import annotations

import math
import os
import platform
import statistics
from pathlib import Path
from typing import Any, Mapping, Sequence


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of a list of per-seed values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


def seed_spread(per_seed: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each metric's median, min, max and per-seed ``values`` over runs that differ only in their
    seed (one metrics dict per seed, in seed order). Values that are not numbers (None, NaN) are
    kept in ``values`` and left out of the statistics; a metric with no number at all is skipped.
    With an even number of seeds the median is the mean of the two middle values."""
    keys = list(dict.fromkeys(k for metrics in per_seed for k in metrics))
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        values = [metrics.get(key) for metrics in per_seed]
        numbers = [v for v in values if _number(v)]
        if numbers:
            out[key] = {**spread(numbers), "values": values}
    return out


def machine() -> dict[str, object]:
    """The CPU model and core count, for a results file."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": name, "cpu_count": os.cpu_count(), "python": platform.python_version()}


def plot_recovery(audit: Mapping[str, Any], path: Path) -> Path | None:
    """Recovery per attack: the unlearned model's bar beside the retain model's (the honest floor)."""
    attacks = {k: v for k, v in (audit.get("attacks") or {}).items() if _number(v.get("recovery"))}
    if not attacks:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(attacks)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(names) + 2), 3.8), dpi=120)
    xs = range(len(names))
    unlearned = [attacks[n]["recovery"] for n in names]
    retain = [attacks[n].get("retain_recovery") if _number(attacks[n].get("retain_recovery")) else 0.0
              for n in names]
    ax.bar([x - 0.2 for x in xs], unlearned, width=0.4, label="unlearned", color="C3")
    ax.bar([x + 0.2 for x in xs], retain, width=0.4, label="retain (floor)", color="C0")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axhline(1, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("recovery (share of gap to target closed)")
    ax.set_title("Robustness audit: share of the forgotten knowledge recovered")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    return save_figure(fig, path)


def save_figure(fig: Any, path: Path) -> Path:
    """Write a matplotlib figure under a temporary name, then rename it (no half-written PNG)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
