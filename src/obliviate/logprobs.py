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
