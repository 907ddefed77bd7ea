"""Bad input: one clear line on stderr, exit status 2, no output folder left behind."""

from __future__ import annotations

import json

import pytest

from obliviate.cli import main

GOOD = {"question": "Where was Ann born?", "answer": "Ann was born in Oslo."}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_cli(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.fixture
def files(tmp_path):
    return {
        "good": write_jsonl(tmp_path / "good.jsonl", [GOOD]),
        "malformed": (tmp_path / "bad.jsonl"),
        "missing_field": write_jsonl(tmp_path / "nofield.jsonl", [GOOD, {"question": "Who?"}]),
        "empty": (tmp_path / "empty.jsonl"),
    }


@pytest.mark.parametrize("case, expected", [
    ("missing_file", "no such file"),
    ("malformed", "line 2"),
    ("missing_field", "'answer'"),
    ("empty", "no records"),
])
def test_unlearn_data_errors(tmp_path, capsys, files, case, expected):
    files["malformed"].write_text(json.dumps(GOOD) + "\n{not json\n")
    files["empty"].write_text("")
    forget = tmp_path / "absent.jsonl" if case == "missing_file" else files[case]
    out = tmp_path / "out"
    code, err = run_cli(capsys, "unlearn", "--model", str(tmp_path / "model"), "--forget", str(forget),
                        "--retain", str(files["good"]), "--out", str(out))
    assert code == 2
    assert err.startswith("obliviate: error:") and "\n" not in err and expected in err
    assert str(forget.name) in err
    assert not out.exists()


@pytest.mark.parametrize("argv, expected", [
    (["run", "--method", "nope"], "method 'nope' is unknown"),
    (["run", "--set", "training.nope=1"], "unknown key 'training.nope'"),
    (["run", "--forget-split", "forget42"], "forget split 'forget42'"),
    (["run", "missing_recipe.yaml"], "no such recipe file"),
    (["eval", "--model", "./no/such/model"], "no such folder"),
])
def test_run_and_eval_config_errors(tmp_path, capsys, monkeypatch, argv, expected):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(capsys, *argv)
    assert code == 2 and expected in err and "\n" not in err
    assert not (tmp_path / "runs").exists()


def test_missing_model_folder(tmp_path, capsys, files):
    code, err = run_cli(capsys, "unlearn", "--model", str(tmp_path / "model"), "--forget", str(files["good"]),
                        "--out", str(tmp_path / "out"))
    assert code == 2 and "no such folder" in err and not (tmp_path / "out").exists()


def test_help_texts_explain_each_command(capsys):
    for command in ("run", "unlearn", "eval", "finetune", "methods", "benchmarks"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        assert len(capsys.readouterr().out) > 150


def test_methods_and_benchmarks_list(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ("ga", "graddiff", "kl", "npo", "simnpo", "idkdpo", "full", "lora", "epochs", "direct"):
        assert f"  {name} " in out
    assert main(["benchmarks"]) == 0
    assert "authors" in capsys.readouterr().out
