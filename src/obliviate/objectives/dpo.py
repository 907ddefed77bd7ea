"""IdkDPO: DPO with an "I don't know" answer preferred over the forget answer (TOFU, arXiv 2401.06121).

``-(2/β) · mean logσ(β [(log π_w - log π_ref,w) - (log π_l - log π_ref,l)])`` with w the IDK answer
and l the original answer, sequence-summed log-probs, reference log-probs precomputed once. The
IDK answers are the project's own list (``obliviate/resources/idk.txt``), one drawn per forget item
with the run's seed. Defaults: β = 0.1, α = γ = 1, retain NLL (open-unlearning configs).

Difference from the reference, kept on purpose: open-unlearning (like TOFU's code) draws a new IDK
answer each time an item is served, so every epoch pairs the item with another one; obliviate
draws one per item for the whole run. The reference log-probs are computed once before training,
so no second model stays in memory (and a LoRA run needs no adapter-disabled pass per step);
redrawing would need them for every IDK candidate of every item (30 times the reference pass) or
a resident reference model. The preferred answers are all refusals of the same kind, so the
objective pushes towards the same behaviour; what changes is that each item is tied to one
phrasing, which can make the unlearned model favour fewer refusal phrasings than the reference's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from obliviate.objectives.base import OBJECTIVES, Objective
from obliviate.objectives.npo import NPOConfig


@dataclass
class IdkDPOConfig(NPOConfig):
    beta: float = 0.1


@OBJECTIVES.register("idkdpo")
class IdkDPO(Objective):
    """DPO preferring an "I don't know" answer over the forget answer."""

    Config = IdkDPOConfig
    reference_logps = ("forget", "forget_idk")
    extra_groups = ("forget_idk",)

    def forget_term(self, stats, batch):
        ref = batch["ref_logps"]
        win = stats["forget_idk"].sum_logp - ref["forget_idk"]
        lose = stats["forget"].sum_logp - ref["forget"]
        beta = self.config.beta
        return -(2.0 / beta) * F.logsigmoid(beta * (win - lose)).mean()
