"""Saving and loading composed models (ULD's logit difference, Offset): a folder with
``composition.json`` and the trained assistant, pointing at the base model it was made from.

The base is never copied: the folder records its path (or hub id) and a fingerprint of the layers
the assistant was truncated from, so loading rebuilds the frozen parts from the base and refuses a
base that is missing or has changed since.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from obliviate.errors import ConfigError
from obliviate.io import write_json_atomic

COMPOSITION_FILE = "composition.json"
ASSISTANT_DIR = "assistant"


def is_composed(folder: str | Path) -> bool:
    return (Path(folder) / COMPOSITION_FILE).is_file()


def write_composition(folder: str | Path, spec: dict[str, Any]) -> Path:
    return write_json_atomic(Path(folder) / COMPOSITION_FILE, spec)


def _check_provenance(base: Any, saved: dict[str, Any], folder: Path) -> int:
    from obliviate.models.truncate import provenance

    k = int(saved["layers"])
    if saved.get("fingerprint") and provenance(base, k)["fingerprint"] != saved["fingerprint"]:
        raise ConfigError(f"{folder}: the base model's first {k} layers differ from the ones the assistant "
                          "was made from; the base has changed since (give the original base)")
    return k


def load_composed(folder: str | Path, *, dtype: str = "float32", trust_remote_code: bool = False) -> Any:
    """Rebuild a saved composed model: the base from its recorded path, the assistant from the folder."""
    from obliviate.models.composed import ComposedCausalLM
    from obliviate.models.loading import load_model
    from obliviate.models.truncate import truncated_copy

    folder = Path(folder)
    try:
        spec = json.loads((folder / COMPOSITION_FILE).read_text(encoding="utf-8"))
        kind, base_path = spec["type"], spec["base"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{folder / COMPOSITION_FILE}: not a valid composition file") from None
    base_ref = Path(base_path).expanduser()
    if (base_path.startswith(("/", ".", "~")) or base_ref.exists()) and not base_ref.exists():
        raise ConfigError(f"{folder}: the base model {base_path} is missing; the composed model needs it")
    base = load_model(base_path, dtype=dtype, trust_remote_code=trust_remote_code)
    for p in base.parameters():
        p.requires_grad_(False)
    if kind == "logit_diff":
        from peft import PeftModel

        k = _check_provenance(base, spec["assistant"], folder)
        assistant = PeftModel.from_pretrained(truncated_copy(base, k), str(folder / ASSISTANT_DIR))
        return ComposedCausalLM(base, [(assistant, -float(spec["alpha"]))], rho=spec.get("rho"),
                                normalize=spec.get("rho") is None).eval()
    if kind == "offset":
        saved = spec["assistant"]
        if saved.get("path"):
            reference = load_model(saved["path"], dtype=dtype, trust_remote_code=trust_remote_code)
        else:
            reference = truncated_copy(base, _check_provenance(base, saved, folder))
        trained = load_model(folder / ASSISTANT_DIR, dtype=dtype, trust_remote_code=trust_remote_code)
        w = float(spec["weight"])
        return ComposedCausalLM(base, [(trained, w), (reference, -w)], rho=None, normalize=False).eval()
    raise ConfigError(f"{folder / COMPOSITION_FILE}: unknown composition type {kind!r}")
