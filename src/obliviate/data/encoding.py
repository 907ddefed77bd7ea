"""Turn QA records into token ids with the prompt masked out of the loss, and text records into
token ids for a full-sequence language-modelling loss.

A QA pair is laid out by the tokenizer's prompt template (:mod:`obliviate.data.templates`) as one
text and tokenised jointly, as a model is trained on it: the label mask starts at the first token
that reaches past the prompt's last character, so a token straddling the boundary (a byte-level
BPE's ``' The'`` after ``'Answer:'``, SentencePiece's ``'▁The'``) belongs to the answer and the
tokens are those of the whole text. Generation prompts are the prompt part of that same encoding.
A text record is tokenised as one string too; the prefix/suffix cut is found from the character
offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from obliviate.data.templates import (  # noqa: F401  (re-exported)
    PLAIN_TEMPLATE,
    PromptTemplate,
    render_pair,
    render_prompt,
    template_of,
    uses_chat_template,
)

IGNORE_INDEX = -100
#: the answer a generation prompt is cut from when no reference answer is given (a common first
#: word: real vocabularies hold it with its leading space, so the prompt keeps no trailing space)
PLACEHOLDER_ANSWER = "The"


def prompt_description(tokenizer: Any) -> str:
    """How prompts were built, for the run folder."""
    template = template_of(tokenizer)
    return f"template {template.name}: {template.description}"


@dataclass
class EncodedPair:
    """``prompt_tokens``: how many leading tokens are the prompt (what generation is prompted with).
    ``shortened``: the prompt lost its earliest tokens to fit ``max_length``; ``answer_cut``: the
    answer alone did not fit and was cut on the right (training refuses such a record)."""

    input_ids: list[int]
    labels: list[int]
    fact_labels: list[int] | None = None
    prompt_tokens: int = 0
    shortened: bool = False
    answer_cut: bool = False

    def as_dict(self) -> dict[str, list[int]]:
        out = {"input_ids": self.input_ids, "labels": self.labels}
        if self.fact_labels is not None:
            out["fact_labels"] = self.fact_labels
        return out


def _tokenize(tokenizer: Any, text: str, add_special_tokens: bool) -> tuple[list[int], list | None]:
    """Ids and character offsets (None for a tokenizer that cannot give offsets)."""
    try:
        enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    except (NotImplementedError, ValueError, TypeError, KeyError):
        return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]), None


def _prompt_token_count(tokenizer: Any, ids: list[int], offsets: list | None, text: str, prompt_end: int,
                        add_special_tokens: bool) -> int:
    if offsets is not None:
        for i, (_, end) in enumerate(offsets):
            if end > prompt_end:
                return i
        return len(ids)
    # no offsets: the tokens the whole text shares with the prompt tokenised alone
    alone = tokenizer(text[:prompt_end], add_special_tokens=add_special_tokens)["input_ids"]
    n = 0
    while n < min(len(alone), len(ids)) and alone[n] == ids[n]:
        n += 1
    return n


def encode_pair(tokenizer: Any, question: str, answer: str, *, fact_span: Sequence[int] | None = None,
                max_length: int = 512, add_eos: bool = True,
                template: str | PromptTemplate | None = None, shots: Sequence[tuple[str, str]] = ()) -> EncodedPair:
    """Encode one (question, answer): labels are the answer tokens (and EOS) only.

    The pair is rendered by ``template`` (default: the tokenizer's, see
    :func:`obliviate.data.templates.template_of`) and tokenised as one text; EOS is appended unless
    the text already ends with it. A sequence longer than ``max_length`` keeps its answer: the
    prompt loses its earliest tokens (after a leading BOS), because the answer is what is trained
    and scored. Only an answer that alone does not fit is cut on the right (``answer_cut``). With ``fact_span`` (character
    offsets of the fact value in the answer), ``fact_labels`` keeps only the tokens that overlap
    the fact value, for objectives that forget the value and not the sentence frame around it.
    """
    rendered = render_pair(tokenizer, question, answer, template_of(tokenizer, template), shots)
    ids, offsets = _tokenize(tokenizer, rendered.text, rendered.add_special_tokens)
    n_prompt = _prompt_token_count(tokenizer, ids, offsets, rendered.text, rendered.prompt_end,
                                   rendered.add_special_tokens)
    eos = tokenizer.eos_token_id
    if add_eos and eos is not None and (len(ids) == n_prompt or ids[-1] != eos):
        ids.append(eos)
        if offsets is not None:
            offsets.append((len(rendered.text), len(rendered.text)))
    labels = [IGNORE_INDEX] * n_prompt + ids[n_prompt:]
    fact_labels = None
    if fact_span is not None:
        if offsets is None:
            raise ValueError("fact_span needs a fast tokenizer (character offsets)")
        start, end = rendered.answer_start + fact_span[0], rendered.answer_start + fact_span[1]
        fact_labels = [t if i >= n_prompt and s < end and e > start else IGNORE_INDEX
                       for i, (t, (s, e)) in enumerate(zip(ids, offsets))]
    if len(ids) <= max_length:
        return EncodedPair(ids, labels, fact_labels, n_prompt)
    bos = tokenizer.bos_token_id
    head = 1 if n_prompt > 0 and bos is not None and ids[0] == bos else 0
    drop = len(ids) - max_length
    if drop <= n_prompt - head:
        def keep(seq: list[int]) -> list[int]:
            return seq[:head] + seq[head + drop:]

        return EncodedPair(keep(ids), keep(labels), keep(fact_labels) if fact_labels is not None else None,
                           n_prompt - drop, shortened=True)
    return EncodedPair(ids[:max_length], labels[:max_length],
                       fact_labels[:max_length] if fact_labels is not None else None,
                       min(n_prompt, max_length), answer_cut=True)


def encode_prompt(tokenizer: Any, question: str, answer: str | None = None, *, max_length: int = 512,
                  template: str | PromptTemplate | None = None, shots: Sequence[tuple[str, str]] = (),
                  given: int = 0) -> list[int]:
    """The generation prompt of ``question``: exactly the prompt part of the joint encoding of the
    pair with ``answer`` (its reference answer, which decides only whether a token at the boundary
    is the answer's; a placeholder when None), after the worked examples ``shots``; with
    ``given`` it ends with the answer's first ``given`` tokens (a partial-answer prompt)."""
    enc = encode_pair(tokenizer, question, PLACEHOLDER_ANSWER if answer is None else answer,
                      max_length=max_length, add_eos=False, template=template, shots=shots)
    return enc.input_ids[:enc.prompt_tokens + given]


def prompt_examples(tokenizer: Any, records: Sequence[dict], n: int = 3) -> dict[str, Any]:
    """The exact rendered prompt (text, tokens and ids) of the first ``n`` QA records, for the run
    folder: what the model was scored and prompted with."""
    template = template_of(tokenizer)
    items = []
    for record in [r for r in records if "question" in r][:n]:
        rendered = render_pair(tokenizer, record["question"], record["answer"], template)
        enc = encode_pair(tokenizer, record["question"], record["answer"], template=template)
        k = enc.prompt_tokens
        items.append({"question": record["question"], "answer": record["answer"],
                      "text": rendered.text, "prompt_text": rendered.text[:rendered.prompt_end],
                      "prompt_tokens": tokenizer.convert_ids_to_tokens(enc.input_ids[:k]),
                      "prompt_ids": enc.input_ids[:k],
                      "answer_tokens": tokenizer.convert_ids_to_tokens(enc.input_ids[k:])})
    return {"template": template.as_dict(), "items": items}


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
