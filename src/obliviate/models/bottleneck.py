"""Bottleneck adapters after every feed-forward block (EUL's "unlearning layers").

``h ↦ h + W_up · relu(W_down · h + b_down) + b_up`` on the output of each decoder layer's FFN, the
up-projection zero-initialised so that the adapted model starts as the base (EUL, arXiv 2310.20150,
§2.2 of the spec; Pfeiffer-style placement and ReLU). The adapters are children of the FFN modules
and act through a forward hook, so the base's own modules and weights stay untouched and any
decoder-only architecture works (Llama's ``mlp``, GPT-2's ``mlp``, GPT-NeoX's ``mlp``, OPT's
``fc2``).

PEFT has no bottleneck adapters and AdapterHub's ``adapters`` pins transformers 4, hence this
module. It also collects the Gram matrices of each adapter's two linear maps' inputs, which
closed-form fusion (``obliviate.compose.fuse``) needs.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from obliviate.errors import ConfigError

ADAPTER_FILE = "eul_adapter.json"
WEIGHTS_FILE = "eul_adapter.safetensors"
GRAMS_FILE = "eul_grams.safetensors"
#: FFN module names tried in order; the first that names one module per decoder layer wins
FFN_NAMES = ("mlp", "feed_forward", "ffn", "fc2")
CHILD = "eul_adapter"


class BottleneckAdapter(nn.Module):
    """``h + up(relu(down(h)))`` with ``up`` zero-initialised (the identity at the start)."""

    def __init__(self, hidden_size: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(hidden_size, bottleneck)
        self.up = nn.Linear(bottleneck, hidden_size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.enabled = True

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return hidden
        return hidden + self.up(torch.relu(self.down(hidden)))


@dataclass
class AdapterSpec:
    """What rebuilds a set of adapters on a base: written to ``eul_adapter.json``."""

    modules: list[str]
    hidden_size: int
    bottleneck: int
    init_seed: int = 0
    base: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"type": "eul", **asdict(self)}


def hidden_size(model: Any) -> int:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return int(config.hidden_size)


def find_ffn_modules(model: Any, names: Iterable[str] = ()) -> list[str]:
    """The FFN module of every decoder layer (``layers.N.mlp`` …); ``names`` overrides the search."""
    candidates = list(names) or list(FFN_NAMES)
    all_names = [n for n, _ in model.named_modules()]
    for candidate in candidates:
        found = [n for n in all_names
                 if n.split(".")[-1] == candidate and len(n.split(".")) > 1 and n.split(".")[-2].isdigit()]
        if found:
            return found
    raise ConfigError(f"no feed-forward module named {' or '.join(candidates)} inside the decoder layers of "
                      f"{type(model).__name__}; set scope.modules to the FFN module name of this architecture")


def base_parameter_count(model: Any) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if f".{CHILD}." not in n)


def auto_bottleneck(model: Any, n_modules: int, size: float) -> int:
    """The width that makes the adapters ``size`` × the base's parameter count (at least 1)."""
    d = hidden_size(model)
    per_unit = n_modules * (2 * d + 1)  # down weight + bias, up weight
    return max(1, round((size * base_parameter_count(model) - n_modules * d) / per_unit))


def _hook(module: nn.Module, args: Any, output: Any) -> Any:
    adapter = getattr(module, CHILD)
    if isinstance(output, tuple):  # MoE blocks return (hidden, router logits)
        return (adapter(output[0]), *output[1:])
    return adapter(output)


def attach_adapters(model: Any, modules: list[str], bottleneck: int, init_seed: int = 0) -> list[BottleneckAdapter]:
    """Add one adapter after each named FFN module; the same ``init_seed`` gives the same start,
    which fusion relies on (the hidden units of adapters for different requests then correspond)."""
    d = hidden_size(model)
    adapters = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        for name in modules:
            ffn = model.get_submodule(name)
            if hasattr(ffn, CHILD):
                raise ConfigError(f"{name} already has an unlearning adapter; start from the base model")
            ref = next(ffn.parameters())
            adapter = BottleneckAdapter(d, bottleneck).to(device=ref.device, dtype=ref.dtype)
            ffn.add_module(CHILD, adapter)
            ffn.register_forward_hook(_hook)
            adapters.append(adapter)
    return adapters


def adapters_of(model: Any) -> dict[str, BottleneckAdapter]:
    """``{ffn module name: adapter}`` for every adapter in the model."""
    return {n[: -len(CHILD) - 1]: m for n, m in model.named_modules() if isinstance(m, BottleneckAdapter)}


@contextlib.contextmanager
def adapters_disabled(model: Any) -> Iterator[None]:
    """The base model's behaviour (EUL's teacher) without a second copy in memory."""
    adapters = list(adapters_of(model).values())
    states = [a.enabled for a in adapters]
    for a in adapters:
        a.enabled = False
    try:
        yield
    finally:
        for a, s in zip(adapters, states):
            a.enabled = s


def adapter_state(model: Any) -> dict[str, torch.Tensor]:
    """The adapters' weights, keyed ``<ffn module>.{down,up}.{weight,bias}``."""
    return {f"{name}.{k}": v.detach().contiguous().cpu()
            for name, adapter in adapters_of(model).items() for k, v in adapter.state_dict().items()}


def load_adapter_state(model: Any, state: dict[str, torch.Tensor]) -> None:
    adapters = adapters_of(model)
    for name, adapter in adapters.items():
        adapter.load_state_dict({k: state[f"{name}.{k}"] for k in adapter.state_dict()})


def read_spec(folder: str | Path) -> AdapterSpec:
    path = Path(folder) / ADAPTER_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        raw.pop("type", None)
        return AdapterSpec(**raw)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not a valid unlearning-adapter file ({exc})") from None


def is_adapter_folder(folder: str | Path) -> bool:
    return (Path(folder) / ADAPTER_FILE).is_file()


def save_adapter_folder(folder: str | Path, spec: AdapterSpec, weights: dict[str, torch.Tensor],
                        grams: dict[str, torch.Tensor] | None = None) -> None:
    from safetensors.torch import save_file

    from obliviate.io import write_json_atomic

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(folder / WEIGHTS_FILE))
    if grams is not None:
        save_file({k: v.contiguous() for k, v in grams.items()}, str(folder / GRAMS_FILE))
    write_json_atomic(folder / ADAPTER_FILE, spec.as_dict())


def load_adapter_folder(folder: str | Path, *, dtype: str = "float32", trust_remote_code: bool = False) -> Any:
    """The base model the folder names, with the saved adapters attached (loaded by ``load_model``)."""
    from safetensors.torch import load_file

    from obliviate.models.loading import load_model

    folder = Path(folder)
    spec = read_spec(folder)
    if not spec.base:
        raise ConfigError(f"{folder}: the adapter names no base model")
    base_ref = Path(spec.base).expanduser()
    if spec.base.startswith(("/", ".", "~")) and not base_ref.exists():
        raise ConfigError(f"{folder}: the base model {spec.base} is missing; the adapters need it")
    model = load_model(spec.base, dtype=dtype, trust_remote_code=trust_remote_code)
    attach_adapters(model, spec.modules, spec.bottleneck, spec.init_seed)
    try:
        load_adapter_state(model, load_file(str(folder / WEIGHTS_FILE)))
    except (OSError, KeyError, RuntimeError) as exc:
        raise ConfigError(f"{folder / WEIGHTS_FILE}: cannot load the adapter weights ({exc})") from None
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_grams(folder: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = Path(folder) / GRAMS_FILE
    if not path.is_file():
        raise ConfigError(f"{folder}: no {GRAMS_FILE}; fusion needs the Gram matrices an EUL run saves")
    return load_file(str(path))


def _augmented(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)], -1)


@torch.no_grad()
def collect_grams(model: Any, batches: Iterable[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Per adapter, ``X^T X`` of its down-projection's inputs and ``Z^T Z`` of its up-projection's
    inputs (``Z = relu(down(X))``), each with a ones column for the bias, over the non-padding
    tokens of ``batches`` (``input_ids``/``attention_mask``); ``tokens`` counts them. fp32, on CPU."""
    adapters = adapters_of(model)
    grams: dict[str, torch.Tensor] = {}
    mask_holder: dict[str, torch.Tensor] = {}
    handles = []

    def accumulate(key: str, x: torch.Tensor) -> None:
        rows = _augmented(x.float().reshape(-1, x.shape[-1])[mask_holder["mask"]])
        gram = rows.T @ rows
        grams[key] = grams[key] + gram.cpu() if key in grams else gram.cpu()

    for name, adapter in adapters.items():
        def down_hook(module, args, output, name=name):
            accumulate(f"{name}.down", args[0])
            accumulate(f"{name}.up", torch.relu(output))
        handles.append(adapter.down.register_forward_hook(down_hook))
    was_training = model.training
    model.eval()
    tokens = 0
    try:
        device = next(model.parameters()).device
        for batch in batches:
            mask = batch["attention_mask"].to(device)
            mask_holder["mask"] = mask.reshape(-1).bool()
            tokens += int(mask.sum())
            model(input_ids=batch["input_ids"].to(device), attention_mask=mask)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    grams["tokens"] = torch.tensor([tokens], dtype=torch.float64)
    return grams
