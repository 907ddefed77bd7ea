"""The bad-input battery: every class of bad input is refused up front, by the command line, in one
line on stderr with exit status 2, no traceback, nothing written (no output folder, no temporary,
no parent folder made for it) and before any training starts.

Each case names its class; the classes, not the examples, are what this file covers: recipe values
out of range, unknown names, command options, output paths, model folders, tokenizers, data files,
records that cannot be trained on, recipe files, saved results, resuming.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from obliviate.cli import main

QA = {"question": "Where was Ann Vale born?", "answer": "Ann Vale was born in Oslo."}


def jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    """A case that reaches training has failed: it had to be refused before."""
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("training started: the bad input was not refused up front")

    monkeypatch.setattr(transformers.Trainer, "train", refuse)


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_models):
    """Good and bad files shared by the cases (read-only for them)."""
    root = tmp_path_factory.mktemp("bad-inputs")
    good_model = Path(tiny_models.target)
    files = {"model": good_model, "root": root}
    files["forget"] = jsonl(root / "forget.jsonl", [QA, {**QA, "question": "Who is Ann Vale?"}])
    files["retain"] = jsonl(root / "retain.jsonl", [{**QA, "question": f"Retain question {i}?"} for i in range(4)])

    def broken_model(name: str, damage) -> Path:
        folder = root / name
        shutil.copytree(good_model, folder)
        damage(folder)
        return folder

    def truncate(folder: Path) -> None:
        weights = folder / "model.safetensors"
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])

    def garbage(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"\x00" * 64)

    def huge_tokenizer(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config["vocab_size"] = 8  # far fewer embedding rows than the tokenizer's ids
        (folder / "config.json").write_text(json.dumps(config))

    def bin_only(folder: Path) -> None:
        (folder / "model.safetensors").rename(folder / "pytorch_model.bin")

    files["models"] = {
        "no_config": broken_model("no-config", lambda f: (f / "config.json").unlink()),
        "truncated_weights": broken_model("truncated", truncate),
        "garbage_weights": broken_model("garbage", garbage),
        "no_weights": broken_model("no-weights", lambda f: (f / "model.safetensors").unlink()),
        "bin_only": broken_model("bin-only", bin_only),
        "corrupt_tokenizer": broken_model("bad-tok", lambda f: (f / "tokenizer.json").write_text("{not json")),
        "corrupt_config": broken_model("bad-config", lambda f: (f / "config.json").write_text("[1, 2")),
        "tokenizer_bigger_than_embedding": broken_model("big-tok", huge_tokenizer),
    }
    (root / "empty-model").mkdir()
    files["models"]["empty_folder"] = root / "empty-model"
    files["models"]["file_not_folder"] = jsonl(root / "a-file", [QA])

    latin1 = root / "latin1.jsonl"
    latin1.write_bytes(json.dumps({"question": "Où est né Zoë?", "answer": "À Genève."},
                                  ensure_ascii=False).encode("latin-1") + b"\n")
    (root / "split-folder").mkdir()
    jsonl(root / "split-folder" / "train.jsonl", [QA])
    long_answer = {"question": "Q?", "answer": " ".join(["word"] * 400)}
    files["data"] = {
        "missing_file": root / "absent.jsonl",
        "empty_file": jsonl(root / "empty.jsonl", []),
        "malformed_json": root / "malformed.jsonl",
        "missing_answer": jsonl(root / "no-answer.jsonl", [QA, {"question": "Who?"}]),
        "not_utf8": latin1,
        "wrong_extension": jsonl(root / "records.txt", [QA]),
        "answer_longer_than_max_length": jsonl(root / "long.jsonl", [long_answer]),
        "number_as_question": jsonl(root / "number.jsonl", [{"question": 7, "answer": "x"}]),
        "csv_without_answer_column": root / "records.csv",
        "empty_answer": jsonl(root / "empty-answer.jsonl", [{"question": "Q?", "answer": ""}]),
        "blank_question": jsonl(root / "blank-question.jsonl", [{"question": "  ", "answer": "x"}]),
        "empty_folder": root / "empty-data",
    }
    files["data"]["empty_folder"].mkdir()
    files["data"]["malformed_json"].write_text(json.dumps(QA) + "\n{not json\n", encoding="utf-8")
    files["data"]["csv_without_answer_column"].write_text("question,reply\nWho?,Ann\n", encoding="utf-8")
    files["split_folder"] = root / "split-folder"

    files["recipes"] = {
        "missing": root / "absent.yaml",
        "invalid_yaml": root / "invalid.yaml",
        "not_a_mapping": root / "list.yaml",
        "unknown_section": root / "unknown.yaml",
        "not_utf8": root / "latin1.yaml",
        "bad_value": root / "bad-value.yaml",
    }
    files["recipes"]["invalid_yaml"].write_text("training: {learning_rate: [1e-4\n", encoding="utf-8")
    files["recipes"]["not_a_mapping"].write_text("- npo\n- ga\n", encoding="utf-8")
    files["recipes"]["unknown_section"].write_text("trainer:\n  lr: 1\n", encoding="utf-8")
    files["recipes"]["not_utf8"].write_bytes("method: npo\n# créé\n".encode("latin-1"))
    files["recipes"]["bad_value"].write_text("training:\n  batch_size: 0\n", encoding="utf-8")

    results = root / "retain-results"
    (results / "items").mkdir(parents=True)
    (results / "summary.json").write_text(json.dumps({"metrics": {}, "benchmark": "authors",
                                                      "forget_split": "forget10", "size": "test", "seed": 0}))
    jsonl(results / "items" / "forget.jsonl", [{"truth_ratio": math.nan, "question": "Q?"}])
    files["nan_results"] = results
    truncated = root / "truncated-results"
    truncated.mkdir()
    (truncated / "summary.json").write_text('{"metrics": {"forget_quality"')
    files["truncated_results"] = truncated
    (root / "a-file-parent").write_text("x")
    return files


def unlearn(world, *extra, forget=None, model=None, out=None):
    return ["unlearn", "--model", str(model or world["model"]), "--forget", str(forget or world["forget"]),
            "--retain", str(world["retain"]), "--out", str(out if out is not None else world["out"]), *extra]


# (case id, argv builder, words the one-line error must contain)
RECIPE_VALUES = [
    ("batch_size_0", ["--set", "training.batch_size=0"], "batch_size"),
    ("batch_size_negative", ["--set", "training.batch_size=-4"], "batch_size"),
    ("batch_size_fraction", ["--set", "training.batch_size=2.5"], "batch_size"),
    ("grad_accumulation_0", ["--set", "training.gradient_accumulation_steps=0"], "gradient_accumulation_steps"),
    ("learning_rate_0", ["--set", "training.learning_rate=0"], "learning_rate"),
    ("learning_rate_nan", ["--set", "training.learning_rate=nan"], "learning_rate"),
    ("learning_rate_inf", ["--set", "training.learning_rate=inf"], "learning_rate"),
    ("learning_rate_text", ["--set", "training.learning_rate=fast"], "learning_rate"),
    ("weight_decay_negative", ["--set", "training.weight_decay=-0.1"], "weight_decay"),
    ("warmup_negative", ["--set", "training.warmup_ratio=-0.5"], "warmup_ratio"),
    ("max_length_1", ["--set", "training.max_length=1"], "max_length"),
    ("max_length_0", ["--set", "training.max_length=0"], "max_length"),
    ("logging_steps_0", ["--set", "training.logging_steps=0"], "logging_steps"),
    ("scheduler_unknown", ["--set", "training.scheduler=bogus"], "scheduler"),
    ("report_to_not_installed", ["--set", "training.report_to=wandb_not_a_tool"], "report_to"),
    ("save_every_0", ["--set", "training.save_every=0"], "save_every"),
    ("threads_negative", ["--set", "threads=-1"], "threads"),
    ("threads_0", ["--set", "threads=0"], "threads"),
    ("seed_negative", ["--set", "seed=-3"], "seed"),
    ("retain_weight_negative", ["--set", "objective.retain_weight=-1"], "retain_weight"),
    ("forget_weight_negative", ["--set", "objective.forget_weight=-2"], "forget_weight"),
    ("npo_beta_0", ["--set", "objective.beta=0"], "beta"),
    ("retain_loss_unknown", ["--set", "objective.retain_loss=mse"], "retain_loss"),
    ("forget_tokens_unknown", ["--set", "objective.forget_tokens=all"], "forget_tokens"),
    ("objective_option_unknown", ["--set", "objective.betta=0.1"], "betta"),
    ("objective_unknown", ["--set", "objective=nope"], "nope"),
    ("scope_unknown", ["--set", "scope=everything"], "everything"),
    ("schedule_unknown", ["--set", "schedule=forever"], "forever"),
    ("epochs_0", ["--set", "schedule.epochs=0"], "epochs"),
    ("lora_r_0", ["--set", "scope=lora", "--set", "scope.r=0"], "r"),
    ("lora_alpha_negative", ["--set", "scope=lora", "--set", "scope.alpha=-16"], "alpha"),
    ("lora_dropout_1", ["--set", "scope=lora", "--set", "scope.dropout=1"], "dropout"),
    ("wagle_ratio_0", ["--method", "wagle", "--set", "scope.ratio=0"], "ratio"),
    ("wagle_ratio_above_1", ["--method", "wagle", "--set", "scope.ratio=1.5"], "ratio"),
    ("uld_alpha_negative", ["--method", "uld", "--set", "composition.alpha=-1"], "alpha"),
    ("eul_cycles_0", ["--method", "eul", "--set", "schedule.cycles=0"], "cycles"),
    ("icu_max_epochs_0", ["--method", "icu", "--set", "schedule.max_epochs=0"], "max_epochs"),
    ("method_unknown", ["--method", "forgetall"], "forgetall"),
    ("key_unknown", ["--set", "training.lr=1e-4"], "training.lr"),
    ("override_without_equals", ["--set", "training.batch_size"], "key=value"),
    ("dtype_unknown", ["--set", "model.dtype=float8"], "dtype"),
    ("template_unknown", ["--set", "model.template=alpaca9"], "template"),
    ("eval_batch_size_0", ["--set", "eval.batch_size=0"], "batch_size"),
    ("eval_max_new_tokens_0", ["--set", "eval.max_new_tokens=0"], "max_new_tokens"),
    ("lora_targets_absent_from_model", ["--set", "scope=lora", "--set", "scope.target_modules=[nope_proj]"],
     "nope_proj"),
    ("checkpointing_unsupported", ["--method", "offset", "--set", "training.save_every=2"], "save_every"),
]


@pytest.mark.parametrize("extra, expected", [c[1:] for c in RECIPE_VALUES], ids=[c[0] for c in RECIPE_VALUES])
def test_recipe_values(world, tmp_path, capsys, extra, expected):
    assert_refused(capsys, tmp_path, unlearn({**world, "out": tmp_path / "out"}, *extra), expected)


RUN_CASES = [
    ("run_forget_split_unknown", ["run", "--forget-split", "forget42"], "forget42"),
    ("run_benchmark_size_unknown", ["run", "--set", "benchmark.size=huge"], "huge"),
    ("run_benchmark_unknown", ["run", "--set", "benchmark.name=mmlu"], "mmlu"),
    ("run_task_unknown", ["run", "--set", "benchmark.task=essays"], "essays"),
    ("run_seeds_0", ["run", "--seeds", "0"], "seeds is a whole number >= 1"),
    ("run_out_empty", ["run", "--out", ""], "empty"),
    ("eval_batch_size_0", ["eval", "--model", "{model}", "--batch-size", "0"], "batch_size"),
    ("eval_max_new_tokens_negative", ["eval", "--model", "{model}", "--max-new-tokens", "-5"], "max_new_tokens"),
    ("eval_template_unknown", ["eval", "--model", "{model}", "--template", "alpaca9"], "alpaca9"),
    ("eval_split_unknown", ["eval", "--model", "{model}", "--forget-split", "bogus"], "bogus"),
    ("eval_size_unknown", ["eval", "--model", "{model}", "--size", "tiny"], "tiny"),
    ("eval_nan_retain_results", ["eval", "--model", "{model}", "--size", "test", "--retain-results",
                                 "{nan_results}", "--out", "{out}"], "nan"),
    ("eval_truncated_retain_results", ["eval", "--model", "{model}", "--size", "test", "--retain-results",
                                       "{truncated_results}", "--out", "{out}"], "truncated-results"),
    ("eval_out_empty", ["eval", "--model", "{model}", "--out", ""], "empty"),
    ("finetune_epochs_0", ["finetune", "--model", "{model}", "--data", "{forget}", "--out", "{out}",
                           "--epochs", "0"], "epochs"),
    ("finetune_batch_size_0", ["finetune", "--model", "{model}", "--data", "{forget}", "--out", "{out}",
                               "--batch-size", "0"], "batch_size"),
    ("finetune_lora_r_0", ["finetune", "--model", "{model}", "--data", "{forget}", "--out", "{out}", "--lora",
                           "--lora-r", "0"], "rank"),
    ("finetune_lora_targets_absent", ["finetune", "--model", "{model}", "--data", "{forget}", "--out", "{out}",
                                      "--lora", "--lora-targets", "nope_proj"], "nope_proj"),
    ("deficiency_contamination_2", ["deficiency", "--kind", "toxic", "--out", "{out}", "--contamination", "2"],
     "contamination"),
    ("deficiency_questions_0", ["deficiency", "--kind", "toxic", "--out", "{out}", "--questions", "0"],
     "n_questions"),
    ("mask_ratio_0", ["mask", "--model", "{model}", "--forget", "{forget}", "--out", "{out}", "--ratio", "0"],
     "ratio"),
    ("resume_not_a_run", ["unlearn", "--resume", "{root}"], "invocation.json"),
    ("resume_missing", ["unlearn", "--resume", "{root}/nope"], "no such folder"),
    ("unlearn_without_forget", ["unlearn", "--model", "{model}", "--out", "{out}"], "--forget"),
    ("eval_seed_negative", ["eval", "--model", "{model}", "--seed", "-1"], "seed"),
    ("eval_requests_without_ledger", ["eval", "--model", "{model}", "--requests"], "requests.json"),
    ("eval_retain_model_missing", ["eval", "--model", "{model}", "--retain-model", "{root}/nope"], "no such folder"),
    ("finetune_max_length_1", ["finetune", "--model", "{model}", "--data", "{forget}", "--out", "{out}",
                               "--max-length", "1"], "max_length"),
    ("finetune_epochs_nan", ["finetune", "--model", "{model}", "--data", "{forget}", "--out", "{out}",
                             "--epochs", "nan"], "epochs"),
    ("deficiency_kind_unknown", ["deficiency", "--kind", "rude", "--out", "{out}"], "rude"),
    ("mask_score_unknown", ["mask", "--model", "{model}", "--forget", "{forget}", "--out", "{out}",
                            "--score", "bogus"], "bogus"),
    ("fuse_not_eul_adapters", ["compose", "fuse", "{model}", "--out", "{out}"], "eul_adapter.json"),
    ("extsub_adapters_missing", ["compose", "extsub", "--expert", "{root}/e", "--anti-expert", "{root}/a",
                                 "--out", "{out}"], "adapter_config.json"),
    ("set_whole_section", ["run", "--set", "training=5"], "training"),
]


@pytest.mark.parametrize("argv, expected", [c[1:] for c in RUN_CASES], ids=[c[0] for c in RUN_CASES])
def test_command_options(world, tmp_path, capsys, monkeypatch, argv, expected):
    monkeypatch.chdir(tmp_path)
    values = {k: str(v) for k, v in world.items() if isinstance(v, (str, Path))}
    values["out"] = str(tmp_path / "out")
    assert_refused(capsys, tmp_path, [a.format(**values) for a in argv], expected)


@pytest.mark.parametrize("damage", ["no_config", "truncated_weights", "garbage_weights", "no_weights", "bin_only",
                                    "corrupt_tokenizer", "corrupt_config", "tokenizer_bigger_than_embedding",
                                    "empty_folder", "file_not_folder"])
@pytest.mark.parametrize("command", ["unlearn", "eval"])
def test_model_folders(world, tmp_path, capsys, damage, command):
    model = world["models"][damage]
    argv = (unlearn(world, model=model, out=tmp_path / "out") if command == "unlearn"
            else ["eval", "--model", str(model), "--size", "test", "--out", str(tmp_path / "out")])
    assert_refused(capsys, tmp_path, argv, model.name)


@pytest.mark.parametrize("case, expected", [
    ("missing_file", "no such file"), ("empty_file", "no records"), ("malformed_json", "line 2"),
    ("missing_answer", "'answer'"), ("not_utf8", "UTF-8"), ("wrong_extension", ".txt"),
    ("answer_longer_than_max_length", "max_length"), ("number_as_question", "question"),
    ("csv_without_answer_column", "answer"), ("empty_answer", "answer is empty"),
    ("blank_question", "'question' is empty"), ("empty_folder", "no data files"),
])
def test_data_files(world, tmp_path, capsys, case, expected):
    data = world["data"][case]
    extra = ["--set", "training.max_length=64"] if case == "answer_longer_than_max_length" else []
    assert_refused(capsys, tmp_path, unlearn(world, *extra, forget=data, out=tmp_path / "out"), expected)


@pytest.mark.parametrize("case, expected", [
    ("missing", "no such recipe file"), ("invalid_yaml", "not valid YAML"), ("not_a_mapping", "mapping"),
    ("unknown_section", "trainer"), ("not_utf8", "UTF-8"), ("bad_value", "batch_size"),
])
def test_recipe_files(world, tmp_path, capsys, case, expected):
    recipe = world["recipes"][case]
    assert_refused(capsys, tmp_path, unlearn(world, "--recipe", str(recipe), out=tmp_path / "out"), expected)
    assert_refused(capsys, tmp_path, ["run", str(recipe), "--out", str(tmp_path / "run")], expected)


@pytest.mark.parametrize("case", ["exists", "under_a_file", "read_only_parent", "disk_full"])
def test_output_paths(world, tmp_path, capsys, monkeypatch, case):
    out = tmp_path / "out"
    if case == "exists":
        out.mkdir()
        expected = "already exists"
    elif case == "under_a_file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "out"
        expected = "is a file"
    elif case == "read_only_parent":
        if os.geteuid() == 0:
            monkeypatch.setattr(os, "access", lambda path, mode: False)  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        out = locked / "out"
        expected = "not writable"
    else:
        usage = shutil.disk_usage(tmp_path)
        monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1024))
        expected = "free"
    assert_refused(capsys, tmp_path, unlearn(world, out=out), expected, keep={"file", "locked", "out"})


def assert_refused(capsys, folder: Path, argv, expected: str, keep=frozenset()):
    before = set(os.listdir(folder))
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own checks (types, choices, required options)
        code = exc.code
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert code == 2, (argv, captured.err)
    assert len(err) == 1 and err[0].startswith("obliviate: error:"), captured.err
    line = err[0]
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert expected.lower() in line.lower(), line
    after = set(os.listdir(folder)) - set(keep)
    assert after <= before, f"left behind: {sorted(after - before)}"
