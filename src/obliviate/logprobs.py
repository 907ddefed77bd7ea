"""Answer log-probabilities from logits: the one quantity every objective and metric builds on."""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token NLL (zero where masked) and the mask, with the causal shift applied.

    Logits are cast to float32 first: bf16 log-softmax is too coarse for per-token scores.
    """
    logits = logits[:, :-1].float()
    labels = labels[:, 1:]
    mask = labels != IGNORE_INDEX
    nll = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)), labels.clamp_min(0).reshape(-1), reduction="none"
    ).view(labels.shape)
    return nll * mask, mask


def sequence_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed answer NLL per sequence and the number of answer tokens."""
    nll, mask = token_nll(logits, labels)
    return nll.sum(-1), mask.sum(-1)


def token_correct(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Whether the argmax equals the label at each answer position, and the mask."""
    labels_s = labels[:, 1:]
    mask = labels_s != IGNORE_INDEX
    return (logits[:, :-1].argmax(-1) == labels_s) & mask, mask


def token_logprob_stats(
    logits: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per shifted position: ``log p(label)``, ``mu``, ``sigma`` of ``log p`` under p, and the mask.

    The Min-K%++ statistics: ``mu_t = sum_v p_v log p_v`` and
    ``sigma_t = sqrt(sum_v p_v (log p_v)^2 - mu_t^2)`` describe how likely a typical next token is at
    that position, so a label's log-prob can be standardised against it. All float32 (bf16 is too
    coarse, spec 2.3); values are 0 where the mask is False. sigma is not floored here.
    """
    logp_v = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    labels = labels[:, 1:]
    mask = labels != IGNORE_INDEX
    p_v = logp_v.exp()
    finite = logp_v.masked_fill(torch.isneginf(logp_v), 0.0)  # p = 0 there; avoids 0 * -inf = nan
    mu = (p_v * finite).sum(-1)
    var = (p_v * finite.square()).sum(-1) - mu.square()
    sigma = var.clamp_min(0.0).sqrt()
    logp = logp_v.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return logp * mask, mu * mask, sigma * mask, mask
