"""Turn QA records into token ids with the prompt masked out of the loss, and text records into
token ids for a full-sequence language-modelling loss.

Prompts come from the tokenizer's chat template when it has one, else from the plain
``Question: …\\nAnswer: `` template. Prompt and answer are encoded separately and concatenated so
that the boundary (and so the label mask) is exact whatever the tokenizer merges across it. A text
record is tokenised as one string (never prefix and suffix apart, which would change the tokens);
the prefix/suffix cut is found from the character offsets instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

PLAIN_TEMPLATE = "Question: {question}\nAnswer: "
IGNORE_INDEX = -100


def uses_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render_prompt(tokenizer: Any, question: str) -> str:
    """The text the model sees before its answer."""
    if uses_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False)
    return PLAIN_TEMPLATE.format(question=question)


def prompt_description(tokenizer: Any) -> str:
    """How prompts were built, for the run folder."""
    return "chat template of the tokenizer" if uses_chat_template(tokenizer) else (
        "plain template " + repr(PLAIN_TEMPLATE))


def _prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    # A chat template already writes the special tokens it wants; a plain prompt gets the
    # tokenizer's own (a BOS for most causal LMs, nothing for the embedded tokenizer).
    return tokenizer(prompt, add_special_tokens=not uses_chat_template(tokenizer))["input_ids"]


@dataclass
class EncodedPair:
    input_ids: list[int]
    labels: list[int]
    fact_labels: list[int] | None = None

    def as_dict(self) -> dict[str, list[int]]:
        out = {"input_ids": self.input_ids, "labels": self.labels}
        if self.fact_labels is not None:
            out["fact_labels"] = self.fact_labels
        return out


def encode_pair(tokenizer: Any, question: str, answer: str, *, fact_span: Sequence[int] | None = None,
                max_length: int = 512, add_eos: bool = True) -> EncodedPair:
    """Encode one (question, answer): labels are the answer tokens (and EOS) only.

    With ``fact_span`` (character offsets of the fact value in the answer), ``fact_labels`` keeps
    only the tokens that overlap the fact value, for objectives that forget the value and not the
    sentence frame around it.
    """
    prompt = _prompt_ids(tokenizer, render_prompt(tokenizer, question))
    enc = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=fact_span is not None)
    answer_ids = list(enc["input_ids"])
    if add_eos and tokenizer.eos_token_id is not None:
        answer_ids.append(tokenizer.eos_token_id)
    input_ids = (prompt + answer_ids)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt) + answer_ids)[:max_length]
    fact_labels = None
    if fact_span is not None:
        start, end = fact_span
        in_fact = [s < end and e > start for s, e in enc["offset_mapping"]]
        if add_eos and tokenizer.eos_token_id is not None:
            in_fact.append(False)
        fact_labels = ([IGNORE_INDEX] * len(prompt)
                       + [t if keep else IGNORE_INDEX for t, keep in zip(answer_ids, in_fact)])[:max_length]
    return EncodedPair(input_ids, labels, fact_labels)


@dataclass
class EncodedText:
    """A passage encoded for a full-sequence LM loss.

    ``prefix_tokens`` (when a prefix length in characters was given) is the number of leading
    tokens that lie entirely inside the prefix, special tokens included: ``input_ids[:prefix_tokens]``
    is what a suffix metric prompts with, ``input_ids[prefix_tokens:]`` what it scores.
    """

    input_ids: list[int]
    labels: list[int]
    prefix_tokens: int | None = None

    def as_dict(self) -> dict[str, list[int]]:
        return {"input_ids": self.input_ids, "labels": self.labels}


def encode_text(tokenizer: Any, text: str, *, max_length: int = 512, add_eos: bool = True,
                prefix_chars: int | None = None) -> EncodedText:
    """Encode one passage: every token (and EOS) is a label, as ICU and KnowUnDo train.

    Special tokens follow plain prompts (the tokenizer's own: a BOS for most causal LMs, nothing
    for the embedded tokenizer). Sequences longer than ``max_length`` are cut on the right.
    ``prefix_chars`` asks for :attr:`EncodedText.prefix_tokens`; it needs a fast tokenizer
    (character offsets).
    """
    enc = tokenizer(text, add_special_tokens=True, return_offsets_mapping=prefix_chars is not None)
    input_ids = list(enc["input_ids"])
    prefix_tokens = None
    if prefix_chars is not None:
        prefix_tokens = 0
        for _, end in enc["offset_mapping"]:
            if end > prefix_chars:
                break
            prefix_tokens += 1
    if add_eos and tokenizer.eos_token_id is not None:
        input_ids.append(tokenizer.eos_token_id)
    input_ids = input_ids[:max_length]
    if prefix_tokens is not None:
        prefix_tokens = min(prefix_tokens, len(input_ids))
    return EncodedText(input_ids, list(input_ids), prefix_tokens)


def pad_batch(features: Sequence[dict[str, Any]], pad_id: int, *, length: int | None = None,
              side: str = "right") -> dict[str, torch.Tensor]:
    """Pad token lists to one length (right for training, left for generation).

    Lists of ids become ``input_ids``/``attention_mask``/label tensors; scalar fields become 1-D
    tensors; other fields are dropped.
    """
    length = length or max(len(f["input_ids"]) for f in features)
    batch: dict[str, torch.Tensor] = {}
    for key in features[0]:
        values = [f[key] for f in features]
        if isinstance(values[0], list):
            fill = pad_id if key == "input_ids" else IGNORE_INDEX
            rows = [_pad(v, length, fill, side) for v in values]
            batch[key] = torch.tensor(rows, dtype=torch.long)
        elif isinstance(values[0], (int, float)):
            batch[key] = torch.tensor(values, dtype=torch.float32)
    batch["attention_mask"] = torch.tensor(
        [_pad([1] * len(f["input_ids"]), length, 0, side) for f in features], dtype=torch.long)
    return batch


def _pad(values: list[int], length: int, fill: int, side: str) -> list[int]:
    padding = [fill] * (length - len(values))
    return values + padding if side == "right" else padding + values


class SFTCollator:
    """Right-padded batches for plain fine-tuning (building target and retain models)."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = pad_batch([{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features],
                          self.pad_id)
        return batch
