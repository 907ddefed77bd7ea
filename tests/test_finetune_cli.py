"""`obliviate finetune --model`: full and LoRA fine-tuning of any model on QA/text records, and the
embedded mode (no --model) unchanged."""

from __future__ import annotations

import json

import pytest

from obliviate.cli import main


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def records(tiny_data):
    return [{"question": r["question"], "answer": r["answer"]} for r in tiny_data.forget[:8]]


@pytest.fixture(scope="module")
def base_model(tmp_path_factory, records):
    """A random tiny Llama (hidden 32, 2 layers) and a tokenizer trained on the records."""
    from obliviate.models.tiny import TinyModelConfig, build_tiny_llama, train_tokenizer

    tokenizer = train_tokenizer([r["question"] + " " + r["answer"] for r in records] * 4, vocab_size=300)
    model = build_tiny_llama(tokenizer, TinyModelConfig(hidden_size=32, intermediate_size=64,
                                                        num_attention_heads=2, vocab_size=300))
    folder = tmp_path_factory.mktemp("finetune") / "base"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def data_file(tmp_path_factory, records):
    return write_jsonl(tmp_path_factory.mktemp("finetune-data") / "train.jsonl", records)


def answer_nll(model, tokenizer, records):
    from obliviate.evaluate.scoring import score_pairs

    scores = score_pairs(model, tokenizer, [(r["question"], r["answer"]) for r in records], show_progress=False)
    return sum(s.sum_nll for s in scores) / sum(s.n_tokens for s in scores)


def test_full_finetune_lowers_answer_nll_and_reloads(tmp_path, capsys, base_model, data_file, records):
    from obliviate.models.loading import load_model, load_tokenizer

    out = tmp_path / "ft"
    code = main(["finetune", "--model", str(base_model), "--data", str(data_file), "--epochs", "2",
                 "--learning-rate", "1e-3", "--batch-size", "4", "--max-length", "64", "--out", str(out),
                 "--quiet"])
    assert code == 0
    assert "saved to" in capsys.readouterr().out
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    info = json.loads((out / "finetune.json").read_text())
    assert info["n_records"] == 8 and info["mode"] == "full" and info["settings"]["epochs"] == 2
    assert info["settings"]["scheduler"] == "linear" and info["settings"]["learning_rate"] == 1e-3
    assert info["data"] == str(data_file.resolve()) and info["seconds"] >= 0
    tokenizer = load_tokenizer(base_model)
    before = answer_nll(load_model(base_model), tokenizer, records)
    after = answer_nll(load_model(out), load_tokenizer(out), records)
    assert after < before - 0.05


def test_lora_saves_only_the_adapter(tmp_path, base_model, data_file, records):
    from peft import PeftModel

    from obliviate import finetune
    from obliviate.models.loading import load_model, load_tokenizer

    result = finetune(str(base_model), data_file, out=tmp_path / "lora", lora=True, lora_r=4, epochs=2,
                      learning_rate=1e-2, batch_size=4, max_length=64, show_progress=False)
    assert result.n_records == 8
    files = {p.name for p in result.out.iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "finetune.json"} <= files
    assert "model.safetensors" not in files
    config = json.loads((result.out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base_model.resolve()) and config["r"] == 4
    info = json.loads((result.out / "finetune.json").read_text())
    assert info["mode"] == "lora" and info["lora"]["target_modules"] == "all-linear"
    tokenizer = load_tokenizer(base_model)
    adapted = PeftModel.from_pretrained(load_model(base_model), result.out)
    assert answer_nll(adapted, tokenizer, records) < answer_nll(load_model(base_model), tokenizer, records)


def test_default_learning_rates():
    from obliviate.train.finetune import user_finetune_config

    assert user_finetune_config().learning_rate == 1e-5
    assert user_finetune_config(lora=True).learning_rate == 1e-4
    assert user_finetune_config(lora=True, learning_rate=3e-4).learning_rate == 3e-4
    assert user_finetune_config().epochs == 3 and user_finetune_config().weight_decay == 0.0


@pytest.mark.parametrize("extra, expected", [
    (["--epochs", "0"], "epochs must be a number > 0"),
    (["--learning-rate=-1e-5"], "learning_rate must be a number > 0"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--lora", "--lora-r", "0"], "LoRA rank"),
    (["--empty"], "no records"),
    (["--missing"], "no such file"),
    (["--existing"], "already exists"),
    (["--no-out"], "needs --out"),
])
def test_bad_input_one_line_exit_2(tmp_path, capsys, base_model, data_file, extra, expected):
    out = tmp_path / "out"
    data = data_file
    if extra == ["--empty"]:
        data, extra = tmp_path / "empty.jsonl", []
        data.write_text("")
    elif extra == ["--missing"]:
        data, extra = tmp_path / "absent.jsonl", []
    elif extra == ["--existing"]:
        out.mkdir()
        (out / "keep.txt").write_text("mine")
        extra = []
    argv = ["finetune", "--model", str(base_model), "--data", str(data), "--quiet", *extra]
    if extra != ["--no-out"]:
        argv += ["--out", str(out)]
    else:
        argv.remove("--no-out")
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("obliviate: error:") and "\n" not in err and expected in err
    if expected == "already exists":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()
    assert not list(tmp_path.glob(".out.*"))


def test_own_model_options_need_model(tmp_path, capsys):
    code = main(["finetune", "--data", "x.jsonl", "--out", str(tmp_path / "o"), "--quiet"])
    assert code == 2 and "needs --model" in capsys.readouterr().err


def test_embedded_mode_unchanged(capsys, tiny_models):
    assert main(["finetune", "--size", "test", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"target: {tiny_models.target}\nretain: {tiny_models.retain}" in out
