"""ComposedCausalLM (ULD / Offset logit combination): the filter, the combination, decoding."""

from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from obliviate.models.composed import ComposedCausalLM, relative_top_mask

V = 100


class FixedLogits(nn.Module):
    """A stand-in causal LM that returns the same logits at every position."""

    def __init__(self, logits: list[float]):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(logits), requires_grad=False)
        self.config = None

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, use_cache=False,
                logits_to_keep=0, **kwargs):
        logits = self.table.expand(*input_ids.shape, -1)
        if logits_to_keep:
            logits = logits[:, -logits_to_keep:]
        return SimpleNamespace(logits=logits, cache=cache)


def _tiny(kind: str, seed: int):
    from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

    if kind == "llama":
        config = LlamaConfig(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                             bos_token_id=1, eos_token_id=2, pad_token_id=0)
    else:
        config = GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                            bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config).eval()


def _left_padded():
    """Two prompts of lengths 6 and 3, left-padded with 0."""
    torch.manual_seed(123)
    ids = torch.randint(3, V, (2, 6))
    mask = torch.ones_like(ids)
    ids[1, :3], mask[1, :3] = 0, 0
    return ids, mask


def _positions(mask):
    return (mask.cumsum(-1) - 1).clamp(min=0)


# -- the relative-top filter ----------------------------------------------------------------------

def test_relative_top_mask_hand_built():
    probs = torch.tensor([[0.5, 0.3, 0.1, 0.06, 0.04],
                          [0.9, 0.05, 0.03, 0.015, 0.005]])
    logits = probs.log() + 3.0  # any shift: the filter works on log_softmax
    # rho = 0.5 (k = int(2.5) = 2):
    #   row 0: p >= 0.25 -> {0, 1}; top-2 = {0, 1}               -> keep {0, 1}
    #   row 1: p >= 0.45 -> {0};    top-2 = {0, 1}; union         -> keep {0, 1}
    assert relative_top_mask(logits, 0.5).tolist() == [[True, True, False, False, False],
                                                       [True, True, False, False, False]]
    # rho = 0.01 (k = max(1, int(0.05)) = 1):
    #   row 0: p >= 0.005 -> all five
    #   row 1: p >= 0.009 -> {0, 1, 2, 3} (0.005 is out); top-1 = {0}
    assert relative_top_mask(logits, 0.01).tolist() == [[True] * 5, [True, True, True, True, False]]
    # any leading shape
    assert relative_top_mask(logits.view(1, 2, 5), 0.5).shape == (1, 2, 5)


# -- ULD on hand-built logits ---------------------------------------------------------------------

BASE = [2.0, 1.0, 0.0, -5.0, -6.0]  # p ~ .665 .245 .090 .0006 .0002 -> rho 0.1 keeps {0, 1, 2}
ASSIST = [10.0, 10.0, 10.0, 0.5, -3.0]


def test_uld_forward_combines_inside_keep_only():
    model = ComposedCausalLM(FixedLogits(BASE), [(FixedLogits(ASSIST), -1.0)], rho=0.1)
    out = model(torch.zeros(1, 2, dtype=torch.long))
    # kept: base - assistant; excluded: the base logit, untouched (not -inf)
    expected = [2.0 - 10, 1.0 - 10, 0.0 - 10, -5.0, -6.0]
    assert out.logits.shape == (1, 2, 5)
    assert torch.allclose(out.logits[0, 1], torch.tensor(expected))
    assert out.keep[0, 1].tolist() == [True, True, True, False, False]

    unfiltered = ComposedCausalLM(FixedLogits(BASE), [(FixedLogits(ASSIST), -0.8)], normalize=True)
    base_lp, assist_lp = torch.tensor(BASE).log_softmax(-1), torch.tensor(ASSIST).log_softmax(-1)
    assert torch.allclose(unfiltered(torch.zeros(1, 1, dtype=torch.long)).logits[0, 0],
                          base_lp - 0.8 * assist_lp)


def test_uld_decoding_never_picks_an_excluded_token():
    model = ComposedCausalLM(FixedLogits(BASE), [(FixedLogits(ASSIST), -1.0)], rho=0.1)
    scores = model(torch.zeros(1, 1, dtype=torch.long)).logits[0, -1]
    keep = model(torch.zeros(1, 1, dtype=torch.long)).keep[0, -1]
    # every kept score is negative (-8, -9, -10): the raw argmax is the excluded token 3 (-5), and
    # so is the reference's argmax(scores * ~mask), mask = excluded (excluded scores become 0)
    assert int(scores.argmax()) == 3 and int((scores * keep).argmax()) == 3
    out = model.generate(torch.zeros(2, 1, dtype=torch.long), max_new_tokens=3, eos_token_id=[])
    assert out[:, 1:].tolist() == [[0, 0, 0], [0, 0, 0]]


def test_sampling_is_reproducible_and_only_emits_kept_tokens():
    model = ComposedCausalLM(FixedLogits(BASE), [(FixedLogits(ASSIST), -1.0)], rho=0.1)
    prompt = torch.zeros(64, 1, dtype=torch.long)

    def draw(**kw):
        return model.generate(prompt, max_new_tokens=4, do_sample=True, eos_token_id=[],
                              generator=torch.Generator().manual_seed(7), **kw)

    first = draw()
    assert torch.equal(first, draw())
    assert set(first[:, 1:].flatten().tolist()) == {0, 1, 2}  # never 3 or 4, which dominate unmasked
    assert set(draw(top_k=2)[:, 1:].flatten().tolist()) == {0, 1}
    assert set(draw(top_p=0.5, temperature=0.5)[:, 1:].flatten().tolist()) == {0}


def test_sampling_real_models_only_emits_kept_tokens():
    model = ComposedCausalLM(_tiny("llama", 0), [(_tiny("llama", 1), -0.8)], rho=0.1)
    ids, mask = _left_padded()
    out = model.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=True, eos_token_id=[],
                         generator=torch.Generator().manual_seed(3))
    again = model.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=True, eos_token_id=[],
                           generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, again)
    full_mask = torch.cat([mask, torch.ones(2, 4, dtype=mask.dtype)], -1)
    with torch.no_grad():
        keep = model(out, attention_mask=full_mask, position_ids=_positions(full_mask)).keep
    for step in range(4):
        col = ids.shape[1] + step
        assert keep[torch.arange(2), col - 1, out[:, col]].all()


# -- greedy generate == step-by-step argmax of forward --------------------------------------------

@pytest.mark.parametrize("kind", ["llama", "gpt2"])
@pytest.mark.parametrize("rho", [0.1, None])
def test_greedy_generate_matches_full_forward(kind, rho):
    model = ComposedCausalLM(_tiny(kind, 0), [(_tiny(kind, 1), -0.8)], rho=rho, normalize=rho is None)
    model.train()
    ids, mask = _left_padded()
    out = model.generate(ids, attention_mask=mask, max_new_tokens=5, eos_token_id=[], pad_token_id=0)
    assert model.training and model.base.training  # the mode is restored

    ref, ref_mask = ids, mask
    with torch.no_grad():
        model.eval()
        for _ in range(5):
            step = model(ref, attention_mask=ref_mask, position_ids=_positions(ref_mask))
            scores = step.logits[:, -1]
            if step.keep is not None:
                scores = scores.masked_fill(~step.keep[:, -1], -math.inf)
            ref = torch.cat([ref, scores.argmax(-1, keepdim=True)], -1)
            ref_mask = torch.cat([ref_mask, torch.ones(2, 1, dtype=mask.dtype)], -1)
    assert torch.equal(out, ref)

    # stop at EOS: use row 0's second new token as EOS; later tokens become pad
    eos = int(out[0, 7])
    stopped = model.generate(ids, attention_mask=mask, max_new_tokens=5, eos_token_id=eos, pad_token_id=0)
    expected = out.clone()
    ends = []
    for row in range(2):
        new = expected[row, 6:].tolist()
        end = new.index(eos) + 1 if eos in new else len(new)
        expected[row, 6 + end:] = 0
        ends.append(end if eos in new else 5)
    assert torch.equal(stopped, expected[:, :6 + max(ends)])


# -- Offset ---------------------------------------------------------------------------------------

def test_offset_identity_and_gradients():
    target, assistant = _tiny("llama", 0), _tiny("llama", 1)
    assistant0 = copy.deepcopy(assistant)
    for frozen in (target, assistant0):
        frozen.requires_grad_(False)
    model = ComposedCausalLM(target, [(assistant, 1.0), (assistant0, -1.0)])
    assert model.device == torch.device("cpu") and model.config is target.config
    ids, mask = _left_padded()
    out = model(ids, attention_mask=mask, labels=ids)
    with torch.no_grad():
        assert torch.equal(out.logits, target(ids, attention_mask=mask).logits.float())
    out.loss.backward()
    assert all(p.grad is not None for p in assistant.parameters())
    assert any(p.grad.abs().sum() > 0 for p in assistant.parameters())
    assert all(p.grad is None for p in (*target.parameters(), *assistant0.parameters()))

    cached = model(ids, attention_mask=mask, use_cache=True)
    assert len(cached.cache) == 3


def test_errors():
    with pytest.raises(ValueError, match="one vocabulary"):
        ComposedCausalLM(FixedLogits(BASE), [(FixedLogits(BASE[:4]), -1.0)])(
            torch.zeros(1, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="rho"):
        ComposedCausalLM(FixedLogits(BASE), [(FixedLogits(ASSIST), -1.0)], rho=0.1, normalize=True)
    with pytest.raises(ValueError, match="greedily or by sampling"):
        ComposedCausalLM(FixedLogits(BASE), [(FixedLogits(ASSIST), -1.0)]).generate(
            torch.zeros(1, 1, dtype=torch.long), num_beams=4)
