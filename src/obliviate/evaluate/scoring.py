"""The two model passes every metric reads from: teacher-forced answer scores and greedy answers.

Both run batched and length-sorted (padding waste is what makes small-batch evaluation slow on
CPU), and both only call ``model(...)`` and ``model.generate(...)``, so a composed model (logit
difference, fused adapters) is evaluated exactly like a plain one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from obliviate.data.encoding import IGNORE_INDEX, encode_pair, encode_prompt, pad_batch, template_of
from obliviate.data.templates import Shots
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
    def empty(self) -> bool:
        """No answer token was scored (the sequence was cut at ``max_length`` inside the prompt)."""
        return self.n_tokens == 0

    @property
    def avg_nll(self) -> float:
        """Mean answer-token NLL; NaN for an empty answer (never 0, which would read as certain)."""
        return self.sum_nll / self.n_tokens if self.n_tokens else float("nan")


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _scored(pair: Any, given: int = 0) -> dict[str, list[int]]:
    """A pair as scored: a long prompt loses its earliest tokens; an answer that alone does not fit
    ``max_length`` is not scored at all (no labels), so it is excluded and counted rather than
    scored on a cut answer. The first ``given`` answer tokens are read, not scored."""
    encoded = pair.as_dict()
    if pair.answer_cut:
        encoded["labels"] = [IGNORE_INDEX] * len(encoded["labels"])
    elif given:
        start = pair.prompt_tokens
        encoded["labels"][start:start + given] = [IGNORE_INDEX] * len(encoded["labels"][start:start + given])
    return encoded


def _per_pair(values: Sequence[Any] | None, n: int, empty: Any) -> list[Any]:
    if values is None:
        return [empty] * n
    if len(values) != n:
        raise ValueError(f"{len(values)} per-pair values for {n} pairs")
    return list(values)


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]], *, max_length: int = 512,
                 shots: Sequence[Shots] | None = None,
                 given: Sequence[int] | None = None) -> list[dict[str, list[int]]]:
    """Each (question, answer) pair as scored (see :func:`_scored`); encode once, score often."""
    shots, given = _per_pair(shots, len(pairs), ()), _per_pair(given, len(pairs), 0)
    return [_scored(encode_pair(tokenizer, q, a, max_length=max_length, shots=s), g)
            for (q, a), s, g in zip(pairs, shots, given)]


def _logits_by_length(model: Any, encoded: Sequence[dict[str, list[int]]], pad_id: int, batch_size: int,
                      desc: str = "scoring", show_progress: bool = False):
    """Yield ``(indices, batch, logits)`` over the encoded pairs in length-sorted batches, the model
    in eval mode meanwhile (restored after): the one forward loop every scorer here shares."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    was_training = model.training
    model.eval()
    device = _device(model)
    try:
        for start in progress(range(0, len(order), batch_size), desc=desc, disable=not show_progress):
            idx = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in pad_batch([encoded[i] for i in idx], pad_id).items()}
            yield idx, batch, model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    finally:
        model.train(was_training)


@torch.no_grad()
def answer_nlls(model: Any, encoded: Sequence[dict[str, list[int]]], pad_id: int, *,
                batch_size: int = 64) -> list[float]:
    """Mean answer-token NLL of each encoded pair (NaN where no answer token is scored): only the
    forward passes, for callers that score the same pairs repeatedly (a schedule's checks)."""
    out = [float("nan")] * len(encoded)
    for idx, batch, logits in _logits_by_length(model, encoded, pad_id, batch_size):
        sums, counts = sequence_nll(logits, batch["labels"])
        for row, i in enumerate(idx):
            if counts[row]:
                out[i] = float(sums[row]) / int(counts[row])
    return out


@torch.no_grad()
def score_pairs(model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], *, batch_size: int = 64,
                max_length: int = 512, desc: str = "scoring", show_progress: bool = True,
                token_stats: bool = False, shots: Sequence[Shots] | None = None,
                given: Sequence[int] | None = None) -> list[PairScore]:
    """Teacher-forced NLL of each answer given its question, in one batched pass; with
    ``token_stats`` also per-token log-probs and their Min-K%++ statistics (membership inference).
    Per pair, ``shots`` are worked examples before the question and ``given`` the number of the
    answer's first tokens placed in the prompt (only the rest is scored)."""
    encoded = encode_pairs(tokenizer, pairs, max_length=max_length, shots=shots, given=given)
    results: list[PairScore | None] = [None] * len(encoded)
    for idx, batch, logits in _logits_by_length(model, encoded, tokenizer.pad_token_id, batch_size, desc,
                                                show_progress):
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
    return results  # type: ignore[return-value]


def generate_answers(model: Any, tokenizer: Any, questions: Sequence[str], *, answers: Sequence[str] | None = None,
                     max_new_tokens: int = 32, batch_size: int = 64, max_length: int = 512,
                     desc: str = "generating", show_progress: bool = True, shots: Sequence[Shots] | None = None,
                     given: Sequence[int] | None = None) -> list[str]:
    """Greedy answers (every decoding setting explicit, see :mod:`obliviate.generation`), batched
    with left padding, cut at the first stop token (the tokenizer's EOS or any of the model's).

    Each prompt is the prompt part of the joint encoding scoring uses (with the reference
    ``answers`` when given), so generation starts from exactly the tokens the model was trained
    and scored on. A template's ``answer_prefix`` (``tofu-phi``'s ``Answer:``) is removed from
    the start of a generation. ``shots`` and ``given`` are as in :func:`score_pairs`: a prompt
    with ``given`` answer tokens is continued from them.
    """
    from obliviate.generation import stop_token_ids
    from obliviate.memorisation import generate_continuations

    template = template_of(tokenizer)
    refs = list(answers) if answers is not None else [None] * len(questions)
    shots, given = _per_pair(shots, len(questions), ()), _per_pair(given, len(questions), 0)
    prompts = [encode_prompt(tokenizer, q, a, max_length=max_length, shots=s, given=g)
               for q, a, s, g in zip(questions, refs, shots, given)]
    ids = generate_continuations(model, prompts, max_new_tokens=max_new_tokens, pad_id=tokenizer.pad_token_id,
                                 eos_id=stop_token_ids(model, tokenizer.eos_token_id), batch_size=batch_size,
                                 desc=desc, show_progress=show_progress)
    prefix = template.answer_prefix.strip()
    out = []
    for row in ids:
        text = tokenizer.decode(row, skip_special_tokens=True).strip()
        if prefix and text.startswith(prefix):
            text = text[len(prefix):].strip()
        out.append(text)
    return out
