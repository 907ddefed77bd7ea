"""What every benchmark provides, and the registry that names them.

Benchmarks register themselves when imported; the ``obliviate.benchmarks`` package imports the
built-in ones after this module, so this module imports none of them (no import cycle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from obliviate.errors import ConfigError


@dataclass
class BenchmarkData:
    """Training data for unlearning and the splits the evaluator scores.

    ``eval_splits`` uses the roles ``forget``, ``retain``, ``real_authors``, ``world_facts``;
    ``holdout`` holds records no model was trained on. ``passages`` holds text records (``text``,
    ``prefix``, ``suffix``) under the roles ``forget``, ``retain`` and ``holdout`` for text metrics,
    whatever the task; it is empty for a benchmark without passages. ``max_new_tokens`` is the
    greedy generation budget its answers need (``EvalConfig.max_new_tokens`` overrides it).
    """

    name: str
    forget_split: str
    forget: list[dict]
    retain: list[dict]
    eval_splits: dict[str, list[dict]]
    holdout: list[dict] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    passages: dict[str, list[dict]] = field(default_factory=dict)
    max_new_tokens: int = 200


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    description: str
    forget_splits: tuple[str, ...]
    loader: Callable[..., BenchmarkData]


BENCHMARKS: dict[str, BenchmarkSpec] = {}


def register_benchmark(spec: BenchmarkSpec) -> BenchmarkSpec:
    BENCHMARKS[spec.name] = spec
    return spec


def load_benchmark(name: str, forget_split: str, **options) -> BenchmarkData:
    if name not in BENCHMARKS:
        raise ConfigError(f"benchmark {name!r} is unknown; available: {', '.join(sorted(BENCHMARKS))} "
                          "(see `obliviate benchmarks`)")
    spec = BENCHMARKS[name]
    if forget_split not in spec.forget_splits:
        raise ConfigError(f"forget split {forget_split!r} is not one of {name}'s: {', '.join(spec.forget_splits)}")
    return spec.loader(forget_split=forget_split, **options)
