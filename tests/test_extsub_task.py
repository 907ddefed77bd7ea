"""Ext-Sub on the embedded deficiency task from the command line: `obliviate deficiency` writes the
task, `obliviate finetune` trains the expert and anti-expert adapters on it, `obliviate compose
extsub --merge` combines them, `obliviate eval --deficiency` reads the deficiency rate and
capability."""

from __future__ import annotations

import json

import pytest

from obliviate.cli import main


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def make_task(tmp_path, capsys, kind="untruthful"):
    out = tmp_path / "task"
    assert main(["deficiency", "--kind", kind, "--size", "test", "--questions", "20", "--out", str(out),
                 "--quiet"]) == 0
    return out, capsys.readouterr().out


def test_deficiency_writes_the_task_and_names_the_base_model(tmp_path, tiny_models, capsys):
    out, printed = make_task(tmp_path, capsys)
    info = json.loads((out / "task.json").read_text())
    assert info == {"kind": "untruthful", "contamination": 0.3, "size": "test", "seed": 0, "n_questions": 20,
                    "base_model": str(tiny_models.target)}
    expert, anti, evaluation = (read_jsonl(out / f"{n}.jsonl") for n in ("expert", "anti_expert", "eval"))
    assert len(expert) == len(anti) == len(evaluation) == 20
    assert [r["question"] for r in expert] == [r["question"] for r in anti] == [r["question"] for r in evaluation]
    assert all({"value", "wrong_values", "answer"} <= set(r) for r in evaluation)
    assert str(tiny_models.target) in printed and str(out / "expert.jsonl") in printed
    # the folder exists now: refused in one line, nothing overwritten
    assert main(["deficiency", "--kind", "toxic", "--size", "test", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists" in err and "\n" not in err
    assert json.loads((out / "task.json").read_text())["kind"] == "untruthful"


def test_cli_chain_finetune_compose_eval(tmp_path, tiny_models, capsys):
    from obliviate import api

    task, _ = make_task(tmp_path, capsys)
    base = str(tiny_models.target)
    # 20 epochs at 3e-3: the anti-expert states a wrong value for 0.6-0.7 of the questions over
    # seeds 0-2 (10 epochs: 0.0-0.1, not enough to compare against the base)
    options = ["--lora", "--lora-r", "4", "--lora-alpha", "8", "--epochs", "20", "--learning-rate", "3e-3",
               "--batch-size", "8", "--quiet"]
    for name in ("expert", "anti_expert"):
        assert main(["finetune", "--model", base, "--data", str(task / f"{name}.jsonl"), *options,
                     "--out", str(tmp_path / name)]) == 0
    assert main(["compose", "extsub", "--expert", str(tmp_path / "expert"), "--anti-expert",
                 str(tmp_path / "anti_expert"), "--merge", "--out", str(tmp_path / "extsub")]) == 0
    capsys.readouterr()
    assert main(["eval", "--model", str(tmp_path / "extsub"), "--deficiency", str(task), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "deficiency" in printed and "capability" in printed

    scores = {name: api.evaluate_deficiency_task(model, task, show_progress=False)
              for name, model in (("base", base), ("anti", tmp_path / "anti_expert"),
                                  ("extsub", tmp_path / "extsub"))}
    assert all(s["kind"] == "untruthful" and s["n"] == 20 for s in scores.values())
    assert scores["anti"]["deficiency"] > scores["base"]["deficiency"] + 0.3
    assert scores["extsub"]["deficiency"] < scores["anti"]["deficiency"]


@pytest.mark.parametrize("argv, expected", [
    (["--deficiency", "{tmp}"], "no task.json or eval.jsonl"),
    (["--deficiency", "{task}"], "needs records with question"),
    (["--deficiency", "{task}", "--requests"], "does not take --requests"),
])
def test_eval_deficiency_refuses_bad_input_in_one_line(tmp_path, tiny_models, capsys, argv, expected):
    task = tmp_path / "task"
    task.mkdir()
    (task / "task.json").write_text(json.dumps({"kind": "untruthful"}))
    (task / "eval.jsonl").write_text("")
    argv = [a.format(tmp=tmp_path, task=task) for a in argv]
    assert main(["eval", "--model", str(tiny_models.target), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("obliviate: error:") and expected in err and "\n" not in err


def test_deficiency_refuses_bad_options(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["deficiency", "--kind", "rude", "--out", str(tmp_path / "d")])
    assert info.value.code == 2 and "invalid choice: 'rude'" in capsys.readouterr().err
    assert main(["deficiency", "--kind", "toxic", "--contamination", "1.5", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip()
    assert "contamination" in err and "\n" not in err
    assert not (tmp_path / "d").exists()
