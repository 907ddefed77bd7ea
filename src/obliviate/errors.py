"""User-facing errors.

Anything a user can cause (a bad path, a malformed record, an unknown method, an override key that
does not exist) raises an :class:`ObliviateError` whose message is one line saying what went wrong,
where, and how to fix it. The CLI prints that line and exits non-zero; Python callers can catch it.
"""

from __future__ import annotations


class ObliviateError(Exception):
    """An error caused by user input; its message is one complete, actionable line."""


class DataError(ObliviateError):
    """A data file or record is missing, malformed or empty."""


class ConfigError(ObliviateError):
    """A recipe, override or option is invalid."""


class TrainingError(ObliviateError):
    """Training cannot go on (for example the loss became NaN)."""
