"""Membership inference on the forget set against never-trained holdout data (MUSE's privleak).

Per item, every score of :mod:`obliviate.metrics.mia` (LOSS, ZLib, Min-K%, Min-K%++, GradNorm and,
given a reference model's numbers, Reference) over the answer tokens; then, per score, the AUC of
forget vs holdout (≈ 1: the forget set still looks trained on; a retain model sits near 0.5) and
privleak of the Min-K% AUC relative to the retain model's (open-unlearning's form; 0 = like the
retain model). Scores are computed in float32 whatever the model dtype.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from obliviate import metrics
from obliviate.data.encoding import encode_pair, pad_batch
from obliviate.logprobs import token_nll

SCORES = ("loss", "zlib", "min_k", "min_k++", "gradnorm", "reference")


def item_scores(avg_nll: Sequence[float], answers: Sequence[str], token_logps: Sequence[Sequence[float]],
                mu: Sequence[Sequence[float]], sigma: Sequence[Sequence[float]], k: float = 0.4,
                gradnorms: Sequence[float] | None = None) -> list[dict[str, float]]:
    """The per-item MIA scores of one split (higher = less member-like)."""
    columns = {"loss": metrics.loss_score(avg_nll), "zlib": metrics.zlib_score(avg_nll, answers),
               "min_k": metrics.min_k_score(token_logps, k),
               "min_k++": metrics.min_k_plus_plus_score(token_logps, mu, sigma, k)}
    if gradnorms is not None:
        columns["gradnorm"] = np.asarray(gradnorms, dtype=float)
    return [{name: float(values[i]) for name, values in columns.items()} for i in range(len(avg_nll))]


def gradient_norms(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], max_length: int = 512) -> list[float]:
    """GradNorm score per pair (batch 1, as open-unlearning): mean over parameter tensors of the
    2-norm of the gradient of the mean answer NLL. Gradients are cleared afterwards."""
    params = [p for p in model.parameters() if p.requires_grad] or list(model.parameters())
    flags = [p.requires_grad for p in model.parameters()]
    for p in params:
        p.requires_grad_(True)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for q, a in pairs:
            batch = pad_batch([encode_pair(tokenizer, q, a, max_length=max_length).as_dict()], tokenizer.pad_token_id)
            model.zero_grad(set_to_none=True)
            logits = model(input_ids=batch["input_ids"].to(device),
                           attention_mask=batch["attention_mask"].to(device)).logits
            nll, mask = token_nll(logits, batch["labels"].to(device))
            (nll.sum() / mask.sum().clamp_min(1)).backward()
            norms = [float(p.grad.float().norm(2)) for p in params if p.grad is not None]
            out.append(float(metrics.gradnorm_score([norms])[0]) if norms else 0.0)
    finally:
        model.zero_grad(set_to_none=True)
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(was_training)
    return out


def add_reference_scores(items: list[dict], reference_items: Sequence[Mapping]) -> None:
    """Reference score = item avg NLL − the reference (retain) model's avg NLL on the same item."""
    by_index = {r.get("index", n): r for n, r in enumerate(reference_items)}
    pairs = [(item, by_index.get(item.get("index"))) for item in items]
    pairs = [(item, ref) for item, ref in pairs if ref is not None and ref.get("avg_nll") is not None]
    if len(pairs) != len(items):  # the reference scored other items (or excluded some): no Reference score
        return
    ref = metrics.reference_score([i["avg_nll"] for i, _ in pairs], [r["avg_nll"] for _, r in pairs])
    for (item, _), value in zip(pairs, ref):
        item["mia"]["reference"] = float(value)


def mia_summary(forget: Sequence[Mapping], holdout: Sequence[Mapping],
                reference_auc_min_k: float | None) -> dict[str, float]:
    """AUC of forget vs holdout for every score both splits have, and privleak (Min-K%)."""
    out: dict[str, float] = {}
    forget = [i for i in forget if "excluded" not in i]  # items without answer tokens have no score
    holdout = [i for i in holdout if "excluded" not in i]
    if not forget or not holdout:
        return out
    for name in SCORES:
        if all(name in i.get("mia", {}) for i in forget) and all(name in i.get("mia", {}) for i in holdout):
            out[f"mia_auc_{name}"] = metrics.mia_auc([i["mia"][name] for i in forget],
                                                     [i["mia"][name] for i in holdout])
    if "mia_auc_min_k" in out:
        ref = 0.5 if reference_auc_min_k is None else reference_auc_min_k
        ref = min(max(ref, 1e-6), 1 - 1e-6)
        out["privleak"] = metrics.privleak(out["mia_auc_min_k"], ref)
        out["privleak_reference_auc"] = ref
    return out
