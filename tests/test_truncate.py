"""The ULD assistant: truncated copies (first K layers) of tiny random decoder-only models, with LoRA."""

from __future__ import annotations

import pytest
import torch

from obliviate.errors import ConfigError
from obliviate.models.truncate import (
    assistant_with_lora,
    default_assistant_layers,
    layer_count,
    provenance,
    truncated_config,
    truncated_copy,
)

K = 2


def _config(arch: str, **extra):
    from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig, Qwen2Config

    common = {"vocab_size": 100, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 4,
              "num_attention_heads": 4, "max_position_embeddings": 64, "pad_token_id": 0,
              "eos_token_id": 1, "bos_token_id": 1}
    if arch == "llama":
        return LlamaConfig(**common, num_key_value_heads=2, **extra)
    if arch == "qwen2":
        return Qwen2Config(**common, num_key_value_heads=2, **extra)
    if arch == "gptneox":
        return GPTNeoXConfig(**common, **extra)
    if arch == "gpt2":
        return GPT2Config(vocab_size=100, n_embd=32, n_layer=4, n_head=2, n_positions=64,
                          pad_token_id=0, eos_token_id=1, bos_token_id=1, **extra)
    raise AssertionError(arch)


def _model(arch: str, **extra):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_config(arch, **extra))
    with torch.no_grad():  # some families start norms/biases at constants: make every tensor distinct
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model.eval()


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


IDS = torch.tensor([[2, 5, 9, 17, 33, 64, 99, 3]])
ARCHS = ["llama", "qwen2", "gpt2", "gptneox"]


@pytest.mark.parametrize("arch", ARCHS)
def test_truncated_copy_is_the_first_k_layers_copied(arch):
    base = _model(arch)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    small = truncated_copy(base, K)

    assert layer_count(small.config) == K and layer_count(base.config) == 4
    assert type(small) is type(base)
    base_state, small_state = base.state_dict(), small.state_dict()
    assert small_state, "empty copy"
    for name, tensor in small_state.items():
        assert name in base_state, name
        assert torch.equal(tensor, base_state[name]), name
    # embeddings, layers 0..K-1, final norm and head are all there; nothing from layer K on
    layer_names = {n.split(".")[2] for n in base_state if ".layers." in n or ".h." in n}
    assert layer_names == {"0", "1", "2", "3"}
    small_layers = {n.split(".")[2] for n in small_state if ".layers." in n or ".h." in n}
    assert small_layers == {str(i) for i in range(K)}
    assert torch.equal(small.get_output_embeddings().weight, base.get_output_embeddings().weight)
    assert torch.equal(small.get_input_embeddings().weight, base.get_input_embeddings().weight)
    assert len(small_state) < len(base_state)
    assert small.generation_config.pad_token_id == base.generation_config.pad_token_id
    assert small.generation_config.eos_token_id == base.generation_config.eos_token_id

    # no shared storage: changing the copy in place leaves the base untouched
    base_ptrs = {t.data_ptr() for t in base.state_dict().values()}
    assert not base_ptrs & {p.data_ptr() for p in small.parameters()}
    with torch.no_grad():
        for p in small.parameters():
            p.add_(1.0)
    for name, tensor in base.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert small(input_ids=IDS).logits.shape == (1, IDS.shape[1], 100)


@pytest.mark.parametrize("arch", ARCHS)
def test_assistant_lora_starts_as_the_copy_and_trains_only_lora(arch):
    from peft.tuners.tuners_utils import BaseTunerLayer
    from transformers.pytorch_utils import Conv1D

    base = _model(arch)
    plain = truncated_copy(base, K).eval()
    assistant = assistant_with_lora(base, K, r=4, alpha=8, dropout=0.0).eval()

    torch.testing.assert_close(_logits(assistant, IDS), _logits(plain, IDS), rtol=0, atol=0)

    trainable = [n for n, p in assistant.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    inner = assistant.get_base_model()
    head = inner.get_output_embeddings()
    assert not isinstance(head, BaseTunerLayer) and not any(True for _ in head.children())
    assert not any(p.requires_grad for p in head.parameters())
    # every linear layer except the head got LoRA (GPT-2's Conv1D included)
    linear = [n for n, m in plain.named_modules()
              if isinstance(m, (torch.nn.Linear, Conv1D)) and m is not plain.get_output_embeddings()]
    wrapped = [n for n, m in inner.named_modules() if isinstance(m, BaseTunerLayer)]
    assert sorted(wrapped) == sorted(linear) and len(linear) >= 4 * K

    # non-zero LoRA weights act like the merged update (checks GPT-2's transposed Conv1D handling)
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in assistant.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    adapted = _logits(assistant, IDS)
    assert not torch.allclose(adapted, _logits(plain, IDS))
    merged = assistant.merge_and_unload()
    torch.testing.assert_close(_logits(merged, IDS), adapted, rtol=1e-4, atol=1e-4)


def test_tied_llama_copy_stays_tied_even_when_the_base_omits_the_head():
    base = _model("llama", tie_word_embeddings=True)
    assert base.get_output_embeddings().weight is base.get_input_embeddings().weight
    full_state = base.state_dict

    def without_head(*args, **kwargs):
        state = full_state(*args, **kwargs)
        state.pop("lm_head.weight", None)
        return state

    base.state_dict = without_head  # what a checkpoint that stores tied weights once looks like
    small = truncated_copy(base, 1)
    assert small.get_output_embeddings().weight is small.get_input_embeddings().weight
    assert torch.equal(small.get_output_embeddings().weight, base.get_input_embeddings().weight)
    assert small.get_output_embeddings().weight.data_ptr() != base.get_input_embeddings().weight.data_ptr()


def test_config_truncation_cuts_per_layer_lists():
    from transformers import GPT2Config, Qwen2MoeConfig

    qwen = _config("qwen2", use_sliding_window=True, sliding_window=16, max_window_layers=1)
    assert len(qwen.layer_types) == 4
    cut = truncated_config(qwen, K)
    assert cut.num_hidden_layers == K and cut.layer_types == qwen.layer_types[:K]
    assert qwen.num_hidden_layers == 4 and len(qwen.layer_types) == 4  # original untouched
    # lists of layer indices keep the indices below K
    moe = Qwen2MoeConfig(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                         mlp_only_layers=[1, 3])
    assert truncated_config(moe, K).mlp_only_layers == [1]
    # GPT-2's n_layer is reached through attribute_map
    gpt2 = GPT2Config(n_layer=6, n_embd=32, n_head=2)
    assert layer_count(gpt2) == 6 and truncated_config(gpt2, 2).n_layer == 2


@pytest.mark.parametrize("k", [0, -1, 5, True, 2.0])
def test_bad_k_is_a_config_error(k):
    with pytest.raises(ConfigError, match="from 1 to 4"):
        truncated_config(_config("llama"), k)


def test_default_assistant_layers():
    assert default_assistant_layers(32) == 8
    assert [default_assistant_layers(n) for n in (1, 2, 4, 6, 10, 22)] == [1, 1, 1, 2, 3, 6]
    with pytest.raises(ConfigError):
        default_assistant_layers(0)


def test_provenance_tracks_the_copied_weights_only():
    base = _model("llama")
    first = provenance(base, K)
    assert first["layers"] == K and first["base_layers"] == 4
    assert first["base_class"] == "LlamaForCausalLM" and len(first["fingerprint"]) == 16
    assert provenance(base, K) == first
    with torch.no_grad():
        base.model.layers[3].mlp.up_proj.weight.add_(1.0)  # not copied into a 2-layer assistant
    assert provenance(base, K)["fingerprint"] == first["fingerprint"]
    with torch.no_grad():
        base.model.layers[0].mlp.up_proj.weight[0, 0] += 1e-3  # copied
    assert provenance(base, K)["fingerprint"] != first["fingerprint"]
    assert provenance(base, 1)["fingerprint"] != provenance(base, K)["fingerprint"]
