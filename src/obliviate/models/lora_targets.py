"""Which modules a LoRA adapter goes on, for any decoder-only architecture.

Module names differ by family (Llama's ``q_proj``/``v_proj``, GPT-2's ``c_attn``, GPT-NeoX's
``query_key_value``), so a fixed default fits only some. :func:`resolve_lora_targets` chooses:

1. the names the recipe gives, checked against the model: a name that matches no module is refused
   before anything is trained, in one line that lists the linear layers the model does have;
   ``all-linear`` is accepted as peft's shorthand;
2. otherwise peft's own default for the config's ``model_type``
   (``peft.utils.constants.TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING``: ``q_proj``,
   ``v_proj`` for Llama, Qwen2, Mistral, Gemma, OPT; ``c_attn`` for GPT-2; ``query_key_value``
   for GPT-NeoX; ``q_proj``, ``v_proj``, ``fc1``, ``fc2`` for Phi) when it matches modules of
   this model;
3. otherwise ``all-linear``: every ``nn.Linear`` and transformers ``Conv1D`` except the output head.

A name matches a module as in peft: the module's full name equals it or ends with ``.`` + it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from obliviate.errors import ConfigError

ALL_LINEAR = "all-linear"


@dataclass
class LoraTargets:
    """What :func:`resolve_lora_targets` chose: ``peft`` is what to pass as ``target_modules``;
    ``modules`` the full names of the layers that get LoRA; ``source`` ``recipe``, ``peft-default``
    or ``all-linear``."""

    peft: list[str] | str
    modules: list[str]
    source: str
    model_type: str = ""
    conv1d: bool = False  # every target is a transformers Conv1D (GPT-2): weights stored transposed
    leaf_names: list[str] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {"target_modules": self.leaf_names, "targets_from": self.source, "model_type": self.model_type,
                "adapted_layers": len(self.modules)}


def _linear_types() -> tuple[type, ...]:
    import torch
    from transformers.pytorch_utils import Conv1D

    return (torch.nn.Linear, Conv1D)


def linear_layers(model: Any) -> list[str]:
    """Full names of every linear layer (``nn.Linear`` and transformers' ``Conv1D``) except the
    output head, sorted."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    kinds = _linear_types()
    return sorted(name for name, module in model.named_modules()
                  if isinstance(module, kinds) and module is not head)


def linear_leaf_names(model: Any) -> list[str]:
    """The distinct last name parts of :func:`linear_layers` (``q_proj``, ``c_attn``, ...)."""
    return sorted({name.rsplit(".", 1)[-1] for name in linear_layers(model)})


def _matches(target: str, name: str) -> bool:
    return name == target or name.endswith("." + target)


def _wrappable(module: Any) -> bool:
    """A layer peft's LoRA can wrap: a leaf module (Linear, Conv1D, Embedding, Conv) or multi-head
    attention; blocks such as a whole MLP cannot."""
    import torch

    return isinstance(module, torch.nn.MultiheadAttention) or next(module.children(), None) is None


def _model_type(model: Any) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", "") or "")


def peft_default_targets(model_type: str) -> list[str] | str | None:
    """peft's default LoRA targets for a ``model_type`` (a list of names, or a regex string), or None."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    value = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type)
    if value is None:
        return None
    return value if isinstance(value, str) else list(value)


def _matched(model: Any, targets: Sequence[str] | str) -> list[str]:
    import re

    names = [name for name, _ in model.named_modules() if name]
    if isinstance(targets, str):
        return [n for n in names if re.fullmatch(targets, n)]
    return [n for n in names if any(_matches(t, n) for t in targets)]


def _available_text(leaves: Sequence[str]) -> str:
    return (f"its linear layers are {', '.join(leaves) if leaves else '(none)'}; name some of those, "
            f"'{ALL_LINEAR}', or leave target_modules empty for the architecture's default")


def available_modules_text(model: Any) -> str:
    return _available_text(linear_leaf_names(model))


def _target_names(given: Sequence[str] | str | None) -> list[str]:
    return [given] if isinstance(given, str) else [str(t).strip() for t in (given or []) if str(t).strip()]


def resolve_lora_targets(model: Any, given: Sequence[str] | str | None = None, *, where: str = "scope lora") -> LoraTargets:
    """The LoRA targets for ``model``: ``given`` (checked) or the architecture's default."""
    model_type = _model_type(model)
    what = f"{type(model).__name__}" + (f" ({model_type})" if model_type else "")
    names = _target_names(given)

    if names and [n.lower() for n in names] == [ALL_LINEAR]:
        peft_value: list[str] | str = ALL_LINEAR
        modules, source = linear_layers(model), "recipe"
    elif names:
        if ALL_LINEAR in (n.lower() for n in names):
            raise ConfigError(f"{where}: target_modules mixes '{ALL_LINEAR}' with module names; give one or the other")
        all_names = [name for name, _ in model.named_modules() if name]
        missing = [t for t in names if not any(_matches(t, n) for n in all_names)]
        if missing:
            raise ConfigError(f"{where}: no module of {what} is named {', '.join(missing)}; "
                              + available_modules_text(model))
        peft_value, modules, source = names, _matched(model, names), "recipe"
        blocks = sorted({type(model.get_submodule(n)).__name__ for n in modules if not _wrappable(model.get_submodule(n))})
        if blocks:
            raise ConfigError(f"{where}: target_modules {', '.join(names)} name whole blocks of {what} "
                              f"({', '.join(blocks)}), not layers LoRA can wrap; " + available_modules_text(model))
    else:
        default = peft_default_targets(model_type)
        matched = _matched(model, default) if default is not None else []
        if matched:
            peft_value, modules, source = default, matched, "peft-default"
        else:
            peft_value, modules, source = ALL_LINEAR, linear_layers(model), ALL_LINEAR
    if not modules:
        raise ConfigError(f"{where}: {what} has no linear layers to put LoRA on")
    from transformers.pytorch_utils import Conv1D

    conv1d = all(isinstance(model.get_submodule(n), Conv1D) for n in modules)
    leaves = sorted({n.rsplit(".", 1)[-1] for n in modules})
    return LoraTargets(peft=peft_value, modules=modules, source=source, model_type=model_type,
                       conv1d=conv1d, leaf_names=leaves)


def apply_lora(model: Any, targets: LoraTargets, *, r: int, alpha: float, dropout: float,
               where: str = "scope lora") -> Any:
    """``get_peft_model`` with the resolved targets (task ``CAUSAL_LM``, bias none); peft's
    refusals (a target it cannot wrap, such as a whole block) become one-line errors."""
    import warnings

    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none", task_type="CAUSAL_LM",
                        target_modules=targets.peft, fan_in_fan_out=targets.conv1d)
    try:
        with warnings.catch_warnings():
            # GPT-2's Conv1D stores weights transposed: peft sets fan_in_fan_out per layer, with a warning
            warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, config)
    except (ValueError, TypeError) as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")[:160] or type(exc).__name__
        raise ConfigError(f"{where}: LoRA cannot go on target_modules {targets.peft!r} of "
                          f"{type(model).__name__} ({first}); {available_modules_text(model)}") from None


# ---- checking target names against a saved model, without loading it ----------------------------

#: leaf names of 2-D weights that are embeddings or output heads, not layers to put LoRA on
_NOT_LINEAR = {"wte", "wpe", "lm_head", "embed_out", "embed_in", "word_embeddings", "position_embeddings"}


def _saved_tensors(model_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Name -> header entry of every tensor a local model folder saves (all shards), or None when
    the folder's weights cannot be read offline (a hub id, a composed model)."""
    from obliviate.models.preflight import local_model_files, read_safetensors_header

    files = local_model_files(model_dir)
    if not files:
        return None
    tensors: dict[str, Any] = {}
    for file in files:
        tensors.update(read_safetensors_header(file))
    return tensors


def _ties_head(model_dir: str | os.PathLike) -> bool:
    """Whether the model's output head shares the input embedding (so it is not saved); the
    transformers default (tied) when config.json does not say."""
    import json

    from obliviate.models.preflight import local_model_files

    files = local_model_files(model_dir)
    try:
        data = json.loads((files[0].parent / "config.json").read_text(encoding="utf-8")) if files else None
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("tie_word_embeddings", True) is not False


def module_names(model_dir: str | os.PathLike) -> list[str] | None:
    """Full names of the modules of a saved model, sorted: every module that holds a saved
    tensor and its parents, read from the safetensors headers only (no weights load), plus
    ``lm_head`` when it is tied to the embeddings. An adapter folder gives its base's names.
    None when they cannot be known offline (a hub id, a composed model). Modules without weights
    (activations, dropout) are absent: LoRA cannot go on them anyway."""
    tensors = _saved_tensors(model_dir)
    if tensors is None:
        return None
    names: set[str] = set()
    for tensor in tensors:
        parts = tensor.split(".")[:-1]
        names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    if _ties_head(model_dir) and not any(n == "lm_head" or n.endswith(".lm_head") for n in names):
        names.add("lm_head")
    return sorted(names)


def saved_linear_leaf_names(model_dir: str | os.PathLike) -> list[str] | None:
    """The distinct last name parts of a saved model's 2-D weights other than embeddings and
    heads (``q_proj``, ``c_attn``, ...): its linear layers, from the headers alone."""
    tensors = _saved_tensors(model_dir)
    if tensors is None:
        return None
    leaves = set()
    for name, info in tensors.items():
        parts = name.split(".")
        if len(parts) > 1 and parts[-1] == "weight" and len(info.get("shape", [])) == 2:
            leaf = parts[-2]
            if leaf not in _NOT_LINEAR and "embed" not in leaf:
                leaves.add(leaf)
    return sorted(leaves)


def check_targets_in_folder(model_dir: str | os.PathLike, given: Sequence[str] | str | None, *,
                            where: str = "scope lora") -> None:
    """Refuse (:class:`ConfigError`, one line) ``target_modules`` that name no module of the saved
    model at ``model_dir``, before the model is loaded or anything trained; the same names and
    matching as :func:`resolve_lora_targets`, which checks the loaded model again. Hub ids and
    composed models pass (nothing to read offline)."""
    names = _target_names(given)
    lowered = [n.lower() for n in names]
    if not names or lowered == [ALL_LINEAR]:
        return
    if ALL_LINEAR in lowered:
        raise ConfigError(f"{where}: target_modules mixes '{ALL_LINEAR}' with module names; give one or the other")
    modules = module_names(model_dir)
    if modules is None:
        return
    missing = [t for t in names if not any(_matches(t, n) for n in modules)]
    if missing:
        raise ConfigError(f"{where}: no module of model {os.fspath(model_dir)} is named {', '.join(missing)}; "
                          + _available_text(saved_linear_leaf_names(model_dir) or []))
