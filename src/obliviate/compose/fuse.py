"""Closed-form fusion of EUL unlearning adapters, one per deletion request (EUL, arXiv 2310.20150,
§2.4 of the spec), so that a model honours several requests with one adapter and no data.

For one linear map with weights ``W_i`` (bias as the last input row) trained for request i, and
``G_i = X_i^T X_i`` the Gram matrix of its inputs on that request's forget set, the fused map
minimises ``Σ_i ||X_i W − X_i W_i||² + ε Σ_i ||W − W_i||²``:

    W = (Σ_i G_i + n·ε·I)^{-1} (Σ_i G_i W_i + ε Σ_i W_i)

(RegMean's regression, the paper's formula). The ridge pulls directions no request's data covers
towards the adapters' mean rather than to zero, so fusing one adapter returns it exactly and
fusion is exact for linear maps whose data determines them; ``ε = ridge × mean diagonal of
Σ G_i``.

The adapter is two maps with a ReLU between them, for which no closed form is exact. We fuse
each map on its own inputs: the down-projection with the Grams of the adapter's inputs, the
up-projection with each adapter's own post-ReLU activations. This needs the hidden units of the
adapters to correspond, which holds because every adapter starts from the same ``init_seed``
(fusion refuses adapters with different ones). The fused folder keeps ``Σ G_i``, so fusing it
again with a later request's adapter equals fusing all of them at once (up to the ridge).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from obliviate.errors import ConfigError


def fuse_linear(weights: Sequence[torch.Tensor], grams: Sequence[torch.Tensor], ridge: float = 1e-3) -> torch.Tensor:
    """Fuse ``[in, out]`` weight matrices given each one's ``[in, in]`` input Gram (fp64 solve)."""
    if not weights or len(weights) != len(grams):
        raise ValueError("fuse_linear needs one Gram per weight matrix, and at least one")
    w = [x.double() for x in weights]
    g = [x.double() for x in grams]
    total = sum(g)
    eps = ridge * float(total.diagonal().mean().clamp_min(1e-12))
    lhs = total + len(w) * eps * torch.eye(total.shape[0], dtype=total.dtype)
    rhs = sum(gi @ wi for gi, wi in zip(g, w)) + eps * sum(w)
    return torch.linalg.solve(lhs, rhs)


def _as_matrix(state: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """nn.Linear weight ``[out, in]`` and bias ``[out]`` as one ``[in + 1, out]`` matrix."""
    return torch.cat([state[f"{prefix}.weight"].T, state[f"{prefix}.bias"][None]], 0)


def fuse_states(states: Sequence[dict[str, torch.Tensor]], grams: Sequence[dict[str, torch.Tensor]],
                modules: Sequence[str], ridge: float = 1e-3) -> dict[str, torch.Tensor]:
    """Fused adapter weights, for adapters on the same ``modules`` with the Grams to regress on."""
    fused: dict[str, torch.Tensor] = {}
    for module in modules:
        for part in ("down", "up"):
            prefix = f"{module}.{part}"
            matrix = fuse_linear([_as_matrix(s, prefix) for s in states], [g[prefix] for g in grams], ridge)
            dtype = states[0][f"{prefix}.weight"].dtype
            fused[f"{prefix}.weight"] = matrix[:-1].T.to(dtype).contiguous()
            fused[f"{prefix}.bias"] = matrix[-1].to(dtype).contiguous()
    return fused


def summed_grams(grams: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Every Gram (forget and retain) summed over the adapters: what the fused adapter stores, so
    fusing it again with a later request equals fusing all at once."""
    keys = set.intersection(*(set(g) for g in grams))
    return {k: sum(g[k] for g in grams) for k in sorted(keys)}


GRAM_DATA = ("forget", "forget+retain")


def select_grams(grams: dict[str, torch.Tensor], data: str, where: str) -> dict[str, torch.Tensor]:
    """The Grams fusion regresses on: the forget set's, or forget + retain (the ``retain.`` keys)."""
    forget = {k: v for k, v in grams.items() if not k.startswith("retain.")}
    if data == "forget":
        return forget
    if not any(k.startswith("retain.") for k in grams):
        raise ConfigError(f"{where}: has no retain Grams (trained without retain data); use --grams forget")
    return {k: v + grams[f"retain.{k}"] if f"retain.{k}" in grams else v for k, v in forget.items()}


def fuse_folders(folders: Sequence[str | Path], out: str | Path, ridge: float = 1e-3,
                 grams: str = "forget") -> dict:
    """Fuse saved EUL adapters (run folders or their ``model/``) into a new adapter folder ``out``
    with the union of their request ledgers, regressing on each adapter's forget-set inputs
    (``grams="forget"``, the paper) or on its forget and paired retain inputs
    (``"forget+retain"``, which also keeps each adapter's behaviour on retained data). Returns
    what was done."""
    from safetensors.torch import load_file

    from obliviate.io import atomic_directory
    from obliviate.ledger import merge_ledgers, read_ledger, write_ledger
    from obliviate.models.bottleneck import (WEIGHTS_FILE, AdapterSpec, is_adapter_folder, load_grams, read_spec,
                                             save_adapter_folder)
    from obliviate.models.loading import load_tokenizer

    if not folders:
        raise ConfigError("fuse: give at least one adapter folder")
    resolved = []
    for folder in folders:
        path = Path(folder)
        if not is_adapter_folder(path) and is_adapter_folder(path / "model"):
            path = path / "model"
        if not is_adapter_folder(path):
            raise ConfigError(f"{folder}: not an EUL adapter folder (no eul_adapter.json); give the output of a run "
                              "with scope: eul")
        resolved.append(path)
    if ridge < 0:
        raise ConfigError(f"--ridge must be >= 0, got {ridge}")
    if grams not in GRAM_DATA:
        raise ConfigError(f"--grams must be one of {', '.join(GRAM_DATA)}, got {grams!r}")
    specs = [read_spec(p) for p in resolved]
    first = specs[0]
    for path, spec in zip(resolved[1:], specs[1:]):
        for what in ("base", "modules", "hidden_size", "bottleneck", "init_seed"):
            if getattr(spec, what) != getattr(first, what):
                raise ConfigError(f"{path}: its {what} ({getattr(spec, what)!r}) differs from {resolved[0]}'s "
                                  f"({getattr(first, what)!r}); fusion needs adapters made the same way on one base")
    states = [load_file(str(p / WEIGHTS_FILE)) for p in resolved]
    raw = [load_grams(p) for p in resolved]
    fused = fuse_states(states, [select_grams(g, grams, str(p)) for g, p in zip(raw, resolved)], first.modules, ridge)
    summed = summed_grams(raw)
    ledger = merge_ledgers([read_ledger(p) for p in resolved])
    spec = AdapterSpec(modules=first.modules, hidden_size=first.hidden_size, bottleneck=first.bottleneck,
                       init_seed=first.init_seed, base=first.base,
                       info={"fused_from": [str(p) for p in resolved], "ridge": ridge, "grams": grams})
    with atomic_directory(Path(out)) as tmp:  # the API has refused an existing ``out``
        save_adapter_folder(tmp, spec, fused, summed)
        write_ledger(tmp, ledger)
        load_tokenizer(resolved[0]).save_pretrained(tmp)
    return {"adapters": len(resolved), "modules": len(first.modules), "requests": len(ledger), "ridge": ridge,
            "grams": grams, "out": str(out)}
