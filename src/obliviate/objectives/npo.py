"""Negative Preference Optimisation (NPO, arXiv 2404.05868) and SimNPO (arXiv 2410.07163).

NPO: ``-(2/β) · mean logσ(-β (log π_θ(y|x) - log π_ref(y|x)))`` with sequence **sums** of answer
log-probs; π_ref's log-probs are computed once before training, so no second model is held in
memory. SimNPO drops the reference: ``-(2/β) · mean logσ(β (NLL_sum/|y| - δ))``.
Defaults: NPO β = 0.1, α = γ = 1 with a retain NLL term; SimNPO β = 4.5, δ = 0, γ = 0.125, α = 1
(open-unlearning configs, which follow the papers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from obliviate.objectives.base import OBJECTIVES, Objective, ObjectiveConfig
from obliviate.validation import option


@dataclass
class NPOConfig(ObjectiveConfig):
    beta: float = option(0.1, gt=0, hint="the loss divides by beta")


@dataclass
class SimNPOConfig(NPOConfig):
    beta: float = 4.5
    delta: float = option(0.0, ge=0, hint="SimNPO's reward margin")
    forget_weight: float = 0.125


@OBJECTIVES.register("npo")
class NPO(Objective):
    """Negative preference optimisation against precomputed reference log-probs."""

    Config = NPOConfig
    reference_logps = ("forget",)

    def forget_term(self, stats, batch):
        log_ratio = stats["forget"].sum_logp - batch["ref_logps"]["forget"]
        beta = self.config.beta
        return -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()


@OBJECTIVES.register("simnpo")
class SimNPO(Objective):
    """Reference-free NPO on the length-normalised forget NLL."""

    Config = SimNPOConfig

    def forget_term(self, stats, batch):
        f = stats["forget"]
        avg_nll = -f.sum_logp / f.n_tokens.clamp_min(1)
        beta = self.config.beta
        return -(2.0 / beta) * F.logsigmoid(beta * (avg_nll - self.config.delta)).mean()
