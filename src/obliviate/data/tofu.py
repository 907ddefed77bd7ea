"""TOFU (locuslab/TOFU) loader: the real benchmark through the same schema as every other data.

TOFU ships each config as a ``{config}.json`` file holding JSON lines; on the hub each config has a
single ``train`` split. The real-authors and world-facts sets have no paraphrased answer: they are
returned as they are, and the evaluator scores their original ``answer`` as the correct one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from obliviate.data.loaders import load_records
from obliviate.errors import DataError

TOFU_HUB_ID = "locuslab/TOFU"

TOFU_FORGET_CONFIGS: tuple[str, ...] = ("forget01", "forget05", "forget10")
TOFU_CONFIGS: tuple[str, ...] = (
    "full",
    *TOFU_FORGET_CONFIGS,
    "retain90",
    "retain95",
    "retain99",
    "forget01_perturbed",
    "forget05_perturbed",
    "forget10_perturbed",
    "retain_perturbed",
    "real_authors_perturbed",
    "world_facts_perturbed",
    "holdout01",
    "holdout05",
    "holdout10",
)

# Percent of authors forgotten -> the split trained without them / never trained on.
_RETAIN_FOR = {"01": "retain99", "05": "retain95", "10": "retain90"}
_HOLDOUT_FOR = {"01": "holdout01", "05": "holdout05", "10": "holdout10"}


def _check_config(config: str) -> None:
    if config not in TOFU_CONFIGS:
        raise DataError(f"TOFU: unknown config {config!r}; valid configs: {', '.join(TOFU_CONFIGS)}")


def load_tofu(config: str, source: str | os.PathLike[str] = TOFU_HUB_ID) -> list[dict[str, Any]]:
    """Load one TOFU config as validated QA records, from the hub or a local copy.

    ``source`` is the hub id (default) or a folder holding TOFU's ``{config}.json`` files (another
    supported suffix, e.g. ``{config}.parquet``, is used when there is no ``.json``), or a download
    of the hub repository, which keeps each config in a subfolder (``{config}/train-*.parquet``).
    """
    _check_config(config)
    folder = Path(os.fspath(source))
    if folder.is_dir():
        tofu_file = folder / f"{config}.json"
        if tofu_file.is_file():
            return load_records(tofu_file, "qa")
        if (folder / config).is_dir():
            return load_records(folder / config, "qa")
        return load_records(folder, "qa", split=config)
    return load_records(source, "qa", config=config, split="train")


def _percent(forget_config: str, what: str) -> str:
    """The forget percentage ("01", "05", "10") of a forget config, for pairing splits."""
    base = forget_config.removesuffix("_perturbed")
    if base not in TOFU_FORGET_CONFIGS:
        valid = ", ".join(TOFU_FORGET_CONFIGS + tuple(f"{c}_perturbed" for c in TOFU_FORGET_CONFIGS))
        raise DataError(
            f"TOFU: {forget_config!r} is not a forget config, so it has no {what} split; use one of {valid}"
        )
    return base.removeprefix("forget")


def retain_config_for(forget_config: str) -> str:
    """The retain split that complements a forget split (forget10 -> retain90), for GradDiff etc."""
    return _RETAIN_FOR[_percent(forget_config, "retain")]


def holdout_config_for(forget_config: str) -> str:
    """The holdout split of the same size as a forget split (forget10 -> holdout10), for MIA."""
    return _HOLDOUT_FOR[_percent(forget_config, "holdout")]


__all__ = [
    "TOFU_CONFIGS",
    "TOFU_FORGET_CONFIGS",
    "TOFU_HUB_ID",
    "holdout_config_for",
    "load_tofu",
    "retain_config_for",
]
