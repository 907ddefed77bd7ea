"""Name → component registries with typed configs, shared by objectives, scopes, schedules and
compositions, so that every axis of a recipe is resolved and validated the same way."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Generic, Mapping, TypeVar

from obliviate.errors import ConfigError
from obliviate.validation import validate

T = TypeVar("T")


class Registry(Generic[T]):
    """Components of one axis. Each has a config dataclass and a one-line description."""

    def __init__(self, axis: str):
        self.axis = axis
        self._entries: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def decorator(cls: type[T]) -> type[T]:
            if name in self._entries:
                raise ValueError(f"{self.axis} {name!r} is registered twice")
            cls.name = name  # type: ignore[attr-defined]
            self._entries[name] = cls
            return cls
        return decorator

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> type[T]:
        if name not in self._entries:
            raise ConfigError(f"{self.axis} {name!r} is unknown; available: {', '.join(self.names())}")
        return self._entries[name]

    def describe(self) -> dict[str, str]:
        return {n: (c.__doc__ or "").strip().splitlines()[0] for n, c in sorted(self._entries.items())}

    def build(self, section: Mapping[str, Any]) -> T:
        """Instantiate from a recipe section ``{"name": ..., **options}``."""
        section = dict(section)
        name = section.pop("name", None)
        if not name:
            raise ConfigError(f"{self.axis}: no name given; choose one of {', '.join(self.names())}")
        cls = self.get(name)
        config = make_config(cls.Config, section, where=f"{self.axis} {name!r}")  # type: ignore[attr-defined]
        return cls(config)  # type: ignore[call-arg]


def make_config(config_cls: type, options: Mapping[str, Any], *, where: str) -> Any:
    """Build a config dataclass from a mapping and check each option's range
    (:mod:`obliviate.validation`); unknown keys, bad types and bad values are one-line errors."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    unknown = [k for k in options if k not in fields]
    if unknown:
        raise ConfigError(f"{where}: unknown option {unknown[0]!r}; valid options: {', '.join(fields) or 'none'}")
    values = {k: coerce(v, fields[k], where) for k, v in options.items()}
    try:
        config = config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return validate(config, where)


def coerce(value: Any, field: dataclasses.Field, where: str) -> Any:
    """Accept YAML's spellings: ints for floats, '2e-4' strings for floats (YAML 1.1 reads them as str)."""
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    if value is None:
        return None
    try:
        if kind.startswith("float") and not isinstance(value, bool):
            return float(value)
        if kind.startswith("int") and not isinstance(value, bool):
            if float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if kind.startswith("bool") and not isinstance(value, bool):
            raise ValueError
        if kind.startswith("list") and isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise ConfigError(f"{where}: option {field.name!r} must be {kind.split(' ')[0]}, got {value!r}") from None
    return value
