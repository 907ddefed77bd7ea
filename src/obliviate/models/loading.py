"""Load a causal LM and its tokenizer from a local folder or a hub id, safely.

Safe by default: safetensors only and ``trust_remote_code`` off unless a recipe asks for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from obliviate.errors import ConfigError
from obliviate.models.preflight import check_model_folder

_DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
           "float16": "float16", "fp16": "float16", "auto": "auto"}


def quiet_transformers() -> None:
    """Silence transformers' per-file progress bars; ours show the work that matters."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _check_source(path: str) -> None:
    """Refuse a missing or broken local folder before transformers starts (headers only)."""
    check_model_folder(path)


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception, bounded: loader errors stay one line."""
    line = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "") or type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


def _load_errors() -> tuple[type[BaseException], ...]:
    """What transformers raises for a source it cannot load (a hub id we could not check offline)."""
    from safetensors import SafetensorError

    return (OSError, ValueError, SafetensorError)


def load_tokenizer(path: str | os.PathLike, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    quiet_transformers()
    path = str(path)
    _check_source(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except _load_errors() as exc:
        raise ConfigError(f"model {path}: could not load its tokenizer ({_first_line(exc)}); a folder "
                          "must hold the tokenizer files save_pretrained writes") from None
    if tokenizer.pad_token_id is None:
        # Padding is masked everywhere it matters; reusing EOS is the common choice.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str | os.PathLike, *, dtype: str = "float32", trust_remote_code: bool = False) -> Any:
    """A causal LM from a folder or hub id, on this process's training device (its GPU when there
    is one: evaluation and the precomputes before training run where training will); a folder
    with ``composition.json`` (ULD, Offset) loads as the composed model it describes, one with
    ``eul_adapter.json`` as its base with the adapters."""
    from obliviate.distributed import training_device

    return _load(path, dtype=dtype, trust_remote_code=trust_remote_code).to(training_device())


def _load(path: str | os.PathLike, *, dtype: str, trust_remote_code: bool) -> Any:
    from transformers import AutoModelForCausalLM

    from obliviate.models.bottleneck import is_adapter_folder, load_adapter_folder
    from obliviate.models.composed_io import is_composed, load_composed

    quiet_transformers()
    path = str(path)
    _check_source(path)
    if Path(path).is_dir() and is_composed(path):
        return load_composed(path, dtype=dtype, trust_remote_code=trust_remote_code)
    if Path(path).is_dir() and is_adapter_folder(path):
        return load_adapter_folder(path, dtype=dtype, trust_remote_code=trust_remote_code)
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype {dtype!r} is unknown; use one of {', '.join(sorted(_DTYPES))}")
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype=_DTYPES[dtype], use_safetensors=True, trust_remote_code=trust_remote_code)
    except _load_errors() as exc:
        raise ConfigError(f"model {path}: could not load it ({_first_line(exc)}); "
                          "a folder must hold config.json and model.safetensors") from None
    return model
