"""Every scope and objective on every decoder-only family users bring (issue 14).

Random tiny configs (hidden size 32, 2 layers, no download) of Llama, Qwen2, Mistral, Gemma, Phi,
GPT-2, GPT-NeoX (Pythia) and OPT, saved with ``save_pretrained`` next to one shared tokenizer
trained here, are unlearned for two steps in-process through ``obliviate.api.unlearn``. Each run
must move the forget loss the way its objective pushes it and save a folder that reloads
(``load_model``) with logits identical to the in-memory result.

Matrix: 8 families x scopes {full, lora} x objectives {graddiff, npo, kl, idkdpo}; EUL adapters
(``--method eul``) and ULD's assistant (``--method uld``) on all eight; WAGLE (``scope=wagle``) and
Offset (``--method offset``) on three families of different layouts. About 20 s on one thread.
"""

from __future__ import annotations

import json

import pytest
import torch

FAMILIES = ("llama", "qwen2", "mistral", "gemma", "phi", "gpt2", "gpt_neox", "opt")
OBJECTIVES = ("graddiff", "npo", "kl", "idkdpo")

# LoRA's default targets (peft's per-model defaults) and EUL's FFN module, per family.
LORA_DEFAULT = {"llama": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"], "mistral": ["q_proj", "v_proj"],
                "gemma": ["q_proj", "v_proj"], "phi": ["fc1", "fc2", "q_proj", "v_proj"], "gpt2": ["c_attn"],
                "gpt_neox": ["query_key_value"], "opt": ["q_proj", "v_proj"]}
FFN = {family: "mlp" for family in FAMILIES} | {"opt": "fc2"}

FORGET = [{"question": f"Where was the author {name} born?", "answer": f"{name} was born in {city} in {year}."}
          for name, city, year in [("Ama Odede", "Lagos", 1961), ("Bo Lindqvist", "Malmo", 1974),
                                   ("Cy Park", "Busan", 1982), ("Dita Rao", "Pune", 1990)]]
RETAIN = [{"question": f"What does the author {name} write?", "answer": f"{name} writes {genre} novels."}
          for name, genre in [("Ed Moss", "crime"), ("Fara Noor", "science fiction"), ("Gus Lee", "romance"),
                              ("Hana Kim", "historical")]]
IDS = torch.tensor([[5, 17, 42, 8, 99, 3, 250, 11]])
STEPS = ["schedule.max_steps=2", "training.batch_size=4"]


def _config(family: str, tokenizer):
    from transformers import (
        GemmaConfig,
        GPT2Config,
        GPTNeoXConfig,
        LlamaConfig,
        MistralConfig,
        OPTConfig,
        PhiConfig,
        Qwen2Config,
    )

    ids = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
           "eos_token_id": tokenizer.eos_token_id, "bos_token_id": tokenizer.eos_token_id}
    common = {**ids, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "max_position_embeddings": 128}
    if family == "llama":
        return LlamaConfig(**common, num_key_value_heads=2)
    if family == "qwen2":
        return Qwen2Config(**common, num_key_value_heads=2)
    if family == "mistral":
        return MistralConfig(**common, num_key_value_heads=2)
    if family == "gemma":
        return GemmaConfig(**common, num_key_value_heads=2, head_dim=8)
    if family == "phi":
        return PhiConfig(**common)
    if family == "gpt_neox":
        return GPTNeoXConfig(**common)
    if family == "gpt2":
        return GPT2Config(**ids, n_embd=32, n_layer=2, n_head=4, n_positions=128)
    if family == "opt":
        return OPTConfig(**ids, hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                         max_position_embeddings=128, word_embed_proj_dim=32)
    raise AssertionError(family)


def _model(family: str, tokenizer):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(_config(family, tokenizer))


@pytest.fixture(scope="module", autouse=True)
def _quick_gc():
    """The Trainer ends every run with a full ``gc.collect()`` (accelerate's ``free_memory``), which
    walks every object the session has made: two thirds of a two-step run. Objects made before this
    module are frozen out of it (``gc.freeze``), which changes nothing else."""
    import gc

    # the heavy modules, imported before the freeze
    import peft  # noqa: F401

    import obliviate.api  # noqa: F401
    import obliviate.train.trainer  # noqa: F401

    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="module")
def arch_tokenizer():
    from obliviate.models.tiny import train_tokenizer

    texts = [f"{r['question']} {r['answer']}" for r in FORGET + RETAIN]
    return train_tokenizer(texts * 4, vocab_size=300, min_frequency=1)


def _losses(model, tokenizer) -> dict[str, float]:
    """Summed answer NLL of the forget answers, of the 'I don't know' answers IdkDPO prefers (the
    run's seed draws the same ones) and of the retain answers, encoded as the trainer encodes them."""
    from obliviate.logprobs import sequence_nll
    from obliviate.train.data import encode_forget, encode_record

    items = encode_forget(tokenizer, FORGET, forget_tokens="answer", max_length=128, with_idk=True, seed=0)
    groups = {"forget": [i["forget"] for i in items], "idk": [i["forget_idk"] for i in items],
              "retain": [encode_record(tokenizer, r, max_length=128) for r in RETAIN]}
    model.eval()
    out = {}
    with torch.no_grad():
        for name, encoded in groups.items():
            total = 0.0
            for e in encoded:
                ids, labels = torch.tensor([e["input_ids"]]), torch.tensor([e["labels"]])
                total += float(sequence_nll(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits,
                                            labels)[0].sum())
            out[name] = total
    return out


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory, arch_tokenizer):
    """``family -> (folder, losses of the base)``: each family's model saved once per module."""
    from obliviate.models.loading import load_model

    made: dict[str, tuple] = {}

    def get(family: str):
        if family not in made:
            folder = tmp_path_factory.mktemp(f"base-{family}")
            _model(family, arch_tokenizer).save_pretrained(folder)
            arch_tokenizer.save_pretrained(folder)
            made[family] = (folder, _losses(load_model(folder), arch_tokenizer))
        return made[family]
    return get


def _logits(model):
    with torch.no_grad():
        return model.eval()(input_ids=IDS, attention_mask=torch.ones_like(IDS)).logits


def _unlearn(family_dir, family, tmp_path, tokenizer, *, method, overrides, moved):
    """Unlearn, check the reload and the forget loss (``moved``: how it must change), return the
    run's unlearning.json."""
    from obliviate.api import unlearn
    from obliviate.models.loading import load_model

    folder, before = family_dir(family)
    out = tmp_path / "out"
    result = unlearn(str(folder), FORGET, RETAIN, method=method, overrides=overrides, out=out, show_progress=False)
    assert torch.equal(_logits(result.model), _logits(load_model(out))), f"{family}: reload changed the logits"
    after = _losses(result.model, tokenizer)
    delta = {k: after[k] - before[k] for k in before}
    if moved == "up":  # ascent-like objectives: the forget answers became less likely
        assert delta["forget"] > 0, f"{family} {method}: forget NLL did not rise ({delta})"
    elif moved == "margin":  # IdkDPO: 'I don't know' gained on the forget answer
        assert delta["forget"] - delta["idk"] > 0, f"{family} {method}: the IDK margin did not grow ({delta})"
    elif moved == "relative":  # EUL's retain epoch teaches the shared template: forget must gain less
        assert delta["forget"] > delta["retain"], f"{family} {method}: forget not unlearned relative to retain ({delta})"
    return json.loads((out / "unlearning.json").read_text())


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("scope", ["full", "lora"])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_objective_and_scope_on_every_family(family, scope, objective, family_dir, arch_tokenizer, tmp_path):
    rate = "1e-2" if scope == "lora" else "1e-3"
    overrides = [*STEPS, f"training.learning_rate={rate}"] + (["scope=lora"] if scope == "lora" else [])
    info = _unlearn(family_dir, family, tmp_path, arch_tokenizer, method=objective, overrides=overrides,
                    moved="margin" if objective == "idkdpo" else "up")
    if scope == "lora":
        assert info["scope"]["target_modules"] == LORA_DEFAULT[family]
        assert info["scope"]["targets_from"] == "peft-default"
        assert (tmp_path / "out" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("family", FAMILIES)
def test_eul_adapters_sit_on_each_familys_ffn(family, family_dir, arch_tokenizer, tmp_path):
    info = _unlearn(family_dir, family, tmp_path, arch_tokenizer, method="eul",
                    overrides=["schedule.cycles=1", "schedule.retain_per_cycle=4", "training.batch_size=4",
                               "training.learning_rate=1e-2"], moved="relative")
    assert info["scope"]["ffn_module"] == FFN[family] and info["scope"]["adapters"] == 2


@pytest.mark.parametrize("family", FAMILIES)
def test_uld_assistant_truncates_each_family(family, family_dir, arch_tokenizer, tmp_path):
    from obliviate.models.lora_targets import linear_leaf_names

    info = _unlearn(family_dir, family, tmp_path, arch_tokenizer, method="uld",
                    overrides=[*STEPS, "training.learning_rate=1e-2", "objective.augment=false"], moved="up")
    scope = info["scope"]
    assert scope["layers"] == 1 and scope["of_layers"] == 2
    # LoRA on every linear layer of the assistant but its output head
    assert scope["target_modules"] == linear_leaf_names(_model(family, arch_tokenizer))


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox"])
def test_wagle_masks_each_family(family, family_dir, arch_tokenizer, tmp_path):
    info = _unlearn(family_dir, family, tmp_path, arch_tokenizer, method="npo",
                    overrides=[*STEPS, "scope=wagle", "training.learning_rate=1e-3"], moved="up")
    assert 0 < info["scope"]["selected"] < info["scope"]["total"]
    assert {"layer 0", "layer 1", "other"} == set(info["scope"]["per_layer"])  # GPT-2's h.N too


@pytest.mark.parametrize("family", ["phi", "gpt2", "opt"])
def test_offset_runs_on_each_family(family, family_dir, arch_tokenizer, tmp_path):
    _unlearn(family_dir, family, tmp_path, arch_tokenizer, method="offset",
             overrides=[*STEPS, "training.learning_rate=1e-3"], moved="up")


# --- LoRA targets: defaults, fallbacks and refusals -------------------------------------------


def test_default_targets_fall_back_to_all_linear_without_a_peft_default(arch_tokenizer, monkeypatch):
    from transformers import AutoModelForCausalLM, Phi3Config

    from obliviate.models.lora_targets import linear_layers, resolve_lora_targets

    # Phi-3 (fused qkv_proj / gate_up_proj) has no peft default
    ids = {"vocab_size": len(arch_tokenizer), "pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 1}
    phi3 = AutoModelForCausalLM.from_config(Phi3Config(**ids, hidden_size=32, intermediate_size=64,
                                                       num_hidden_layers=2, num_attention_heads=4,
                                                       num_key_value_heads=2, max_position_embeddings=128))
    targets = resolve_lora_targets(phi3)
    assert targets.source == "all-linear" and targets.peft == "all-linear"
    assert targets.leaf_names == ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"]
    assert targets.modules == linear_layers(phi3) and "lm_head" not in targets.modules
    # a peft default naming modules this model lacks also falls back
    llama = _model("llama", arch_tokenizer)
    monkeypatch.setattr(llama.config, "model_type", "gpt2")
    assert resolve_lora_targets(llama).source == "all-linear"


def test_given_targets_are_checked_and_all_linear_is_accepted(arch_tokenizer):
    from obliviate.errors import ConfigError
    from obliviate.scopes import SCOPES

    gpt2 = _model("gpt2", arch_tokenizer)
    scope = SCOPES.build({"name": "lora", "target_modules": "attn.c_attn,c_fc"})
    wrapped = scope.prepare(gpt2)
    assert scope.info["target_modules"] == ["c_attn", "c_fc"] and scope.info["targets_from"] == "recipe"
    assert scope.info["adapted_layers"] == 4
    assert wrapped.peft_config["default"].fan_in_fan_out  # GPT-2's Conv1D stores weights transposed
    scope = SCOPES.build({"name": "lora", "target_modules": ["all-linear"]})
    scope.prepare(_model("opt", arch_tokenizer))
    assert scope.info["target_modules"] == ["fc1", "fc2", "k_proj", "out_proj", "q_proj", "v_proj"]
    with pytest.raises(ConfigError, match=r"whole blocks .*GPT2MLP.*c_attn, c_fc, c_proj") as exc:
        SCOPES.build({"name": "lora", "target_modules": ["mlp"]}).prepare(_model("gpt2", arch_tokenizer))
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="named nope;"):
        SCOPES.build({"name": "lora", "target_modules": ["q_proj", "nope"]}).prepare(_model("llama", arch_tokenizer))


def test_wrong_target_modules_are_refused_before_training_in_one_line(family_dir, tmp_path):
    from obliviate.api import unlearn
    from obliviate.errors import ConfigError

    folder, _ = family_dir("gpt2")
    with pytest.raises(ConfigError) as exc:
        unlearn(str(folder), FORGET, RETAIN, method="npo", out=tmp_path / "out", show_progress=False,
                overrides=[*STEPS, "scope=lora", "scope.target_modules=q_proj,v_proj"])
    message = str(exc.value)
    assert "\n" not in message and "q_proj, v_proj" in message
    assert "its linear layers are c_attn, c_fc, c_proj" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("family", ["gpt2", "gpt_neox"])
def test_cli_unlearn_with_scope_lora_needs_no_extra_flags(family, family_dir, tmp_path, capsys):
    from obliviate.cli import main

    folder, _ = family_dir(family)
    forget, retain = tmp_path / "forget.jsonl", tmp_path / "retain.jsonl"
    forget.write_text("".join(json.dumps(r) + "\n" for r in FORGET))
    retain.write_text("".join(json.dumps(r) + "\n" for r in RETAIN))
    out = tmp_path / "out"
    argv = ["unlearn", "--model", str(folder), "--forget", str(forget), "--retain", str(retain), "--quiet"]
    assert main([*argv, "--out", str(out), "--set", "scope=lora"]) == 0
    info = json.loads((out / "unlearning.json").read_text())
    assert info["scope"]["target_modules"] == LORA_DEFAULT[family]
    assert (out / "adapter_config.json").is_file()
    # a wrong name: exit status 2 and one line naming the modules the model has
    capsys.readouterr()
    assert main([*argv, "--out", str(tmp_path / "bad"), "--set", "scope=lora",
                 "--set", "scope.target_modules=q_proj"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and LORA_DEFAULT[family][0] in err and "q_proj" in err


def test_report_names_the_lora_targets_and_why():
    from obliviate.report.writer import _unlearning_section

    lines = _unlearning_section({"scope": {"target_modules": ["c_attn"], "targets_from": "peft-default",
                                           "model_type": "gpt2", "adapted_layers": 12, "r": 8, "alpha": 16}})
    assert lines and "LoRA r 8 on c_attn (peft's default for gpt2), 12 layers" in "\n".join(lines)
