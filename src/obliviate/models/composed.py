"""A causal LM whose logits are a weighted combination of several causal LMs' logits.

Two unlearning methods never change the target's weights and instead steer it at inference time:

* **ULD** (``ContrastLLM`` in the reference code): ``logits = l_base − α·l_assistant``, where the
  assistant was trained to *remember* the forget set, so subtracting it removes that knowledge.
  A DoLa-style "relative top" plausibility filter computed from the base keeps the subtraction
  from promoting tokens the base itself finds implausible.
* **Offset** (δ-unlearning): ``logits = l_target + w·(l_assistant − l_assistant0)``; only the
  assistant is trained, *through* this combination.

:class:`ComposedCausalLM` is used exactly like a plain model: ``model(input_ids, attention_mask)``
returns ``.logits`` (every probability metric reads those) and ``model.generate(...)`` decodes
greedily or by sampling, batched with left padding, with one KV cache per member model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers.modeling_outputs import CausalLMOutputWithPast


def relative_top_mask(base_logits: Tensor, rho: float) -> Tensor:
    """Tokens the base finds plausible, per position (last dim = vocabulary).

    With ``lp = log_softmax(base_logits)``: ``keep = {v : lp(v) ≥ min(lp_max + log ρ, k-th largest
    lp)}``, ``k = max(1, int(ρ·V))``; i.e. tokens with ``p ≥ ρ·p_max``, united with the top-k
    (the reference's DoLa-style filter; the top-k part only matters when the distribution is flat).
    """
    if not 0.0 < rho <= 1.0:
        raise ValueError(f"the relative-top filter needs 0 < rho <= 1, got {rho}")
    lp = base_logits.float().log_softmax(-1)
    k = max(1, int(rho * lp.shape[-1]))
    kth = lp.topk(k, dim=-1).values[..., -1:]
    threshold = torch.minimum(lp.amax(-1, keepdim=True) + math.log(rho), kth)
    return lp >= threshold


@dataclass
class ComposedLMOutput(CausalLMOutputWithPast):
    """A ``CausalLMOutputWithPast`` (``cache`` = one cache per model, base first) plus ``keep``,
    the relative-top mask (None without the filter), which decoding needs."""

    keep: Tensor | None = None


class ComposedCausalLM(nn.Module):
    """``logits = f(base) + Σ_i w_i·f(member_i)``, usable like a causal LM (forward + generate).

    ``f`` is the identity (raw logits) or, with ``normalize=True``, ``log_softmax`` of each model.
    With ``rho`` set (raw logits only), a member's logit is replaced by 0 wherever the base's
    relative-top filter excludes the token, so excluded tokens keep the base logit unchanged.

    * ULD with filter: ``ComposedCausalLM(base, [(assistant, -alpha)], rho=0.01)``.
    * ULD without filter: ``ComposedCausalLM(base, [(assistant, -alpha)], normalize=True)``.
    * Offset: ``ComposedCausalLM(target, [(assistant, w), (assistant0, -w)])``.

    ``forward`` returns the combined logits with excluded tokens **not** set to −inf (probability
    metrics read them, as in the reference). ``generate`` sets excluded tokens to −inf before
    argmax/sampling. The reference decodes with ``argmax(scores * ~mask)``, which turns excluded
    scores into 0, so an excluded token wins whenever every kept score is negative: a bug not
    reproduced here.

    Every model is a registered submodule, so ``.to()``, ``.eval()``, ``.parameters()`` cover
    them all. Members run under the caller's grad mode (Offset trains the assistant through
    ``forward``); freeze the base and fixed members by setting ``requires_grad=False``.
    """

    def __init__(self, base: nn.Module, terms: Sequence[tuple[nn.Module, float]], *,
                 rho: float | None = None, normalize: bool = False):
        super().__init__()
        if not terms:
            raise ValueError("a composed model needs at least one (model, weight) term")
        if rho is not None and normalize:
            raise ValueError("the relative-top filter (rho) combines raw logits: use either rho "
                             "or normalize=True, not both")
        if rho is not None and not 0.0 < rho <= 1.0:
            raise ValueError(f"the relative-top filter needs 0 < rho <= 1, got {rho}")
        self.base = base
        self.members = nn.ModuleList([model for model, _ in terms])
        self.weights = [float(weight) for _, weight in terms]
        self.rho = rho
        self.normalize = normalize
        self.config = getattr(base, "config", None)
        self.generation_config = getattr(base, "generation_config", None)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def models(self) -> list[nn.Module]:
        """The base first, then the members in ``terms`` order (the order of the caches)."""
        return [self.base, *self.members]

    def combine(self, base_logits: Tensor, member_logits: Sequence[Tensor]) -> tuple[Tensor, Tensor | None]:
        """Combined logits (float32) and the keep mask (None without the filter)."""
        vocab = base_logits.shape[-1]
        for i, logits in enumerate(member_logits):
            if logits.shape[-1] != vocab:
                raise ValueError(f"composed models need one vocabulary: the base has {vocab} "
                                 f"logits, member {i} has {logits.shape[-1]}")
        base_logits = base_logits.float()
        member_logits = [logits.float() for logits in member_logits]
        if self.normalize:
            base_logits = base_logits.log_softmax(-1)
            member_logits = [logits.log_softmax(-1) for logits in member_logits]
        keep = relative_top_mask(base_logits, self.rho) if self.rho is not None else None
        # Sum the members before adding the base: with Offset's assistant == assistant0 the
        # offset is then exactly 0 and the output exactly the target's logits.
        offset = sum(weight * (logits if keep is None else logits.masked_fill(~keep, 0.0))
                     for weight, logits in zip(self.weights, member_logits))
        return base_logits + offset, keep

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None, past_key_values: Sequence[Any] | None = None,
                use_cache: bool = False, labels: Tensor | None = None, **kwargs: Any) -> ComposedLMOutput:
        """Run every model on the same inputs and combine their logits.

        ``past_key_values`` (or ``cache``, the transformers-5 name) is one cache per model, base
        first. ``labels`` gives the usual shifted next-token loss (−100 ignored) on the combined
        logits. Only ``logits_to_keep`` of the other keyword arguments reaches the models.
        """
        caches = kwargs.pop("cache", None) if past_key_values is None else past_key_values
        models = self.models()
        if caches is not None and len(caches) != len(models):
            raise ValueError(f"expected {len(models)} caches (base first), got {len(caches)}")
        extra = {"logits_to_keep": kwargs["logits_to_keep"]} if "logits_to_keep" in kwargs else {}
        outputs = [model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         cache=None if caches is None else caches[i], use_cache=use_cache, **extra)
                   for i, model in enumerate(models)]
        logits, keep = self.combine(outputs[0].logits, [out.logits for out in outputs[1:]])
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten().to(logits.device),
                                   ignore_index=-100)
        cache = tuple(out.cache for out in outputs) if use_cache else None
        return ComposedLMOutput(loss=loss, logits=logits, cache=cache, keep=keep)

    @torch.no_grad()
    def generate(self, input_ids: Tensor, attention_mask: Tensor | None = None, max_new_tokens: int = 20,
                 do_sample: bool = False, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 pad_token_id: int | None = None, eos_token_id: int | Sequence[int] | None = None,
                 num_beams: int = 1, generator: torch.Generator | None = None, **ignored: Any) -> Tensor:
        """Greedy or sampled continuation, ``[batch, prompt_len + new]`` like HF ``generate``.

        Left padding works: every model gets position ids from the attention mask (cumsum − 1)
        at every step, and its own KV cache, so each step feeds only the new token. Rows that
        emitted EOS continue with ``pad_token_id``; decoding stops once every row has.
        """
        if num_beams > 1:
            raise ValueError("composed models decode greedily or by sampling: num_beams > 1 is not "
                             "supported")
        from transformers import DynamicCache

        gen = self.generation_config
        if eos_token_id is None and gen is not None:
            eos_token_id = gen.eos_token_id
        eos = [] if eos_token_id is None else (
            [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id))
        if pad_token_id is None:
            pad_token_id = getattr(gen, "pad_token_id", None)
        if pad_token_id is None:
            pad_token_id = eos[0] if eos else 0
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        eos_ids = torch.tensor(eos, dtype=torch.long, device=input_ids.device)

        was_training = self.training
        self.eval()
        try:
            caches = tuple(DynamicCache(config=m.config) if getattr(m, "config", None) is not None
                           else DynamicCache() for m in self.models())
            ids, mask, step = input_ids, attention_mask, input_ids
            finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            for _ in range(max_new_tokens):
                positions = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -step.shape[1]:]
                out = self(step, attention_mask=mask, position_ids=positions, past_key_values=caches,
                           use_cache=True, logits_to_keep=1)
                scores = out.logits[:, -1]
                if out.keep is not None:
                    scores = scores.masked_fill(~out.keep[:, -1], float("-inf"))
                if do_sample:
                    token = _sample(scores, temperature, top_k, top_p, generator)
                else:
                    token = scores.argmax(-1)
                token = token.masked_fill(finished, pad_token_id)
                ids = torch.cat([ids, token[:, None]], dim=-1)
                mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=-1)
                finished = finished | torch.isin(token, eos_ids)
                if eos and bool(finished.all()):
                    break
                step = token[:, None]
        finally:
            self.train(was_training)
        return ids


def _sample(scores: Tensor, temperature: float, top_k: int, top_p: float,
            generator: torch.Generator | None) -> Tensor:
    """Temperature, then top-k, then nucleus (top-p), then one multinomial draw per row."""
    scores = scores / max(temperature, 1e-5)
    if top_k and top_k < scores.shape[-1]:
        kth = scores.topk(top_k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        probs = sorted_scores.softmax(-1)
        # drop a token when the tokens ranked above it already hold top_p of the mass
        drop_sorted = probs.cumsum(-1) - probs > top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    return torch.multinomial(scores.softmax(-1), 1, generator=generator).squeeze(-1)
