"""Ext-Sub arithmetic (spec methods-extsub-eul-icu.md §1.2) and PEFT adapter round trips."""

import copy
import json
import math
import warnings

import pytest
import torch

from obliviate.compose.extsub import (
    add,
    combine_adapters,
    deltas_to_lora,
    extract_subtract,
    ia3_combine,
    lora_deltas,
    merge_into_model,
    save_ia3,
    save_lora,
    subtract,
)
from obliviate.errors import ConfigError

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")


def _parts(wp, wm, eps=1e-8):
    up = wp / (wp.norm(dim=-1, keepdim=True) + eps)
    um = wm / (wm.norm(dim=-1, keepdim=True) + eps)
    e = (up + um) / ((up + um).norm(dim=-1, keepdim=True) + eps)
    return e, wm - (wm * e).sum(-1, keepdim=True) * e


def test_alpha_zero_and_identical_and_orthogonal_remainder():
    g = torch.Generator().manual_seed(0)
    wp, wm = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    assert torch.allclose(extract_subtract(wp, wm, 0.0), wp)
    assert torch.allclose(extract_subtract(wp, wp.clone(), 0.7), wp, atol=1e-6)
    e, rem = _parts(wp, wm)
    assert (rem * e).sum(-1).abs().max() < 1e-5
    assert torch.allclose(extract_subtract(wp, wm, 0.5), wp - 0.5 * rem, atol=1e-6)
    assert extract_subtract(wp, wm, 1.0).shape == (5, 7)  # rectangular


def test_hand_computed_2x2():
    wp = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    wm = torch.tensor([[0.0, 1.0], [0.0, 3.0]])
    # row 0: e = (1,1)/√2, p = (.5,.5), d = (-.5,.5); row 1: parallel rows, d = 0
    assert torch.allclose(extract_subtract(wp, wm, 1.0), torch.tensor([[1.5, -0.5], [0.0, 2.0]]), atol=1e-6)
    assert torch.allclose(subtract(wp, wm, 2.0), wp - 2 * wm)
    assert torch.allclose(add(wp, wm, 0.5), wp + 0.5 * wm)


def test_zero_and_opposite_rows_no_nan():
    wp = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [1.0, 0.0, 0.0]])
    wm = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-2.0, 0.0, 0.0]])
    out = extract_subtract(wp, wm, 1.0)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, wp - wm)  # E = 0 there: plain subtraction


def test_ia3_rule_by_hand():
    lp, lm = torch.tensor([1.5, 1.0]), torch.tensor([1.0, 1.5])
    # δ+ = (.5,0), δ- = (0,.5), e = (1,1)/√2, p = (.25,.25), d = (-.25,.25)
    assert torch.allclose(ia3_combine(lp, lm, 1.0), torch.tensor([1.75, 0.75]), atol=1e-6)
    assert torch.allclose(ia3_combine(lp, lm, 2.0), torch.tensor([2.0, 0.5]), atol=1e-6)
    assert torch.allclose(ia3_combine(lp, lm, 0.0), lp)
    assert torch.allclose(ia3_combine(lp, lm, 2.0, "subtraction"), torch.tensor([1.5, 0.0]))
    assert torch.allclose(ia3_combine(lp, lm, 2.0, "addition"), torch.tensor([1.5, 2.0]))


# ---------------------------------------------------------------- PEFT round trips

def _llama():
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, vocab_size=64)
    return transformers.LlamaForCausalLM(cfg).eval()


def _gpt2():
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=64, n_positions=16,
                                  bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _save_adapter(base, path, seed, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(r=4, lora_alpha=8, **kw))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_" in n:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    m.save_pretrained(str(path))
    return path


def _logits(model):
    ids = torch.tensor([[1, 5, 9, 2, 33, 7]])
    with torch.no_grad():
        return model(input_ids=ids).logits


def _load(base, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return peft.PeftModel.from_pretrained(copy.deepcopy(base), str(path)).eval()


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_peft_round_trip(tmp_path, arch):
    base, kw = ((_llama(), {"target_modules": ["q_proj", "v_proj", "down_proj"]}) if arch == "llama"
                else (_gpt2(), {"target_modules": ["c_attn", "c_proj"], "fan_in_fan_out": True}))
    exp = _save_adapter(base, tmp_path / "exp", 1, **kw)
    anti = _save_adapter(base, tmp_path / "anti", 2, **kw)
    # addition with α = 1 is applying both adapters
    both = _load(_load(base, exp).merge_and_unload(), anti).merge_and_unload()
    added = merge_into_model(copy.deepcopy(base), combine_adapters(exp, anti, op="addition"))
    assert torch.allclose(_logits(added), _logits(both), atol=1e-5)
    # α = 0 is the expert alone
    expert = _load(base, exp).merge_and_unload()
    assert torch.allclose(_logits(merge_into_model(copy.deepcopy(base), combine_adapters(exp, anti, alpha=0.0))),
                          _logits(expert), atol=1e-5)
    # ext-sub: merged model == exact rank-in adapter reloaded through PEFT
    deltas = combine_adapters(exp, anti, alpha=0.8)
    merged = merge_into_model(copy.deepcopy(base), deltas)
    rep = save_lora(deltas, exp, tmp_path / "out")
    assert rep["rel_error"] < 1e-6
    assert torch.allclose(_logits(_load(base, tmp_path / "out")), _logits(merged), atol=1e-5)
    # truncation: non-zero error, falling with rank; the truncated adapter loads too
    errs = [deltas_to_lora(deltas, rank=k)[2]["rel_error"] for k in (1, 4, 8)]
    assert errs[0] > errs[1] > errs[2] > 0
    rep2 = save_lora(deltas, exp, tmp_path / "out2", rank=2)
    assert rep2["rel_error"] > 0 and len(rep2["module_rel_error"]) == len(deltas)
    _logits(_load(base, tmp_path / "out2"))


def test_lora_deltas_scaling_and_orientation(tmp_path):
    base = _gpt2()
    exp = _save_adapter(base, tmp_path / "e", 3, target_modules=["c_attn"], fan_in_fan_out=True)
    deltas, cfg = lora_deltas(exp)
    key = "base_model.model.transformer.h.0.attn.c_attn"
    assert deltas[key].shape == (96, 32) and cfg["r"] == 4  # (out, in) even for Conv1D
    m = _load(base, exp)
    lay = m.base_model.model.transformer.h[0].attn.c_attn
    ref = 2.0 * lay.lora_B["default"].weight @ lay.lora_A["default"].weight
    assert torch.allclose(deltas[key], ref, atol=1e-6)


def test_ia3_round_trip(tmp_path):
    base = _llama()
    paths = []
    for seed in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = peft.get_peft_model(copy.deepcopy(base), peft.IA3Config(
                target_modules=["k_proj", "down_proj"], feedforward_modules=["down_proj"]))
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for n, p in m.named_parameters():
                if "ia3_l" in n:
                    p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
        m.save_pretrained(str(tmp_path / str(seed)))
        paths.append(tmp_path / str(seed))
    vec = combine_adapters(*paths, alpha=0.5)
    merged = merge_into_model(copy.deepcopy(base), vec, ia3=True)
    save_ia3(vec, paths[0], tmp_path / "out")
    assert torch.allclose(_logits(_load(base, tmp_path / "out")), _logits(merged), atol=1e-5)


def test_mismatches_raise(tmp_path):
    base = _llama()
    a = _save_adapter(base, tmp_path / "a", 1, target_modules=["q_proj", "v_proj"])
    b = _save_adapter(base, tmp_path / "b", 2, target_modules=["q_proj"])
    with pytest.raises(ConfigError, match="target_modules"):
        combine_adapters(a, b)
    with pytest.raises(ConfigError, match="op"):
        combine_adapters(a, a, op="negate")
    c = _save_adapter(base, tmp_path / "c", 3, target_modules=["q_proj", "v_proj"])
    cfg = json.loads((c / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "x/y"
    (c / "adapter_config.json").write_text(json.dumps(cfg))
    cfg["base_model_name_or_path"] = "x/z"
    (a / "adapter_config.json").write_text(json.dumps(cfg | {"target_modules": ["q_proj", "v_proj"]}))
    with pytest.raises(ConfigError, match="base models"):
        combine_adapters(a, c)
    assert len(combine_adapters(a, c, allow_base_mismatch=True)) == 4
    assert not any(math.isnan(float(v.sum())) for v in combine_adapters(a, c, allow_base_mismatch=True).values())
