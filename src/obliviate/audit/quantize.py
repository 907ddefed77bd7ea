"""Weight-only round-to-nearest quantisation, applied exactly in floating point ("fake" quantisation).

Why written here: the attack needs the *numbers* a quantised deployment computes with, on CPU and
on any architecture (composed ULD/Offset models, EUL adapters included), not memory savings.
optimum-quanto and bitsandbytes quantise only some module types and need their own kernels (or a
GPU); dequantising ``round(w / s) · s`` back into the float weight gives the same logits as a
round-to-nearest kernel, up to float rounding. Zhang et al. (ICLR 2025, arXiv 2410.16454) show
that 4-bit RTN of an unlearned model restores most of the forgotten knowledge: the unlearning
update is small next to the quantisation step, so both the target and the unlearned weights round
to the same grid points.

Schemes (the common deployment defaults):
- 8-bit: symmetric, one scale per output channel (``s = max|w| / 127``, codes in [-128, 127]);
- 4-bit: asymmetric with a zero point, one scale per group of 128 input weights
  (``s = (max − min) / 15`` over a range that includes 0, codes in [0, 15]), as GPTQ/AWQ's RTN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class QuantScheme:
    """``group_size`` input weights share a scale; 0: a whole output channel (row) shares one."""

    bits: int
    group_size: int = 0
    symmetric: bool = True

    def describe(self) -> str:
        group = "per output channel" if self.group_size == 0 else f"per group of {self.group_size}"
        return f"{self.bits}-bit {'symmetric' if self.symmetric else 'asymmetric'} round-to-nearest, {group}"


def fake_quantize(weight: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """``weight`` (out × in) rounded to the scheme's grid and mapped back to floats (same dtype)."""
    if weight.dim() != 2:
        raise ValueError(f"weight must be a matrix, got shape {tuple(weight.shape)}")
    rows, cols = weight.shape
    group = cols if scheme.group_size in (0, None) or scheme.group_size >= cols else scheme.group_size
    w = weight.detach().to(torch.float32)
    pad = (-cols) % group
    if pad:  # the last group is shorter: pad with zeros, which never widen a range that includes 0
        w = torch.cat([w, w.new_zeros(rows, pad)], dim=1)
    groups = w.reshape(rows, -1, group)
    if scheme.symmetric:
        qmax = 2 ** (scheme.bits - 1) - 1
        scale = groups.abs().amax(dim=-1, keepdim=True) / qmax
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        codes = torch.clamp(torch.round(groups / scale), -qmax - 1, qmax)
        out = codes * scale
    else:
        qmax = 2 ** scheme.bits - 1
        low = groups.amin(dim=-1, keepdim=True).clamp(max=0)
        high = groups.amax(dim=-1, keepdim=True).clamp(min=0)
        scale = (high - low) / qmax
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
        zero = torch.round(-low / scale)
        codes = torch.clamp(torch.round(groups / scale) + zero, 0, qmax)
        out = (codes - zero) * scale
    out = out.reshape(rows, -1)[:, :cols]
    return out.to(weight.dtype)


def _output_heads(model: nn.Module) -> set[int]:
    """The output embedding(s): kept in full precision, as quantised deployments keep ``lm_head``."""
    heads = set()
    for module in model.modules():
        getter = getattr(module, "get_output_embeddings", None)
        if callable(getter):
            try:
                head = getter()
            except (NotImplementedError, AttributeError):
                head = None
            if isinstance(head, nn.Module):
                heads.add(id(head))
    return heads


@torch.no_grad()
def quantize_model(model: nn.Module, scheme: QuantScheme) -> dict[str, Any]:
    """Quantise, in place, the weight of every linear layer but the output head (biases,
    embeddings and norms stay in floats). Returns what was done."""
    heads = _output_heads(model)
    layers, weights, seen = 0, 0, set()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and id(module) not in heads and not name.endswith("lm_head"):
            if id(module.weight) in seen:  # a weight shared by two modules is rounded once
                continue
            seen.add(id(module.weight))
            module.weight.copy_(fake_quantize(module.weight, scheme))
            layers += 1
            weights += module.weight.numel()
    return {"scheme": scheme.describe(), "layers": layers, "weights": weights}
