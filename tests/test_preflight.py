"""Bad model folders, data files and saved results are refused up front, in one line naming the
file or folder, before any weights load. Every model here is built in a second (no training)."""

from __future__ import annotations

import json
import math
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from obliviate.errors import ConfigError, DataError, ObliviateError
from obliviate.models.preflight import check_model_folder, read_safetensors_header, tokenizer_size

VOCAB = 64  # the tiny models' embedding rows
N_TOKENS = 40  # the tiny tokenizer's size: fits the embeddings


# ---- building tiny folders ----------------------------------------------------------------------

def _tokenizer(n_tokens: int = N_TOKENS) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{f"w{i}": i + 3 for i in range(n_tokens - 3)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def _llama() -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                        num_key_value_heads=2, intermediate_size=32, tie_word_embeddings=False))


def _build(root: Path) -> None:
    """plain, sharded, peft (LoRA adapter on plain), composed (ULD-style) and eul folders."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import save_file
    from transformers import LlamaForCausalLM

    tokenizer = _tokenizer()
    model = _llama()
    plain = root / "plain"
    model.save_pretrained(plain)
    tokenizer.save_pretrained(plain)
    model.save_pretrained(root / "sharded", max_shard_size="8KB")
    tokenizer.save_pretrained(root / "sharded")

    base = LlamaForCausalLM.from_pretrained(plain)
    adapter = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    adapter.save_pretrained(root / "peft")
    tokenizer.save_pretrained(root / "peft")

    composed = root / "composed"
    shutil.copytree(root / "peft", composed / "assistant")
    (composed / "composition.json").write_text(json.dumps({
        "type": "logit_diff", "alpha": 1.0, "rho": None, "base": str(plain),
        "assistant": {"layers": 1, "base_layers": 1, "fingerprint": ""}}), encoding="utf-8")
    tokenizer.save_pretrained(composed)

    eul = root / "eul"
    eul.mkdir()
    weights = {"model.layers.0.mlp.down.weight": torch.zeros(2, 16), "model.layers.0.mlp.up.weight": torch.zeros(16, 2)}
    save_file(weights, str(eul / "eul_adapter.safetensors"))
    (eul / "eul_adapter.json").write_text(json.dumps({
        "type": "eul", "modules": ["model.layers.0.mlp"], "hidden_size": 16, "bottleneck": 2, "init_seed": 0,
        "base": str(plain), "info": {}}), encoding="utf-8")
    tokenizer.save_pretrained(eul)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    _build(root)
    return root


@pytest.fixture
def models(pristine, tmp_path) -> Path:
    """A private copy of every folder, with the references between them pointing into the copy."""
    root = tmp_path / "models"
    shutil.copytree(pristine, root)
    for name in ("adapter_config.json", "composition.json", "eul_adapter.json"):
        for path in root.rglob(name):
            path.write_text(path.read_text(encoding="utf-8").replace(str(pristine), str(root)), encoding="utf-8")
    return root


def _refused(path: Path | str, error: type[ObliviateError] = ConfigError) -> str:
    """The one-line message check_model_folder refuses ``path`` with."""
    with pytest.raises(error) as info:
        check_model_folder(path)
    message = str(info.value)
    assert message and "\n" not in message and message == message.strip()
    return message


# ---- ways to break a folder ----------------------------------------------------------------------

def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _first_shard(folder: Path) -> Path:
    return min(folder.glob("model-*.safetensors"))


def _with_header(path: Path, edit: Callable[[dict], None]) -> None:
    """Rewrite a safetensors header (same data bytes)."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    edit(header)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + length:])


def _edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def _wrong_shape(header: dict) -> None:
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [d + 1 for d in header[name]["shape"]]


def _bin_only(folder: Path) -> None:
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def _peft_bin_only(folder: Path) -> None:
    (folder / "adapter_model.bin").write_bytes(b"pickle")
    (folder / "adapter_model.safetensors").unlink()


def _bigger_tokenizer(folder: Path) -> None:
    _tokenizer(VOCAB + 6).save_pretrained(folder)


def _added_token_beyond_vocab(folder: Path) -> None:
    _edit_json(folder / "tokenizer.json", lambda t: t["added_tokens"].append(
        {"id": 200, "content": "<extra>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}))


def _empty(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.mkdir()


# (case id, folder to break, how, path to check (relative to the models root), text the message has,
#  file the message names)
BROKEN = [
    ("truncated", "plain", lambda f: _truncate(f / "model.safetensors"), "plain", "is truncated", "model.safetensors"),
    ("garbage", "plain", lambda f: (f / "model.safetensors").write_bytes(bytes(range(256)) * 40), "plain",
     "not a safetensors file", "model.safetensors"),
    ("header-longer-than-file", "plain", lambda f: (f / "model.safetensors").write_bytes(
        struct.pack("<Q", 10_000) + b'{"a": 1}'), "plain", "header alone should be 10000 bytes", "model.safetensors"),
    ("header-not-json", "plain", lambda f: (f / "model.safetensors").write_bytes(
        struct.pack("<Q", 6) + b"{oops!" + b"\0" * 64), "plain", "header is not valid JSON", "model.safetensors"),
    ("too-short", "plain", lambda f: (f / "model.safetensors").write_bytes(b"abc"), "plain",
     "only 3 bytes", "model.safetensors"),
    ("stray-bytes", "plain", lambda f: (f / "model.safetensors").open("ab").write(b"x" * 10), "plain",
     "10 stray bytes", "model.safetensors"),
    ("shape-vs-offsets", "plain", lambda f: _with_header(f / "model.safetensors", _wrong_shape), "plain",
     "needs", "model.safetensors"),
    ("no-config", "plain", lambda f: (f / "config.json").unlink(), "plain", "no config.json", "config.json"),
    ("corrupt-config", "plain", lambda f: _truncate(f / "config.json"), "plain", "not valid JSON", "config.json"),
    ("empty-folder", "plain", _empty, "plain", "the folder is empty", "plain"),
    ("file-not-folder", "plain", lambda f: None, "plain/model.safetensors", "this is a file, not a folder",
     "model.safetensors"),
    ("not-a-model", "plain", lambda f: [p.unlink() for p in f.iterdir() if p.name != "tokenizer.json"], "plain",
     "not a model folder", "plain"),
    ("corrupt-tokenizer", "plain", lambda f: _truncate(f / "tokenizer.json", 0.7), "plain", "not valid JSON",
     "tokenizer.json"),
    ("tokenizer-without-vocab", "plain", lambda f: _edit_json(f / "tokenizer.json", lambda t: t.pop("model")),
     "plain", "no model vocabulary", "tokenizer.json"),
    ("corrupt-tokenizer-config", "plain", lambda f: (f / "tokenizer_config.json").write_text("{", encoding="utf-8"),
     "plain", "not valid JSON", "tokenizer_config.json"),
    ("tokenizer-bigger-than-embedding", "plain", _bigger_tokenizer, "plain", f"has {VOCAB + 6} tokens but",
     "tokenizer.json"),
    ("added-token-beyond-embedding", "plain", _added_token_beyond_vocab, "plain", "has 201 tokens but", "plain"),
    ("vocab-size-shrunk", "plain", lambda f: _edit_json(f / "config.json", lambda c: c.update(vocab_size=8)), "plain",
     "only 8 rows", "tokenizer.json"),
    ("bin-only", "plain", _bin_only, "plain", "safetensors only", "pytorch_model.bin"),
    ("missing-shard", "sharded", lambda f: _first_shard(f).unlink(), "sharded", "is missing", "model-00001-of-"),
    ("truncated-shard", "sharded", lambda f: _truncate(_first_shard(f)), "sharded", "is truncated", "model-00001-of-"),
    ("shards-without-index", "sharded", lambda f: (f / "model.safetensors.index.json").unlink(), "sharded",
     "no model.safetensors.index.json", "model.safetensors.index.json"),
    ("corrupt-index", "sharded", lambda f: _truncate(f / "model.safetensors.index.json"), "sharded",
     "not valid JSON", "model.safetensors.index.json"),
    ("shard-from-another-save", "sharded", lambda f: _with_header(
        _first_shard(f), lambda h: h.update({"renamed": h.pop(next(k for k in h if k != "__metadata__"))})),
     "sharded", "lacks 1 tensor", "model-00001-of-"),
    ("peft-truncated", "peft", lambda f: _truncate(f / "adapter_model.safetensors"), "peft", "is truncated",
     "adapter_model.safetensors"),
    ("peft-bin-only", "peft", _peft_bin_only, "peft", "safetensors only", "adapter_model.bin"),
    ("peft-corrupt-config", "peft", lambda f: _truncate(f / "adapter_config.json"), "peft", "not valid JSON",
     "adapter_config.json"),
    ("peft-base-missing", "peft", lambda f: _edit_json(
        f / "adapter_config.json", lambda c: c.update(base_model_name_or_path=str(f.parent / "gone"))), "peft",
     "base model", "gone"),
    ("peft-base-broken", "plain", lambda f: _truncate(f / "model.safetensors"), "peft", "its base model is broken",
     "model.safetensors"),
    ("peft-tokenizer-bigger-than-base", "peft", _bigger_tokenizer, "peft", f"has {VOCAB + 6} tokens but", "peft"),
    ("composed-no-assistant", "composed", lambda f: shutil.rmtree(f / "assistant"), "composed", "assistant/ is missing",
     "composed"),
    ("composed-corrupt-spec", "composed", lambda f: _truncate(f / "composition.json"), "composed", "not valid JSON",
     "composition.json"),
    ("composed-bad-type", "composed", lambda f: _edit_json(f / "composition.json", lambda c: c.update(type="sum")),
     "composed", "not a valid composition file", "composition.json"),
    ("composed-base-missing", "plain", lambda f: shutil.rmtree(f), "composed", "is missing", "plain"),
    ("composed-assistant-truncated", "composed", lambda f: _truncate(f / "assistant" / "adapter_model.safetensors"),
     "composed", "its assistant is broken", "adapter_model.safetensors"),
    ("composed-tokenizer-bigger-than-base", "composed", _bigger_tokenizer, "composed", "tokens but", "composed"),
    ("eul-truncated", "eul", lambda f: _truncate(f / "eul_adapter.safetensors"), "eul", "is truncated",
     "eul_adapter.safetensors"),
    ("eul-no-weights", "eul", lambda f: (f / "eul_adapter.safetensors").unlink(), "eul", "no eul_adapter.safetensors",
     "eul_adapter.json"),
    ("eul-base-missing", "plain", lambda f: shutil.rmtree(f), "eul", "base model", "is missing"),
    ("eul-bad-spec", "eul", lambda f: _edit_json(f / "eul_adapter.json", lambda c: c.pop("base")), "eul",
     "not a valid unlearning-adapter file", "eul_adapter.json"),
]


@pytest.mark.parametrize("folder, breaks, checked, expected, names",
                         [pytest.param(*case[1:], id=case[0]) for case in BROKEN])
def test_broken_folders_are_refused_in_one_line(models, folder, breaks, checked, expected, names):
    breaks(models / folder)
    message = _refused(models / checked)
    assert expected in message, message
    assert names in message, message
    assert message.startswith(f"model {models / checked}"), message  # names the folder the user gave


@pytest.mark.parametrize("byte_level", [True, False])
def test_an_unknown_token_past_the_embeddings_counts_only_where_it_can_be_emitted(models, byte_level):
    """transformers 5 re-saves some tokenizers (Qwen2's class) with an extra unknown token; a
    byte-level tokenizer never emits it, any other may."""
    folder = models / "plain"

    def add_unk(tokenizer: dict) -> None:
        tokenizer["added_tokens"].append({"id": VOCAB, "content": "<|endoftext|>", "special": True})
        if byte_level:
            tokenizer["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False}

    _edit_json(folder / "tokenizer.json", add_unk)
    _edit_json(folder / "tokenizer_config.json", lambda c: c.update(unk_token="<|endoftext|>"))
    if byte_level:
        check_model_folder(folder)
    else:
        assert f"has {VOCAB + 1} tokens but" in _refused(folder)


def test_missing_local_path_is_refused_and_hub_ids_pass(tmp_path):
    assert "no such folder" in _refused(tmp_path / "nope")
    assert "no such folder" in _refused("./no/such/model")
    for hub_id in ("gpt2", "someone/some-model"):
        check_model_folder(hub_id)  # cannot be checked offline: left to the loader


@pytest.mark.parametrize("folder", ["plain", "sharded", "peft", "composed", "eul", "composed/assistant"])
def test_good_folders_pass(models, folder):
    check_model_folder(models / folder)
    check_model_folder(str(models / folder))


def test_hub_base_is_not_followed(models):
    _edit_json(models / "peft" / "adapter_config.json", lambda c: c.update(base_model_name_or_path="someone/base"))
    check_model_folder(models / "peft")


def test_results_are_cached_until_a_file_changes(models, monkeypatch):
    from obliviate.models import preflight

    check_model_folder(models / "plain")
    calls = []
    monkeypatch.setattr(preflight, "tokenizer_size", lambda *a: calls.append(a))
    check_model_folder(models / "plain")
    assert not calls  # unchanged: nothing read again
    monkeypatch.undo()
    _truncate(models / "plain" / "model.safetensors")
    assert "truncated" in _refused(models / "plain")


def test_header_reader_and_tokenizer_size(models):
    tensors = read_safetensors_header(models / "plain" / "model.safetensors")
    assert tensors["model.embed_tokens.weight"]["shape"] == [VOCAB, 16]
    assert tokenizer_size(models / "plain") == N_TOKENS
    assert tokenizer_size(models) is None  # no tokenizer.json: nothing to measure


# ---- the loaders check first -----------------------------------------------------------------------

def test_loaders_refuse_before_transformers_runs(models):
    from obliviate.models.loading import load_model, load_tokenizer

    assert len(load_tokenizer(models / "plain")) == N_TOKENS
    assert load_model(models / "plain").config.vocab_size == VOCAB
    _truncate(models / "plain" / "model.safetensors")
    for loader in (load_model, load_tokenizer):
        with pytest.raises(ConfigError, match="model.safetensors is truncated") as info:
            loader(models / "plain")
        assert "\n" not in str(info.value)
    _bigger_tokenizer(models / "sharded")
    with pytest.raises(ConfigError, match="tokens but"):
        load_tokenizer(models / "sharded")


def test_hub_loader_errors_stay_one_line(monkeypatch):
    import transformers

    from obliviate.models.loading import load_model, load_tokenizer

    for loader in (load_model, load_tokenizer):  # offline in tests: the hub cannot be reached
        with pytest.raises(ConfigError, match="^model someone/no-such-model: could not load") as info:
            loader("someone/no-such-model")
        assert "\n" not in str(info.value)

    def unrecognised(*args, **kwargs):
        raise ValueError("\nThe checkpoint has model type 'novel' that Transformers does not recognise.\nUpgrade.")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", unrecognised)
    with pytest.raises(ConfigError, match=r"could not load it \(The checkpoint has model type 'novel'") as info:
        load_model("someone/novel-model")
    assert "\n" not in str(info.value) and "Upgrade" not in str(info.value)


def test_cli_reports_a_broken_model_in_one_line(models, capsys):
    from obliviate.cli import main

    _truncate(models / "plain" / "model.safetensors")
    code = main(["eval", "--model", str(models / "plain"), "--size", "test", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "model.safetensors is truncated" in err and str(models / "plain") in err


# ---- LoRA targets from the headers ------------------------------------------------------------------

def test_module_names_come_from_the_headers(models):
    from obliviate.models.lora_targets import module_names, saved_linear_leaf_names

    names = module_names(models / "plain")
    assert {"model.layers.0.self_attn.q_proj", "model.layers.0.mlp", "lm_head", "model"} <= set(names)
    assert module_names(models / "sharded") == names  # every shard read
    assert module_names(models / "peft") == names  # an adapter: its base's modules
    assert module_names("someone/some-model") is None and module_names(models / "composed") is None
    assert saved_linear_leaf_names(models / "plain") == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj",
                                                         "up_proj", "v_proj"]


@pytest.mark.parametrize("targets", [["q_proj"], ["self_attn.v_proj", "mlp.up_proj"], "all-linear", None, []])
def test_existing_lora_targets_pass(models, targets):
    from obliviate.models.lora_targets import check_targets_in_folder

    check_targets_in_folder(models / "plain", targets)


@pytest.mark.parametrize("targets, expected", [
    (["nope"], "is named nope"),
    (["q_proj", "c_attn"], "is named c_attn"),
    (["all-linear", "q_proj"], "mixes 'all-linear'"),
])
def test_missing_lora_targets_are_refused(models, targets, expected):
    from obliviate.models.lora_targets import check_targets_in_folder

    with pytest.raises(ConfigError) as info:
        check_targets_in_folder(models / "sharded", targets, where="scope lora")
    message = str(info.value)
    assert expected in message and "\n" not in message and message.startswith("scope lora")
    if "named" in message:
        assert str(models / "sharded") in message and "q_proj" in message.split("linear layers are")[1]


# ---- data files -------------------------------------------------------------------------------

def _data_error(source: Any, **kwargs: Any) -> str:
    from obliviate.data.loaders import load_records

    with pytest.raises(DataError) as info:
        load_records(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(source) in message
    return message


@pytest.mark.parametrize("name, content, expected", [
    ("latin1.jsonl", '{"question": "Wh\xe9re?", "answer": "x"}\n'.encode("latin-1"), "line 1: not valid UTF-8"),
    ("latin1.csv", "question,answer\nok,ok\nWh\xe9re,x\n".encode("latin-1"), "line 3: not valid UTF-8"),
    ("utf16.jsonl", '{"question": "q", "answer": "a"}\n'.encode("utf-16"), "UTF-16 text, not UTF-8"),
    ("utf32.json", '[{"question": "q", "answer": "a"}]'.encode("utf-32"), "UTF-32 text, not UTF-8"),
    ("utf16-no-bom.jsonl", '{"question": "q", "answer": "a"}\n'.encode("utf-16-le"), "contains NUL bytes"),
    ("unclosed.csv", b'question,answer\nok,ok\n"never closed,x\n', "line 3: a quoted cell"),
    ("stray-quote.csv", b'question,answer\n"a"b,x\n', "malformed CSV"),
    ("semicolons.csv", b"question;answer\nq;a\n", "semicolon-separated"),
    ("tabs.csv", b"question\tanswer\nq\ta\n", "tab-separated"),
])
def test_bad_data_files_are_refused(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    assert expected in _data_error(path)


def test_good_csv_still_loads(tmp_path):
    from obliviate.data.loaders import load_records

    path = tmp_path / "ok.csv"
    path.write_bytes('\ufeffquestion,answer\n"He said ""hi""",5" screen\n'.encode())
    assert load_records(path) == [{"question": 'He said "hi"', "answer": '5" screen'}]


def test_read_utf8_text_raises_the_callers_error(tmp_path):
    from obliviate.data.loaders import read_utf8_text

    path = tmp_path / "recipe.yaml"
    path.write_bytes("method: npo # caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"recipe.yaml: line 1: not valid UTF-8"):
        read_utf8_text(path, error=ConfigError)
    path.write_text("method: npo # café\n", encoding="utf-8")
    assert read_utf8_text(path).startswith("method")


def test_unknown_splits_are_refused(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")

    def load_dataset(name, config=None, *, split=None):
        raise ValueError(f"Unknown split \"{split}\". Should be one of ['train', 'test'].")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    assert "no split 'bogus' in this dataset; its splits are train, test" in _data_error("someone/data", split="bogus")
    (tmp_path / "forget.jsonl").write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    assert "no file for split 'bogus'" in _data_error(tmp_path, split="bogus")


def test_tofu_refuses_unknown_splits_and_reads_the_hub_layout(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from obliviate.benchmarks.tofu import load
    from obliviate.data.tofu import load_tofu

    with pytest.raises(ConfigError, match="forget split 'bogus' is not one of tofu's"):
        load("bogus", str(tmp_path))
    with pytest.raises(DataError, match="unknown config 'bogus'"):
        load_tofu("bogus", tmp_path)
    (tmp_path / "forget10").mkdir()
    shard = tmp_path / "forget10" / "train-00000-of-00001.parquet"
    pq.write_table(pa.table({"question": ["q"], "answer": ["a"]}), shard)
    assert load_tofu("forget10", tmp_path) == [{"question": "q", "answer": "a"}]


# ---- saved evaluation results -------------------------------------------------------------------

def _saved_eval(folder: Path, forget: list[dict] | None = None, summary: Any = None) -> Path:
    items = folder / "items"
    items.mkdir(parents=True)
    forget = forget if forget is not None else [{"question": f"q{i}", "truth_ratio": 0.5, "avg_nll": 1.0}
                                                for i in range(3)]
    (items / "forget.jsonl").write_text("".join(json.dumps(r) + "\n" for r in forget), encoding="utf-8")
    (items / "holdout.jsonl").write_text(json.dumps({"question": "h", "avg_nll": 2.0}) + "\n", encoding="utf-8")
    summary = {"metrics": {"forget_Truth_Ratio": 0.5, "mia_auc_min_k": 0.6}} if summary is None else summary
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


def _results_error(folder: Path) -> str:
    from obliviate.evaluate.results import load_eval_result

    with pytest.raises(DataError) as info:
        load_eval_result(folder)
    message = str(info.value)
    assert "\n" not in message
    return message


NAN_ITEM = {"question": "q", "truth_ratio": math.nan, "avg_nll": 1.0}


@pytest.mark.parametrize("breaks, expected, names", [
    (lambda f: _saved_eval(f, forget=[NAN_ITEM]), "item 1 has truth_ratio NaN", "forget.jsonl"),
    (lambda f: _saved_eval(f, forget=[{**NAN_ITEM, "truth_ratio": 1.0, "avg_nll": math.nan}]), "avg_nll NaN",
     "forget.jsonl"),
    (lambda f: (_saved_eval(f), (f / "items" / "holdout.jsonl").write_text('{"avg_nll": NaN}\n')), "avg_nll NaN",
     "holdout.jsonl"),
    (lambda f: (_saved_eval(f), _truncate(f / "items" / "forget.jsonl", 0.6)), "not valid JSON", "forget.jsonl"),
    (lambda f: (_saved_eval(f), _truncate(f / "items" / "holdout.jsonl", 0.6)), "truncated", "holdout.jsonl"),
    (lambda f: (_saved_eval(f), (f / "items" / "forget.jsonl").unlink()), "no such file", "forget.jsonl"),
    (lambda f: _saved_eval(f, forget=[]), "no items", "forget.jsonl"),
    (lambda f: _saved_eval(f, summary={"metrics": {"forget_Truth_Ratio": math.nan}}), "forget_Truth_Ratio is NaN",
     "summary.json"),
    (lambda f: _saved_eval(f, summary={"metrics": {"mia_auc_min_k": math.nan}}), "mia_auc_min_k is NaN",
     "summary.json"),
    (lambda f: (_saved_eval(f), _truncate(f / "summary.json")), "not valid JSON", "summary.json"),
    (lambda f: (_saved_eval(f), (f / "items" / "forget.jsonl").write_bytes(b"\xff\xfe")), "not UTF-8",
     "forget.jsonl"),
])
def test_broken_saved_results_are_refused(tmp_path, breaks, expected, names):
    folder = tmp_path / "retain"
    breaks(folder)
    message = _results_error(folder)
    assert expected in message and names in message and str(folder) in message, message


def test_good_saved_results_load_and_nan_in_memory_is_refused(tmp_path):
    from obliviate.evaluate.results import check_retain_results, load_eval_result
    from obliviate.evaluate.tofu import EvalResult, SplitResult

    excluded = {"question": "q3", "excluded": "no answer tokens", "avg_nll": math.nan}
    result = load_eval_result(_saved_eval(tmp_path / "ok", forget=[
        {"question": f"q{i}", "truth_ratio": 0.5, "avg_nll": 1.0} for i in range(3)] + [excluded]))
    assert result.splits["forget"].truth_ratios == [0.5, 0.5, 0.5] and "holdout" in result.splits
    broken = EvalResult({"forget": SplitResult([NAN_ITEM], {})}, {})
    with pytest.raises(DataError, match=r"forget.jsonl: item 1 has truth_ratio NaN"):
        check_retain_results(broken, {"path": str(tmp_path / "x")}, benchmark="authors", forget_split="forget10",
                             size="test", seed=0, eval_splits={"forget": [{"question": "q"}]})
