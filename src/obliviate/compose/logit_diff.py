"""ULD's composition: the answer is the base model's logits minus α times the assistant's
(arXiv 2406.08607, spec §2.5):

    logits = l_base − α · l_assistant     (assistant logits zeroed outside the base's plausible set)

The plausible set is the base's relative top (p ≥ ρ·p_max, union the top ⌈ρ·V⌉ tokens); outside it
the base decides alone, so subtracting the assistant cannot promote an implausible token. In
decoding, tokens outside the set get −inf (the reference decoder multiplies scores by the keep
mask, so an excluded token wins whenever every kept score is negative: a bug, fixed here).
Defaults: α = 0.75, ρ = 0.01 (the paper's TOFU setting; the reference code's scripts use α = 0.8,
the ``uld-code`` preset). ``rho: null`` turns the filter off and combines log-probabilities
instead of raw logits, as the reference does then.

The composed model (:class:`obliviate.models.composed.ComposedCausalLM`) answers ``forward`` and
``generate`` like a plain causal LM, so the evaluator and every metric use it unchanged. It is saved
as the assistant adapter plus ``composition.json`` (α, ρ, the base's path and a fingerprint of the
copied layers) and loaded back by :func:`obliviate.models.loading.load_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obliviate.compose.base import COMPOSITIONS, Composition
from obliviate.errors import ConfigError
from obliviate.validation import option


@dataclass
class LogitDiffConfig:
    alpha: float = option(0.75, ge=0, hint="the assistant is subtracted")
    rho: float | None = option(0.01, gt=0, le=1, hint="null: no plausibility filter")


@COMPOSITIONS.register("logit_diff")
class LogitDiffComposition(Composition):
    """The base model's logits minus α times the trained assistant's (ULD)."""

    Config = LogitDiffConfig
    needs_separate_model = True

    def compose(self, trained: Any, base: Any | None = None) -> Any:
        from obliviate.models.composed import ComposedCausalLM

        if base is None or trained is base:
            raise ConfigError("composition logit_diff needs a scope that trains a separate model "
                              "(scope: assistant), not the base itself")
        return ComposedCausalLM(base, [(trained, -self.config.alpha)], rho=self.config.rho,
                                normalize=self.config.rho is None)

    def save(self, composed: Any, folder: Path, base_path: str, scope_info: dict[str, Any]) -> None:
        from obliviate.models.composed_io import write_composition

        write_composition(folder, {"type": "logit_diff", "alpha": self.config.alpha, "rho": self.config.rho,
                                   "base": base_path, "assistant": scope_info.get("assistant", {})})
