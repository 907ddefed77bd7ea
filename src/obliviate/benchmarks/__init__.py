"""Benchmarks: where forget/retain data, evaluation splits and (for embedded ones) models come from."""

from obliviate.benchmarks.base import BENCHMARKS, BenchmarkData, load_benchmark
from obliviate.benchmarks import authors, tofu  # noqa: E402,F401  (registration, after base)

__all__ = ["BENCHMARKS", "BenchmarkData", "load_benchmark"]
