"""ICU's objective: gradient ascent on the targets, language modelling and KL retention on each
target's nearest neighbour (Iterative Contrastive Unlearning, arXiv 2407.20271, spec §3.2):

    L = −uw·NLL(targets) + lw·NLL(neighbours) + kl·KL(p_ref ‖ p_θ) on the neighbours

with uw = 1.0, lw = 0.5, kl = 1.0 (the reference scripts' defaults). Each forget item is paired
with its nearest retain item by sentence embedding (see ``obliviate.data.neighbours``), so the
``neighbour`` group is row-aligned with ``forget``.

The reference model is the frozen model before unlearning, or the base with the adapter disabled
under LoRA: never a stored full-vocabulary tensor (the reference precomputes 128×200×50257 floats,
~5 GB). The KL is averaged over the neighbour's scored tokens, not over every position including
left padding as the reference does. Combine with the ``icu`` schedule for the full method; with
the ``epochs`` schedule it is ICU's loss at a fixed length.
"""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.models.embedding import _KINDS as EMBEDDERS
from obliviate.objectives.base import OBJECTIVES, Objective, ObjectiveConfig, kl_to_reference
from obliviate.validation import option


@dataclass
class ICUObjectiveConfig(ObjectiveConfig):
    forget_weight: float = 1.0
    neighbour_weight: float = option(0.5, ge=0)
    kl_weight: float = option(1.0, ge=0)
    retain_loss: str = "none"
    embedder: str = option("auto", choices=EMBEDDERS)


@OBJECTIVES.register("icu")
class ICUObjective(Objective):
    """Ascent on targets + NLL and KL-to-reference on their nearest retained neighbours."""

    Config = ICUObjectiveConfig
    extra_groups = ("neighbour",)

    @property
    def needs_reference_model(self) -> bool:
        return self.config.kl_weight != 0 or super().needs_reference_model

    def forget_term(self, stats, batch):
        return -stats["forget"].mean_nll()

    def extra_terms(self, stats, batch, reference):
        neighbour = stats["neighbour"]
        lm = neighbour.mean_nll()
        loss = self.config.neighbour_weight * lm
        logs = {"neighbour_nll": float(lm.detach())}
        if self.config.kl_weight:
            if reference.model_logits is None:
                raise RuntimeError("the ICU KL term needs a reference model")
            kl = kl_to_reference(neighbour, reference.model_logits(batch["neighbour"]))
            loss = loss + self.config.kl_weight * kl
            logs["neighbour_kl"] = float(kl.detach())
        return loss, logs
