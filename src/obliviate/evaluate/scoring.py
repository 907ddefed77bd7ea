"""The two model passes every metric reads from: teacher-forced answer scores and greedy answers.

Both run batched and length-sorted (padding waste is what makes small-batch evaluation slow on
CPU), and both only call ``model(...)`` and ``model.generate(...)``, so a composed model (logit
difference, fused adapters) is evaluated exactly like a plain one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from obliviate.data.encoding import encode_pair, pad_batch, render_prompt
from obliviate.logprobs import sequence_nll, token_correct, token_logprob_stats
from obliviate.progress import progress


@dataclass
class PairScore:
    """Teacher-forced numbers for one (question, answer) pair."""

    sum_nll: float
    n_tokens: int
    token_correct: list[bool]
    #: per answer token: log p(label) and the Min-K%++ statistics (only with ``token_stats=True``)
    token_logps: list[float] | None = None
    token_mu: list[float] | None = None
    token_sigma: list[float] | None = None

    @property
    def avg_nll(self) -> float:
        return self.sum_nll / max(self.n_tokens, 1)


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def score_pairs(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], *, batch_size: int = 64,
                max_length: int = 512, desc: str = "scoring", show_progress: bool = True,
                token_stats: bool = False) -> list[PairScore]:
    """Teacher-forced NLL of each answer given its question, in one batched pass; with
    ``token_stats`` also per-token log-probs and their Min-K%++ statistics (membership inference)."""
    encoded = [encode_pair(tokenizer, q, a, max_length=max_length).as_dict() for q, a in pairs]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    results: list[PairScore | None] = [None] * len(encoded)
    was_training = model.training
    model.eval()
    device = _device(model)
    for start in progress(range(0, len(order), batch_size), desc=desc, disable=not show_progress):
        idx = order[start:start + batch_size]
        batch = pad_batch([encoded[i] for i in idx], tokenizer.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        sums, counts = sequence_nll(logits, batch["labels"])
        correct, mask = token_correct(logits, batch["labels"])
        stats = token_logprob_stats(logits, batch["labels"]) if token_stats else None
        for row, i in enumerate(idx):
            m = mask[row]
            results[i] = PairScore(float(sums[row]), int(counts[row]), correct[row][m].tolist())
            if stats is not None:
                results[i].token_logps = stats[0][row][m].tolist()
                results[i].token_mu = stats[1][row][m].tolist()
                results[i].token_sigma = stats[2][row][m].tolist()
    model.train(was_training)
    return results  # type: ignore[return-value]


@torch.no_grad()
def generate_answers(model: Any, tokenizer: Any, questions: Sequence[str], *, max_new_tokens: int = 32,
                     batch_size: int = 64, desc: str = "generating", show_progress: bool = True) -> list[str]:
    """Greedy answers, batched with left padding, cut at EOS."""
    prompts = [render_prompt(tokenizer, q) for q in questions]
    add_special = not getattr(tokenizer, "chat_template", None)
    encoded = [tokenizer(p, add_special_tokens=add_special)["input_ids"] for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    answers: list[str] = [""] * len(encoded)
    was_training = model.training
    model.eval()
    device = _device(model)
    for start in progress(range(0, len(order), batch_size), desc=desc, disable=not show_progress):
        idx = order[start:start + batch_size]
        batch = pad_batch([{"input_ids": encoded[i]} for i in idx], tokenizer.pad_token_id, side="left")
        out = model.generate(input_ids=batch["input_ids"].to(device),
                             attention_mask=batch["attention_mask"].to(device),
                             max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        new_tokens = out[:, batch["input_ids"].shape[1]:]
        for row, i in enumerate(idx):
            answers[i] = tokenizer.decode(new_tokens[row], skip_special_tokens=True).strip()
    model.train(was_training)
    return answers
