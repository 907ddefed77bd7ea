"""What each config option accepts, declared once where the option is declared.

A config dataclass states the valid range or names of an option in its field
(``batch_size: int = option(8, ge=1)``); :func:`validate` checks a built config against those
declarations. :func:`obliviate.registry.make_config` calls it for every recipe section and every
axis component, so a bad value is one line naming the option and what it accepts, raised while the
recipe is resolved, before any model or data loads, instead of a traceback (or a ruined model)
later. Every number must also be finite, declared or not (no nan or inf); ``None`` passes only
where the field's type admits it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import MISSING
from typing import Any, Callable, Iterable

from obliviate.errors import ConfigError

_KEY = "obliviate.option"
_KIND = re.compile(r"\b(bool|int|float|str|list|dict)\b")
_KIND_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "list": "a list", "dict": "a mapping"}

Choices = Iterable[Any] | Callable[[], Iterable[Any]]


@dataclasses.dataclass(frozen=True)
class Constraint:
    """Bounds for a number and/or the names a value may take. ``choices`` may be a function, for
    lists known only at run time (installed integrations, registered benchmarks); it is called only
    when a value is checked. ``hint`` is appended to the error, to say why or what to do."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: Choices | None = None
    hint: str | None = None

    def names(self) -> tuple[Any, ...]:
        choices = self.choices() if callable(self.choices) else self.choices
        return tuple(choices or ())

    def bounds(self) -> str:
        """``>= 1``, ``in [0, 1)``, ... or '' when unbounded."""
        low = f"[{_num(self.ge)}" if self.ge is not None else f"({_num(self.gt)}" if self.gt is not None else ""
        high = f"{_num(self.le)}]" if self.le is not None else f"{_num(self.lt)})" if self.lt is not None else ""
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f"{'>=' if self.ge is not None else '>'} {low[1:]}"
        if high:
            return f"{'<=' if self.le is not None else '<'} {high[:-1]}"
        return ""

    def within(self, value: float) -> bool:
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    @property
    def numeric(self) -> bool:
        return any(b is not None for b in (self.ge, self.gt, self.le, self.lt))


def option(default: Any = MISSING, *, default_factory: Callable[[], Any] | Any = MISSING,
           ge: float | None = None, gt: float | None = None, le: float | None = None,
           lt: float | None = None, choices: Choices | None = None, hint: str | None = None) -> Any:
    """A dataclass field that declares what it accepts, checked by :func:`validate`."""
    constraint = Constraint(ge=ge, gt=gt, le=le, lt=lt,
                            choices=choices if choices is None or callable(choices) else tuple(choices),
                            hint=hint)
    return dataclasses.field(default=default, default_factory=default_factory, metadata={_KEY: constraint})


def constraint_of(config_cls: type, name: str) -> Constraint | None:
    """The field's declared constraint; a subclass that only changes a default keeps its base's."""
    for klass in config_cls.__mro__:
        found = getattr(klass, "__dataclass_fields__", {}).get(name)
        if found is not None and _KEY in found.metadata:
            return found.metadata[_KEY]
    return None


def validate(config: Any, where: str) -> Any:
    """Check every field of the dataclass ``config``; return it, or raise :class:`ConfigError`
    with one line: ``{where}: {field} must be {what is valid}, got {value}``."""
    for f in dataclasses.fields(config):
        problem = check_value(getattr(config, f.name), constraint_of(type(config), f.name), _type_text(f))
        if problem:
            raise ConfigError(f"{where}: {f.name} {problem}")
    return config


def check_option(value: Any, name: str, *, where: str, annotation: str = "float", ge: float | None = None,
                 gt: float | None = None, le: float | None = None, lt: float | None = None,
                 choices: Choices | None = None, hint: str | None = None) -> Any:
    """The same check for a loose value (an API argument with no config dataclass of its own);
    ``annotation`` is its type as written in one (``"int"``, ``"float | None"``). Returns ``value``."""
    problem = check_value(value, Constraint(ge, gt, le, lt, choices, hint), annotation)
    if problem:
        raise ConfigError(f"{where}: {name} {problem}")
    return value


def check_value(value: Any, constraint: Constraint | None, annotation: str) -> str | None:
    """What is wrong with ``value`` (``"must be ..., got ..."``) for a field annotated
    ``annotation`` under ``constraint``, or None when it is valid."""
    optional = "None" in annotation or "Optional" in annotation
    if value is None and optional:
        return None
    match = _KIND.search(annotation)
    kind = match.group(1) if match else ""
    constraint = constraint or Constraint()
    if constraint.choices is not None:
        names = constraint.names()
        if value is not None and not isinstance(value, bool) and value in names:
            return None
        expected = f"one of {', '.join(map(str, names))}"
    elif kind in ("int", "float") or constraint.numeric:
        if _is_number(value, integer=kind == "int") and constraint.within(value):
            return None
        noun = "an integer" if kind == "int" else "a number" if constraint.numeric else "a finite number"
        expected = f"{noun} {constraint.bounds()}".rstrip()
    elif value is not None:
        return None
    else:
        expected = _KIND_WORDS.get(kind, "set")
    problem = f"must be {expected}{' or null' if optional else ''}, got {value!r}"
    return f"{problem} ({constraint.hint})" if constraint.hint else problem


def _is_number(value: Any, *, integer: bool) -> bool:
    """A real number (not a bool), finite, and an int where an integer is wanted."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) if integer else not isinstance(value, float) or math.isfinite(value)


def _type_text(f: dataclasses.Field) -> str:
    """The annotation as text (``"int | None"``), whether or not the module postpones annotations."""
    if isinstance(f.type, str):
        return f.type
    return f.type.__name__ if isinstance(f.type, type) else str(f.type)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)
