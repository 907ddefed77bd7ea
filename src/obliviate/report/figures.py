"""Figures that carry their spread and their machine: benchmark scripts report the median and
range over seeds, and say which CPU produced them (the same recipe can move by orders of magnitude
between an Intel and an AMD machine)."""

from __future__ import annotations

import os
import platform
import statistics
from pathlib import Path
from typing import Sequence


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of a list of per-seed values."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


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
