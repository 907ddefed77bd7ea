"""Greedy decoding with every setting explicit: what a model's own generation config says (beams,
sampling, repetition penalty, n-gram blocking, minimum length, suppressed tokens…) never leaks in.

``model.generate`` fills whatever a passed ``GenerationConfig`` leaves unset from the model's
``generation_config``, so during a call the model's config (and that of every submodule holding
one, e.g. the model inside a PEFT wrapper) is replaced by ours and restored afterwards.
Decoding stops on every EOS id of the model's generation config (Llama-3's ``<|eot_id|>``,
Gemma's ``<end_of_turn>``) as well as the tokenizer's.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch


def _ids(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.flatten().tolist()]
    return [int(v) for v in value]


def stop_token_ids(model: Any, *extra: int | Sequence[int] | None) -> list[int]:
    """``extra`` ids (e.g. the tokenizer's EOS) followed by every EOS id of the model's generation
    config (its ``config``'s when it has none), without repeats."""
    gen = getattr(model, "generation_config", None)
    model_eos = getattr(gen, "eos_token_id", None)
    if model_eos is None:
        model_eos = getattr(getattr(model, "config", None), "eos_token_id", None)
    out: list[int] = []
    for value in (*extra, model_eos):
        for token in _ids(value):
            if token not in out:
                out.append(token)
    return out


def greedy_config(max_new_tokens: int, *, pad_id: int | None, stop_ids: Iterable[int], num_beams: int = 1) -> Any:
    """A ``GenerationConfig`` for greedy (or, with ``num_beams``, plain beam) search: no sampling,
    no repetition or length penalty, no n-gram blocking, no minimum length."""
    from transformers import GenerationConfig

    stops = list(stop_ids)
    return GenerationConfig(
        max_new_tokens=int(max_new_tokens), min_new_tokens=0, min_length=0, do_sample=False,
        num_beams=int(num_beams), num_return_sequences=1, temperature=1.0, top_k=50, top_p=1.0, typical_p=1.0,
        repetition_penalty=1.0, encoder_repetition_penalty=1.0, length_penalty=1.0, no_repeat_ngram_size=0,
        early_stopping=False, use_cache=True, renormalize_logits=False, output_scores=False,
        return_dict_in_generate=False, pad_token_id=pad_id,
        eos_token_id=stops if len(stops) != 1 else stops[0])


def settings(max_new_tokens: int, stop_ids: Sequence[int], num_beams: int = 1) -> dict[str, Any]:
    """What the run folder records about decoding."""
    return {"max_new_tokens": int(max_new_tokens), "decoding": "greedy" if num_beams == 1 else "beam",
            "do_sample": False, "num_beams": num_beams, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
            "stop_token_ids": list(stop_ids)}


def _is_composed(model: Any) -> bool:
    from obliviate.models.composed import ComposedCausalLM

    return isinstance(model, ComposedCausalLM)


@torch.no_grad()
def generate(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, max_new_tokens: int,
             pad_id: int | None, stop_ids: Sequence[int], num_beams: int = 1) -> torch.Tensor:
    """``model.generate`` under :func:`greedy_config` only: prompt plus new tokens, like HF."""
    stops = list(stop_ids)
    if _is_composed(model):  # its own decoding loop: greedy unless told to sample
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                              do_sample=False, num_beams=num_beams, pad_token_id=pad_id, eos_token_id=stops)
    config = greedy_config(max_new_tokens, pad_id=pad_id, stop_ids=stops, num_beams=num_beams)
    holders = [m for m in model.modules() if "generation_config" in vars(m)]
    saved = [m.generation_config for m in holders]
    try:
        for m in holders:
            m.generation_config = config
        return model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
    finally:
        for m, original in zip(holders, saved):
            m.generation_config = original


__all__ = ["generate", "greedy_config", "settings", "stop_token_ids"]
