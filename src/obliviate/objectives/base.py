"""The objective axis: a forget term plus a retain term, each weighted.

An objective is called as ``objective(model, batch, reference) -> (loss, logs)``. ``batch`` holds
one padded group per role (``forget``, ``retain`` and, for preference objectives, ``forget_idk``);
groups of similar length are padded to one length by the collator and go through one forward pass.
``reference`` gives what the objective needs from the model before unlearning: per-sequence
log-probs computed once before training (NPO, DPO) or a frozen model (the KL retain term).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal

import torch
import torch.nn.functional as F

from obliviate.logprobs import token_nll
from obliviate.registry import Registry
from obliviate.validation import option

RETAIN_LOSSES = ("nll", "kl", "none")
FORGET_TOKENS = ("answer", "fact")


@dataclass
class ObjectiveConfig:
    """Options every objective shares.

    ``forget_tokens="fact"`` restricts the forget term to the tokens of the fact value in each
    answer (records must carry ``fact_span``). It exists because, on small models, pushing down
    the sentence frame that forget and retain answers share destroys the retain set too.
    """

    # A weight of 0 turns its term off; a negative one would flip descent into ascent.
    forget_weight: float = option(1.0, ge=0)
    retain_weight: float = option(1.0, ge=0)
    retain_loss: Literal["nll", "kl", "none"] = option("nll", choices=RETAIN_LOSSES)
    forget_tokens: Literal["answer", "fact"] = option("answer", choices=FORGET_TOKENS)


@dataclass
class Reference:
    """What an objective may read from the model before unlearning.

    ``model_logits(batch)`` returns the reference logits for a batch (a frozen copy, or the base
    with adapters disabled); it is only set when the objective asked for it.
    """

    model_logits: Callable[[dict[str, torch.Tensor]], torch.Tensor] | None = None


#: key of a group's batch entry holding its answer-token count per process over the whole global
#: batch (set by the trainer in multi-process runs; see :meth:`GroupStats.token_mean`)
TOKEN_NORM = "token_norm"
#: the same for the group's attended (non-pad) positions and for all its positions, padding included
#: (ULD's uniform term averages over those)
ATTENDED_NORM = "attended_norm"
POSITIONS_NORM = "positions_norm"


@dataclass
class GroupStats:
    """Per-sequence answer statistics of one group from the shared forward pass.

    ``token_norm``: in a multi-process run, the group's answer tokens over all processes divided
    by their number, so that a token mean here, averaged over processes by DDP, is the token mean
    over the global batch (as one process with the whole batch computes it)."""

    logits: torch.Tensor
    labels: torch.Tensor
    token_nll: torch.Tensor
    mask: torch.Tensor
    token_norm: torch.Tensor | None = None

    def token_mean(self, values: torch.Tensor) -> torch.Tensor:
        """Sum of per-token ``values`` over the group's answer tokens, divided by their count."""
        count = self.token_norm if self.token_norm is not None else self.mask.sum()
        return values.sum() / count.clamp_min(1)

    @property
    def sum_logp(self) -> torch.Tensor:
        return -self.token_nll.sum(-1)

    @property
    def n_tokens(self) -> torch.Tensor:
        return self.mask.sum(-1)

    def mean_nll(self) -> torch.Tensor:
        """Token-mean NLL over the whole group (the usual LM loss)."""
        return self.token_mean(self.token_nll)


def forward_groups(model: Any, batch: dict[str, Any], groups: list[str]) -> dict[str, GroupStats]:
    """Run ``groups`` of ``batch`` through ``model``: one concatenated forward pass per padded
    length (the collator pads groups of similar length to one length)."""
    by_length: dict[int, list[str]] = {}
    for g in groups:
        by_length.setdefault(batch[g]["input_ids"].shape[1], []).append(g)
    out = {}
    for shared in by_length.values():
        ids = torch.cat([batch[g]["input_ids"] for g in shared])
        attn = torch.cat([batch[g]["attention_mask"] for g in shared])
        logits = model(input_ids=ids, attention_mask=attn).logits
        start = 0
        for g in shared:
            n = batch[g]["input_ids"].shape[0]
            lg, labels = logits[start:start + n], batch[g]["labels"]
            nll, mask = token_nll(lg, labels)
            out[g] = GroupStats(lg, labels, nll, mask, batch[g].get(TOKEN_NORM))
            start += n
    return {g: out[g] for g in groups}


def token_kl(stats: GroupStats, ref_logits: torch.Tensor) -> torch.Tensor:
    """KL(reference ‖ model) at each answer position (``[batch, length - 1]``, 0 off the answer)."""
    logp = F.log_softmax(stats.logits[:, :-1].float(), -1)
    ref_logp = F.log_softmax(ref_logits[:, :-1].float(), -1)
    return F.kl_div(logp, ref_logp, reduction="none", log_target=True).sum(-1) * stats.mask


def kl_to_reference(stats: GroupStats, ref_logits: torch.Tensor) -> torch.Tensor:
    """KL(reference ‖ model) per answer token, averaged over answer tokens.

    open-unlearning averages over every position of the flattened batch, padding and prompt
    included; we average over the answer tokens the retain term is about.
    """
    return stats.token_mean(token_kl(stats, ref_logits))


class Objective:
    """Base class: subclasses set ``Config`` and implement :meth:`forget_term`."""

    name: ClassVar[str]
    Config: ClassVar[type[ObjectiveConfig]] = ObjectiveConfig
    #: per-sequence reference log-probs the trainer must precompute, by group name
    reference_logps: ClassVar[tuple[str, ...]] = ()
    #: extra groups the dataset must provide (e.g. an "I don't know" answer per forget item)
    extra_groups: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ObjectiveConfig):
        self.config = config

    @property
    def needs_reference_model(self) -> bool:
        return self.config.retain_loss == "kl" and self.config.retain_weight != 0

    def groups(self) -> list[str]:
        retain = [] if self.config.retain_loss == "none" or self.config.retain_weight == 0 else ["retain"]
        return ["forget", *self.extra_groups, *retain]

    def forget_term(self, stats: dict[str, GroupStats], batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def extra_terms(self, stats: dict[str, GroupStats], batch: dict[str, Any],
                    reference: Reference) -> tuple[torch.Tensor | float, dict[str, float]]:
        """Weighted terms on the extra groups (e.g. ICU's neighbours), added to the loss."""
        return 0.0, {}

    def __call__(self, model: Any, batch: dict[str, Any], reference: Reference) -> tuple[torch.Tensor, dict[str, float]]:
        # A schedule may serve batches of one role only (EUL's alternating epochs): each term
        # applies to the groups the batch has.
        stats = forward_groups(model, batch, [g for g in self.groups() if g in batch])
        loss, logs = torch.zeros((), device=next(iter(stats.values())).logits.device), {}
        if "forget" in stats:
            forget = self.forget_term(stats, batch)
            loss = self.config.forget_weight * forget
            logs = {"forget_loss": float(forget.detach()),
                    "forget_nll": float(stats["forget"].mean_nll().detach())}
        if "retain" in stats and self.config.retain_loss != "none":
            if self.config.retain_loss == "kl":
                if reference.model_logits is None:
                    raise RuntimeError("the KL retain term needs a reference model")
                retain = kl_to_reference(stats["retain"], reference.model_logits(batch["retain"]))
            else:
                retain = stats["retain"].mean_nll()
            loss = loss + self.config.retain_weight * retain
            logs["retain_loss"] = float(retain.detach())
        if "forget" not in stats:
            return loss, logs
        extra, extra_logs = self.extra_terms(stats, batch, reference)
        return loss + extra, {**logs, **extra_logs}


OBJECTIVES: Registry[Objective] = Registry("objective")
