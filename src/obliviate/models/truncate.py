"""The ULD assistant: a truncated copy (first K decoder layers) of any decoder-only model, with LoRA.

ULD (spec ``methods-wagle-uld.md`` §2.3) trains a small *assistant* ``l_a = H(T_K(x))``: the target's
embeddings, its first K decoder layers, its final norm and its output head, with LoRA on every linear
layer except the head. The assistant is built through the architecture's own config
(``num_hidden_layers=K``) and ``AutoModelForCausalLM.from_config``, then filled from the target's
state dict; the first K layers keep their names (``...layers.0`` .. ``...layers.K-1``), so no family's
module names are hard-coded and every decoder-only architecture transformers knows works the same way.

Only the copied tensors are duplicated (never the whole base), and the copy shares no storage with
the base: training the assistant leaves the target untouched.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import warnings
from typing import Any

from obliviate.errors import ConfigError

# List attributes whose length can equal the layer count by coincidence but are not per-layer
# (token ids, architecture names, multi-token-prediction layers).
_NOT_PER_LAYER = ("token", "architectures", "mtp", "label")


def _text_config(config: Any) -> Any:
    """The decoder config that carries the layer count (the config itself for plain decoders)."""
    getter = getattr(config, "get_text_config", None)
    return getter(decoder=True) if getter is not None else config


def layer_count(config: Any) -> int:
    """The number of decoder layers: ``num_hidden_layers`` (GPT-2's ``n_layer`` and similar names are
    reached through transformers' ``attribute_map``)."""
    n = getattr(_text_config(config), "num_hidden_layers", None)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"model config {type(config).__name__} has no decoder layer count "
                          "(num_hidden_layers); only decoder-only models can be truncated")
    return n


def default_assistant_layers(n_layers: int) -> int:
    """A quarter of the layers, rounded half up, at least 1 and at most ``n_layers``.

    The ULD paper keeps 8 of Llama-2-7b's 32 layers; 4 -> 1, 6 -> 2, 10 -> 3, 22 -> 6, 28 -> 7.
    """
    if n_layers < 1:
        raise ConfigError(f"a model with {n_layers} layers cannot be truncated; it needs at least 1")
    return min(n_layers, max(1, int(n_layers / 4 + 0.5)))


def _is_layer_index_list(key: str, value: list, n: int) -> bool:
    """A sorted list of layer indices (``mlp_only_layers``, ``hybrid_layer_ids``, ...)."""
    hint = "layer" in key or "idx" in key or key.endswith("_ids")
    return (hint and len(value) > 0 and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            and all(0 <= v < n for v in value) and list(value) == sorted(set(value)))


def _cut_layer_lists(cfg: Any, n: int, k: int) -> None:
    """Cut every per-layer list of ``cfg`` to layers 0..k-1, in place.

    Two shapes occur in transformers 5: lists with one entry per layer (``layer_types``,
    ``mlp_layer_types``, ``layers_block_type``, ``no_rope_layers``, Gemma-3n's ``intermediate_size``,
    ``num_attention_heads_per_layer``, ...) are cut to their first k entries; sorted lists of layer
    indices (``mlp_only_layers``, ``cross_attention_layers``, ``hybrid_layer_ids``, ...) keep the
    indices below k. Per-layer overrides of heterogeneous configs keep the layers below k.
    """
    for key, value in list(vars(cfg).items()):
        if not isinstance(value, (list, tuple)) or key.startswith("__"):
            continue
        if any(word in key for word in _NOT_PER_LAYER):
            continue
        if len(value) == n:
            setattr(cfg, key, type(value)(value[:k]))
        elif _is_layer_index_list(key, list(value), n):
            setattr(cfg, key, type(value)(v for v in value if v < k))
    spec = vars(cfg).get("_heterogeneity_spec")
    if spec is not None and dataclasses.is_dataclass(spec):
        kept = {i: o for i, o in spec.per_layer_overrides.items() if i < k}
        cfg.__dict__["_heterogeneity_spec"] = dataclasses.replace(spec, per_layer_overrides=kept)


def truncated_config(config: Any, k: int) -> Any:
    """A deep copy of ``config`` with ``k`` decoder layers and every per-layer list cut to match."""
    n = layer_count(config)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ConfigError(f"assistant layers must be an integer from 1 to {n} (the model's layer count), "
                          f"got {k!r}")
    new = copy.deepcopy(config)
    text = _text_config(new)
    try:
        text.num_hidden_layers = k
        _cut_layer_lists(text, n, k)
        for cfg in {id(new): new, id(text): text}.values():
            if hasattr(cfg, "validate"):
                cfg.validate()
    except Exception as exc:  # noqa: BLE001 - any config-level refusal becomes one actionable line
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[-1] if lines else type(exc).__name__
        raise ConfigError(f"cannot truncate {type(config).__name__} to {k} layers: its config refuses "
                          f"({detail})") from None
    return new


def _first_param(model: Any) -> Any:
    try:
        return next(model.parameters())
    except StopIteration:
        raise ConfigError(f"model {type(model).__name__} has no parameters to copy") from None


def _build(config: Any, dtype: Any, device: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device(device):
        return AutoModelForCausalLM.from_config(config, dtype=dtype)


def _copied_state(base: Any, small_keys_shapes: dict[str, tuple], tied_keys: set[str]) -> dict[str, Any]:
    """The base's tensors under the small model's keys, checked; tied keys the base omits are skipped."""
    base_state = base.state_dict()
    out = {}
    for key, shape in small_keys_shapes.items():
        if key not in base_state:
            if key in tied_keys:
                continue
            raise ConfigError(f"cannot copy {type(base).__name__} into a truncated assistant: "
                              f"{key} is missing from the base model's weights")
        if tuple(base_state[key].shape) != tuple(shape):
            raise ConfigError(f"cannot copy {type(base).__name__} into a truncated assistant: {key} has "
                              f"shape {tuple(base_state[key].shape)} in the base but {tuple(shape)} "
                              "in the truncated model")
        out[key] = base_state[key]
    return out


def _tied_keys(model: Any) -> set[str]:
    """State-dict keys that alias another key of ``model`` (tied weights)."""
    seen: dict[int, str] = {}
    tied = set()
    for key, tensor in model.state_dict(keep_vars=True).items():
        ident = id(tensor)
        if ident in seen:
            tied.add(key)
        else:
            seen[ident] = key
    return tied


def truncated_copy(model: Any, k: int) -> Any:
    """A new model of the same architecture with ``model``'s embeddings, first ``k`` decoder layers,
    final norm and output head (copied, not shared), in the base's dtype and on its device."""
    import torch

    first = _first_param(model)
    config = truncated_config(model.config, k)
    small = _build(config, first.dtype, first.device)
    small_state = small.state_dict(keep_vars=True)
    tied = _tied_keys(small)
    source = _copied_state(model, {key: tuple(t.shape) for key, t in small_state.items()}, tied)
    with torch.no_grad():
        for key, tensor in source.items():
            # copy_ into the copy's own storage: nothing is shared with the base
            small_state[key].copy_(tensor)
    if getattr(_text_config(config), "tie_word_embeddings", False) and hasattr(small, "tie_weights"):
        small.tie_weights()
    base_gen, small_gen = getattr(model, "generation_config", None), getattr(small, "generation_config", None)
    if base_gen is not None and small_gen is not None:
        for attr in ("pad_token_id", "eos_token_id", "bos_token_id"):
            value = getattr(base_gen, attr, None)
            if value is not None:
                setattr(small_gen, attr, copy.deepcopy(value))
    small.train(model.training)
    return small


def _linear_targets(model: Any) -> list[str]:
    """Names of every linear layer (``nn.Linear`` and transformers' ``Conv1D``) except the output head."""
    from obliviate.models.lora_targets import linear_layers

    return linear_layers(model)


def assistant_with_lora(model: Any, k: int, r: int = 32, alpha: float = 32, dropout: float = 0.05) -> Any:
    """The ULD assistant: ``truncated_copy(model, k)`` wrapped with LoRA (rank ``r``, scale
    ``alpha``, ``dropout``, bias none) on every linear layer except the output head; the copy's own
    weights are frozen and only the LoRA weights train. The base ``model`` is not modified."""
    from peft import LoraConfig, TaskType, get_peft_model

    if r < 1:
        raise ConfigError(f"LoRA rank must be at least 1, got {r}")
    small = truncated_copy(model, k)
    targets = _linear_targets(small)
    if not targets:
        raise ConfigError(f"{type(model).__name__} has no linear layers to put LoRA on")
    from transformers.pytorch_utils import Conv1D

    # peft's "all-linear" matches nn.Linear and transformers' Conv1D (GPT-2) and drops the output head.
    # Conv1D stores its weight transposed: peft flips fan_in_fan_out per layer (with a warning), so
    # start from the value that fits when every target is a Conv1D.
    conv1d = all(isinstance(small.get_submodule(name), Conv1D) for name in targets)
    lora = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none",
                      target_modules="all-linear", task_type=TaskType.CAUSAL_LM, fan_in_fan_out=conv1d)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*fan_in_fan_out.*")
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = get_peft_model(small, lora)
    wrapped = set(peft_model.peft_config["default"].target_modules)
    if wrapped != set(targets):
        raise ConfigError(f"LoRA on {type(model).__name__}: peft's all-linear chose {len(wrapped)} layers, "
                          f"expected the {len(targets)} linear layers other than the output head")
    return peft_model


def _tensor_bytes(tensor: Any) -> bytes:
    import torch

    t = tensor.detach().to("cpu").contiguous()
    return t.reshape(-1).view(torch.uint8).numpy().tobytes()


def provenance(model: Any, k: int) -> dict:
    """What a saved assistant needs to be rebuilt from ``model``: the layer count, the base's name and
    class, and a fingerprint (first 16 hex of a sha256 over the names, dtypes, shapes and bytes of the
    copied tensors) so a later load can tell that the base changed."""
    import torch

    config = truncated_config(model.config, k)
    with torch.device("meta"):
        from transformers import AutoModelForCausalLM

        skeleton = AutoModelForCausalLM.from_config(config, dtype=_first_param(model).dtype)
    shapes = {key: tuple(t.shape) for key, t in skeleton.state_dict().items()}
    tied = _tied_keys(skeleton)
    # a tied tensor is hashed once, under its first name, whether or not the base lists its alias
    source = {key: t for key, t in _copied_state(model, shapes, tied).items() if key not in tied}
    digest = hashlib.sha256()
    for key in sorted(source):
        tensor = source[key]
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(_tensor_bytes(tensor))
    return {
        "layers": k,
        "base_layers": layer_count(model.config),
        "base_name_or_path": getattr(model.config, "_name_or_path", "") or "",
        "base_class": type(model).__name__,
        "model_type": getattr(model.config, "model_type", ""),
        "fingerprint": digest.hexdigest()[:16],
    }
