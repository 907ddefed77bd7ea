"""Data: the record schema and loaders (files, folders, hub ids, TOFU), validated at the door."""

from __future__ import annotations

from obliviate.data.loaders import SUPPORTED_SUFFIXES, load_records
from obliviate.data.schema import detect_kind, validate_records
from obliviate.data.tofu import (
    TOFU_CONFIGS,
    TOFU_HUB_ID,
    holdout_config_for,
    load_tofu,
    retain_config_for,
)

__all__ = [
    "SUPPORTED_SUFFIXES",
    "TOFU_CONFIGS",
    "TOFU_HUB_ID",
    "detect_kind",
    "holdout_config_for",
    "load_records",
    "load_tofu",
    "retain_config_for",
    "validate_records",
]
