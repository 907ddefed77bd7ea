"""Named methods: presets over the four axes (objective, scope, schedule, composition).

A method only fills the axes; a recipe can change any of them (``objective: npo, scope: lora``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from obliviate.errors import ConfigError


@dataclass(frozen=True)
class Method:
    name: str
    description: str
    source: str
    objective: dict[str, Any]
    scope: dict[str, Any] = field(default_factory=lambda: {"name": "full"})
    schedule: dict[str, Any] = field(default_factory=lambda: {"name": "epochs"})
    composition: dict[str, Any] = field(default_factory=lambda: {"name": "direct"})

    def sections(self) -> dict[str, dict[str, Any]]:
        return {"objective": dict(self.objective), "scope": dict(self.scope),
                "schedule": dict(self.schedule), "composition": dict(self.composition)}


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("ga", "gradient ascent on the forget set", "TOFU (arXiv 2401.06121)", {"name": "ga"}),
    Method("graddiff", "gradient ascent on forget + NLL on retain", "TOFU (arXiv 2401.06121)",
           {"name": "graddiff"}),
    Method("kl", "gradient ascent on forget + KL to the original model on retain",
           "TOFU (arXiv 2401.06121)", {"name": "kl"}),
    Method("npo", "negative preference optimisation + NLL on retain", "NPO (arXiv 2404.05868)",
           {"name": "npo"}),
    Method("simnpo", "reference-free, length-normalised NPO + NLL on retain", "SimNPO (arXiv 2410.07163)",
           {"name": "simnpo"}),
    Method("idkdpo", "DPO preferring an 'I don't know' answer + NLL on retain", "TOFU (arXiv 2401.06121)",
           {"name": "idkdpo"}),
    Method("wagle", "NPO + NLL on retain, updating only the top 95% of weights by WAGLE attribution",
           "WAGLE (arXiv 2410.17509)", {"name": "npo"}, scope={"name": "wagle", "ratio": 0.95}),
    Method("icu", "ascent on targets + LM/KL on nearest neighbours, re-checking targets every epoch",
           "ICU (arXiv 2407.20271)", {"name": "icu"}, schedule={"name": "icu"}),
    Method("uld", "an assistant (first K layers + LoRA r 32) learns the forget set; answer = base - 0.75 x assistant",
           "ULD (arXiv 2406.08607), paper settings", {"name": "uld", "retain_weight": 6.5},
           scope={"name": "assistant", "r": 32, "alpha": 32},
           composition={"name": "logit_diff", "alpha": 0.75, "rho": 0.01}),
    Method("uld-code", "ULD with the reference code's settings (LoRA r 16, w_r 5, alpha 0.8)",
           "ULD repository (UCSB-NLP-Chang/ULD)", {"name": "uld", "retain_weight": 5.0},
           scope={"name": "assistant", "r": 16, "alpha": 32},
           composition={"name": "logit_diff", "alpha": 0.8, "rho": 0.01}),
    Method("eul", "bottleneck adapters after every FFN; KL to the teacher + NLL on retain epochs, bounded "
           "-KL - 0.2 NLL on forget epochs", "EUL (arXiv 2310.20150), paper weights",
           {"name": "eul"}, scope={"name": "eul"}, schedule={"name": "alternating"}),
    Method("offset", "NPO + NLL on retain through target + (assistant - frozen assistant) logits",
           "Offset unlearning (arXiv 2404.11045), ULD repository's version", {"name": "npo"},
           scope={"name": "offset"}),
]}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ConfigError(f"method {name!r} is unknown; available: {', '.join(sorted(METHODS))} "
                          "(see `obliviate methods`)")
    return METHODS[name]
