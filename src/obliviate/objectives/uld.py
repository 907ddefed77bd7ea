"""ULD's assistant objective, "remember + uniform" (arXiv 2406.08607, spec §2.4):

    L = NLL(forget answers) + w_r · mean over retain positions of KL(U ‖ p_assistant)

The forget term is *descended*: the small assistant learns the forget set, so that subtracting
its logits from the base model's (the ``logit_diff`` composition) removes exactly that knowledge;
on retain data it should know nothing (a uniform distribution), so that subtracting it changes
nothing there. KL(U‖p) = −log V − mean_v log p_v per position, computed with ``log_softmax``
(the reference's ``softmax(...).log()`` underflows to −inf in bf16).

Which retain positions count (``uniform_positions``): ``attended`` (default: every non-padding
token of the retain sequence, prompt included), ``answer`` (answer tokens only) or ``all``
(padding too, as the reference, which pads to 256 tokens so that most of its positions are pads;
with batch-dependent padding that makes the term's weight depend on the batch, hence not the
default). Defaults: w_r = 6.5 (paper App. B.5; the reference code uses 5.0, the ``uld-code``
preset). Forget and retain data are augmented (``obliviate.data.augment``) when records carry
paraphrased and perturbed answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from obliviate.objectives.base import ATTENDED_NORM, OBJECTIVES, POSITIONS_NORM, GroupStats, Objective, ObjectiveConfig
from obliviate.validation import option

POSITIONS = ("attended", "answer", "all")


@dataclass
class ULDConfig(ObjectiveConfig):
    retain_weight: float = 6.5
    retain_loss: str = "none"
    uniform_positions: str = option("attended", choices=POSITIONS)
    augment: bool = True


def uniform_kl(logits: torch.Tensor, mask: torch.Tensor, count: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over masked positions of KL(U ‖ softmax(logits)) = −log V − mean_v log p_v; ``count``
    replaces the number of masked positions (a multi-process run's count over the global batch)."""
    logp = F.log_softmax(logits.float(), dim=-1)
    per_position = -math.log(logits.shape[-1]) - logp.mean(-1)
    mask = mask.to(per_position.dtype)
    return (per_position * mask).sum() / (mask.sum() if count is None else count).clamp_min(1)


@OBJECTIVES.register("uld")
class ULDObjective(Objective):
    """ULD's assistant loss: remember the forget answers, be uniform on retain data."""

    Config = ULDConfig

    def groups(self) -> list[str]:
        return ["forget", "retain"] if self.config.retain_weight else ["forget"]

    def forget_term(self, stats, batch):
        return stats["forget"].mean_nll()

    def extra_terms(self, stats: dict[str, GroupStats], batch, reference):
        if "retain" not in stats:
            return 0.0, {}
        retain, group = stats["retain"], batch["retain"]
        # in a multi-process run the trainer gives each group its global counts (objectives.base)
        if self.config.uniform_positions == "answer":
            logits, mask, count = retain.logits[:, :-1], retain.mask, retain.token_norm
        elif self.config.uniform_positions == "all":
            logits, mask, count = retain.logits, torch.ones_like(group["attention_mask"]), group.get(POSITIONS_NORM)
        else:
            logits, mask, count = retain.logits, group["attention_mask"], group.get(ATTENDED_NORM)
        kl = uniform_kl(logits, mask, count)
        return self.config.retain_weight * kl, {"uniform_kl": float(kl.detach())}
