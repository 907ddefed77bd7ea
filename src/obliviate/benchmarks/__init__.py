"""Benchmarks: where forget/retain data, evaluation splits and (for embedded ones) models come from."""

from obliviate.benchmarks.base import BENCHMARKS, BenchmarkData, load_benchmark

__all__ = ["BENCHMARKS", "BenchmarkData", "load_benchmark"]
