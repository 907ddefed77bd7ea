"""`--quiet` silences every progress bar: ours, Trainer's, transformers', huggingface_hub's, datasets'."""

from __future__ import annotations

import json
import re
import sys

import pytest

from obliviate.cli import main
from obliviate.progress import _QUIET_ENV, silence_all

# What a tqdm bar leaves in a captured stream: "37%|███▋      | 3/8 [00:01<00:02, 2.1it/s]".
BAR = re.compile(r"\d+%\|| \d+/\d+ \[|it/s\]|s/it\]")


@pytest.fixture
def bars_on(monkeypatch):
    """A process as a user starts it: no OBLIVIATE_PROGRESS=0 (conftest sets it), library bars on;
    the environment and the libraries' switches are restored afterwards."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as hf_logging

    for key in _QUIET_ENV:
        monkeypatch.delenv(key, raising=False)
    hub_was_off, hf_was_on = are_progress_bars_disabled(), hf_logging.is_progress_bar_enabled()

    def turn_on():
        hf_logging.enable_progress_bar()  # turns huggingface_hub's on too
    turn_on()
    yield turn_on
    (hf_logging.enable_progress_bar if hf_was_on else hf_logging.disable_progress_bar)()
    (disable_progress_bars if hub_was_off else enable_progress_bars)()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_data):
    """A random tiny Llama and a tokenizer trained on a few records (no session build needed)."""
    from obliviate.models.tiny import TinyModelConfig, build_tiny_llama, train_tokenizer

    records = [{"question": r["question"], "answer": r["answer"]} for r in tiny_data.forget[:8]]
    tokenizer = train_tokenizer([r["question"] + " " + r["answer"] for r in records] * 4, vocab_size=300)
    model = build_tiny_llama(tokenizer, TinyModelConfig(hidden_size=32, intermediate_size=64,
                                                        num_attention_heads=2, vocab_size=300))
    root = tmp_path_factory.mktemp("quiet")
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    return root / "base", data


def _finetune(model, data, out, *extra):
    return main(["finetune", "--model", str(model), "--data", str(data), "--out", str(out), "--epochs", "1",
                 "--batch-size", "2", "--max-length", "64", *extra])


def test_quiet_finetune_prints_no_progress_bar(bars_on, tiny_model, tmp_path, capfd):
    model, data = tiny_model
    # Control: without --quiet the same command shows bars, so the check below can see one.
    assert _finetune(model, data, tmp_path / "loud") == 0
    loud = capfd.readouterr()
    assert BAR.search(loud.err + loud.out), loud.err

    bars_on()
    assert _finetune(model, data, tmp_path / "quiet", "--quiet") == 0
    quiet = capfd.readouterr()
    assert "saved to" in quiet.out
    assert not BAR.search(quiet.err + quiet.out), quiet.err
    assert "\r" not in quiet.err


def test_silence_all_turns_off_every_library_s_bars(bars_on):
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as hf_logging

    assert not are_progress_bars_disabled() and hf_logging.is_progress_bar_enabled()
    silence_all()
    assert are_progress_bars_disabled() and not hf_logging.is_progress_bar_enabled()
    if "datasets" in sys.modules:
        from datasets.utils import are_progress_bars_disabled as datasets_bars_off

        assert datasets_bars_off()
    # ours, Trainer's (through training_arguments) and, for libraries imported later, theirs
    from obliviate.progress import progress_enabled

    assert not progress_enabled()
    import os

    assert all(os.environ[k] == v for k, v in _QUIET_ENV.items())


def test_quiet_embedded_build_prints_no_progress_bar(bars_on, monkeypatch, tmp_path, capfd):
    """`finetune` without --model builds the embedded models; saving them is where transformers'
    "Writing model shards" bar showed through --quiet (training is faked here: seconds, not 40)."""
    import obliviate.benchmarks.authors as bench

    monkeypatch.setenv("OBLIVIATE_CACHE", str(tmp_path))
    monkeypatch.setattr(bench, "finetune", lambda model, *_, **__: model)
    assert main(["finetune", "--size", "test", "--quiet"]) == 0
    captured = capfd.readouterr()
    assert "building the embedded target model" in captured.out and "retain: " in captured.out
    assert not BAR.search(captured.err + captured.out), captured.err
