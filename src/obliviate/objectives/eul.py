"""EUL's selective teacher-student objective (Chen & Yang, EMNLP 2023, arXiv 2310.20150, spec §2.3).

The teacher is the model before unlearning (the base with the adapters off under the ``eul``
scope, a frozen copy under ``full``). On retained data the student stays close to the teacher and
keeps its task; on forget data it moves away from the teacher and its language-model likelihood
falls:

    retain:  α·KL(teacher ‖ student) + λ·NLL          (α = kl_weight 0.8, λ = retain_weight 1.0)
    forget: −w·KL(teacher ‖ student) − γ·NLL          (w = forget_weight 1.0, γ = lm_weight 0.2)

α, λ and γ are the paper's values. With the ``alternating`` schedule a batch holds one role and
only its terms apply (the paper's retain epoch / forget epoch); with ``epochs`` both apply to
every paired batch.

Adaptations, documented:
- The paper's LM term is T5's masked-LM loss on the forget inputs; for a causal LM it is the
  causal NLL of the forget answer (or passage) tokens.
- **Bounded ascent (our addition).** The paper's forget terms are unbounded and can diverge. Each
  forget sequence's KL and NLL (token means) are capped at ``bound`` nats, ``log V`` by default
  (the NLL of a uniform guess over the vocabulary: a model that knows nothing of the answer): a
  sequence past the cap stops pushing, so the loss is bounded below.
- KL is averaged over the answer tokens, as in the other KL terms of this library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from obliviate.objectives.base import OBJECTIVES, Objective, ObjectiveConfig, Reference, forward_groups, token_kl
from obliviate.validation import option


@dataclass
class EULObjectiveConfig(ObjectiveConfig):
    kl_weight: float = option(0.8, ge=0)
    lm_weight: float = option(0.2, ge=0)
    bound: float = option(0.0, ge=0)  # per-sequence cap of each forget term, nats; 0 = log(vocabulary size)
    retain_loss: str = option("nll", choices=("nll",),
                              hint="EUL's retain task term is the NLL; set retain_weight=0 to drop it")


@OBJECTIVES.register("eul")
class EULObjective(Objective):
    """Selective teacher-student: KL to the teacher + NLL on retain, bounded −KL − γ·NLL on forget."""

    Config = EULObjectiveConfig

    @property
    def needs_reference_model(self) -> bool:
        return True

    def groups(self) -> list[str]:
        return ["forget", "retain"]

    def __call__(self, model: Any, batch: dict[str, Any], reference: Reference) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        names = [g for g in ("forget", "retain") if g in batch]
        stats = forward_groups(model, batch, names)
        if reference.model_logits is None:
            raise RuntimeError("EUL's KL terms need the teacher (the model before unlearning)")
        loss = torch.zeros((), device=stats[names[0]].logits.device)
        logs: dict[str, float] = {}
        for name in names:
            group = stats[name]
            kl = token_kl(group, reference.model_logits(batch[name]))
            if name == "retain":
                kl_mean, nll = group.token_mean(kl), group.mean_nll()
                loss = loss + cfg.kl_weight * kl_mean + cfg.retain_weight * nll
                logs.update(retain_kl=float(kl_mean.detach()), retain_loss=float(nll.detach()))
                continue
            tokens = group.n_tokens.clamp_min(1)
            bound = cfg.bound or math.log(group.logits.shape[-1])
            kl_seq = (kl.sum(-1) / tokens).clamp(max=bound)
            nll_seq = (group.token_nll.sum(-1) / tokens).clamp(max=bound)
            forget = -(cfg.forget_weight * kl_seq.mean() + cfg.lm_weight * nll_seq.mean())
            loss = loss + forget
            logs.update(forget_loss=float(forget.detach()), forget_kl=float(kl_seq.mean().detach()),
                        forget_nll=float(group.mean_nll().detach()),
                        forget_capped=float((kl_seq >= bound).float().mean().detach()))
        return loss, logs
