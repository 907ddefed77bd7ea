"""Recipes: one typed, validated description of a run, loaded from YAML with ``--set`` overrides.

Resolution order: the built-in defaults, then the method's preset (which fills the four axes),
then the recipe file, then ``--method`` (which replaces the axes with another method's preset),
then ``--set key=value`` overrides. The resolved recipe is written into every run folder.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from obliviate.audit.config import AuditConfig
from obliviate.data.authors import SIZES
from obliviate.data.templates import TEMPLATE_NAMES
from obliviate.errors import ConfigError
from obliviate.evaluate.tofu import EvalConfig
from obliviate.methods import get_method
from obliviate.models.loading import _DTYPES
from obliviate.registry import make_config
from obliviate.train.unlearn import TrainingConfig
from obliviate.validation import option

AXES = ("objective", "scope", "schedule", "composition")


def _benchmark_names() -> list[str]:
    from obliviate.benchmarks import BENCHMARKS  # registers the built-in benchmarks: imported on use

    return sorted(BENCHMARKS)


def _benchmark_tasks() -> tuple[str, ...]:
    from obliviate.benchmarks.authors import TASKS  # the embedded benchmark's; tofu has only "qa"

    return TASKS


@dataclass
class BenchmarkSection:
    """``forget_split`` depends on the benchmark; loading it checks the name against that
    benchmark's splits, before any model loads. ``size`` sizes the embedded benchmark only."""

    name: str = option("authors", choices=_benchmark_names, hint="see `obliviate benchmarks`")
    forget_split: str = "forget10"
    size: str = option("default", choices=tuple(SIZES))
    source: str | None = None
    task: str = option("qa", choices=_benchmark_tasks)  # "qa" (forget QA records) or "passages" (biographies)


@dataclass
class ModelSection:
    """``target``/``retain``: a folder or hub id; null on the embedded benchmark (trained here).
    ``template``: the prompt template the model was fine-tuned with (``auto``, ``plain``,
    ``tofu-phi``, ``tofu-llama2``, ``chat``, ``open-unlearning``; see
    :mod:`obliviate.data.templates`)."""

    target: str | None = None
    retain: str | None = None
    dtype: str = option("float32", choices=tuple(_DTYPES))
    trust_remote_code: bool = False
    template: str = option("auto", choices=TEMPLATE_NAMES)


@dataclass
class Recipe:
    method: str = "npo"
    seed: int = 0
    threads: int | None = None
    out: str | None = None
    benchmark: BenchmarkSection = field(default_factory=BenchmarkSection)
    model: ModelSection = field(default_factory=ModelSection)
    objective: dict[str, Any] = field(default_factory=dict)
    scope: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)
    composition: dict[str, Any] = field(default_factory=dict)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


@dataclass
class _Scalars:
    seed: int = option(0, ge=0, lt=2**32, hint="numpy's seeds are 32-bit")
    threads: int | None = option(None, ge=1, hint="null: torch's default")


_SECTIONS = {"benchmark": BenchmarkSection, "model": ModelSection, "training": TrainingConfig, "eval": EvalConfig,
             "audit": AuditConfig}
_SCALARS = {"method", "seed", "threads", "out"}


def default_recipe_path() -> Path:
    return Path(str(resources.files("obliviate").joinpath("resources/default.yaml")))


def benchmark_picks(method: str) -> list[str]:
    """The leaderboard's training values for ``method`` on the embedded benchmark, as ``--set``
    overrides (``resources/picks.yaml``; empty for a method the leaderboard has no row for)."""
    picks = yaml.safe_load(resources.files("obliviate").joinpath("resources/picks.yaml").read_text()) or {}
    return [str(p) for p in picks.get(method) or []]


def read_yaml(path: str | Path) -> dict[str, Any]:
    from obliviate.data.loaders import read_utf8_text

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such recipe file")
    try:
        data = yaml.safe_load(read_utf8_text(path, error=ConfigError)) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. training.learning_rate=1e-4")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _valid_keys(data: Mapping[str, Any]) -> list[str]:
    keys = sorted(_SCALARS)
    for name, cls in _SECTIONS.items():
        keys += [f"{name}.{f.name}" for f in dataclasses.fields(cls)]
    keys += [f"{axis}.<option>" for axis in AXES]
    return keys


def apply_override(data: dict[str, Any], text: str) -> None:
    path, value = parse_override(text)
    top = path[0]
    if top in _SCALARS and len(path) == 1:
        data[top] = value
        return
    if top in AXES and len(path) == 1:  # `scope=lora` chooses another component
        data[top] = {"name": value}
        return
    if len(path) == 2 and (top in AXES or top in _SECTIONS):
        if top in _SECTIONS and path[1] not in {f.name for f in dataclasses.fields(_SECTIONS[top])}:
            fields = ", ".join(f.name for f in dataclasses.fields(_SECTIONS[top]))
            raise ConfigError(f"--set {text}: unknown key {'.'.join(path)!r}; {top} has: {fields}")
        section = data.setdefault(top, {})
        if not isinstance(section, dict):
            section = data[top] = {"name": section}
        section[path[1]] = value
        return
    raise ConfigError(f"--set {text}: unknown key {'.'.join(path)!r}; valid keys: "
                      f"{', '.join(_valid_keys(data))}")


def _normalise_axis(value: Any, axis: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict):
        return dict(value)
    raise ConfigError(f"recipe: {axis} must be a name or a mapping, got {type(value).__name__}")


def resolve_recipe(data: Mapping[str, Any] | None = None, *, method: str | None = None,
                   overrides: Sequence[str] = (), forget_split: str | None = None,
                   out: str | None = None) -> Recipe:
    """Merge defaults, method preset, recipe data and overrides into a validated :class:`Recipe`."""
    data = copy.deepcopy(dict(data or {}))
    unknown = [k for k in data if k not in _SCALARS and k not in _SECTIONS and k not in AXES]
    if unknown:
        raise ConfigError(f"recipe: unknown section {unknown[0]!r}; valid: "
                          f"{', '.join(sorted(_SCALARS | set(_SECTIONS) | set(AXES)))}")
    if method is not None:
        data["method"] = method
        for axis in AXES:  # the file's axes belonged to its own method
            data.pop(axis, None)
    for axis in AXES:
        data[axis] = _normalise_axis(data.get(axis), axis)
    if forget_split:
        data.setdefault("benchmark", {})["forget_split"] = forget_split
    if out is not None:  # "" stays, so that the output check refuses it
        data["out"] = out
    for text in overrides:
        apply_override(data, text)

    preset = get_method(str(data.get("method") or "npo")).sections()
    axes = {}
    for axis in AXES:
        given = data[axis]
        if given.get("name") and given["name"] != preset[axis].get("name"):
            axes[axis] = given  # the recipe chose another component for this axis
        else:
            axes[axis] = {**preset[axis], **given}
    sections = {}
    for name, cls in _SECTIONS.items():
        value = data.get(name) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"recipe: {name} must be a mapping, got {type(value).__name__}")
        sections[name] = make_config(cls, value, where=f"recipe section {name!r}")
    scalars = make_config(_Scalars, {k: data[k] for k in ("seed", "threads") if data.get(k) is not None},
                          where="recipe")
    recipe = Recipe(method=str(data.get("method") or "npo"), seed=scalars.seed, threads=scalars.threads,
                    out=data.get("out"), **sections, **axes)
    validate_components(recipe)
    return recipe


def validate_components(recipe: Recipe) -> None:
    """Build every axis once so that a typo fails before any model is loaded."""
    from obliviate.compose import COMPOSITIONS
    from obliviate.objectives import OBJECTIVES
    from obliviate.schedules import SCHEDULES
    from obliviate.scopes import SCOPES

    for registry, section in ((OBJECTIVES, recipe.objective), (SCOPES, recipe.scope),
                              (SCHEDULES, recipe.schedule), (COMPOSITIONS, recipe.composition)):
        registry.build(section)


def load_recipe(path: str | Path | None = None, **kwargs: Any) -> Recipe:
    """Load a recipe file (default: the embedded default recipe) and resolve it. On the embedded
    recipe, a ``method`` starts from its leaderboard pick (:func:`benchmark_picks`): the values the
    embedded default recipe's training section holds are tuned for its own method."""
    if path is None and kwargs.get("method"):
        kwargs["overrides"] = [*benchmark_picks(kwargs["method"]), *kwargs.get("overrides", ())]
    return resolve_recipe(read_yaml(path or default_recipe_path()), **kwargs)
