"""Interrupted runs: SIGTERM leaves nothing behind; a run killed with SIGKILL resumes from its
checkpoint to exactly the model an uninterrupted run saves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from safetensors.torch import load_file

from obliviate.cli import main

TRAIN = ["--set", "training.learning_rate=5e-4", "--set", "schedule.epochs=6", "--set", "training.batch_size=4"]

# Runs the CLI in a child process that signals itself at a chosen point of training: after the
# Nth complete checkpoint (SIGKILL: no clean-up possible) or at the Nth optimiser step (SIGTERM).
CHILD = textwrap.dedent("""
    import os, signal, sys
    from transformers import TrainerCallback
    from obliviate.train import checkpoints, trainer
    sig, after = getattr(signal, sys.argv[1]), int(sys.argv[2])
    if sig == signal.SIGKILL:
        marked = checkpoints.CheckpointCallback.on_save
        def on_save(self, args, state, control, **kw):
            marked(self, args, state, control, **kw)
            if state.global_step >= after:
                os.kill(os.getpid(), sig)
        checkpoints.CheckpointCallback.on_save = on_save
    else:
        step = trainer.UnlearningTrainer.compute_loss
        def compute_loss(self, *a, **kw):
            if self.state.global_step >= after:
                os.kill(os.getpid(), sig)
            return step(self, *a, **kw)
        trainer.UnlearningTrainer.compute_loss = compute_loss
    from obliviate.cli import main
    sys.exit(main(sys.argv[3:]))
""")


@pytest.fixture(scope="module")
def records(tmp_path_factory, tiny_data):
    folder = tmp_path_factory.mktemp("records")
    paths = {}
    for name, rows in (("forget", tiny_data.forget), ("retain", tiny_data.retain)):
        paths[name] = folder / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths


def unlearn_argv(model, records, out, *extra):
    return ["unlearn", "--model", str(model), "--forget", str(records["forget"]), "--retain",
            str(records["retain"]), "--out", str(out), "--quiet", *TRAIN, *extra]


def run_child(tmp_path, signame, after, argv):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-c", CHILD, signame, str(after), *argv], env=env,
                          capture_output=True, text=True, timeout=300)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_sigterm_leaves_nothing_behind(tmp_path, tiny_models, records):
    out = tmp_path / "runs" / "unlearned"
    done = run_child(tmp_path, "SIGTERM", 3, unlearn_argv(tiny_models.target, records, out))
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert "terminated; no partial output was kept" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()  # neither the folder, its temporary, nor the parent made for it
    assert leftovers(tmp_path / "tmp") == []  # no Trainer scratch folder either


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, tiny_models, records, capsys):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(unlearn_argv(tiny_models.target, records, whole)) == 0
    # 5 steps per epoch, 30 in all; checkpoints every 4 steps; killed right after the one at step 12
    done = run_child(tmp_path, "SIGKILL", 12,
                     unlearn_argv(tiny_models.target, records, killed, "--set", "training.save_every=4"))
    assert done.returncode == -signal.SIGKILL
    assert {"checkpoints", "invocation.json", "recipe.yaml"} <= set(leftovers(killed))
    assert not (killed / "model.safetensors").exists()

    capsys.readouterr()
    assert main(["unlearn", "--resume", str(killed), "--quiet"]) == 0
    assert "unlearned model saved" in capsys.readouterr().out
    a, b = load_file(whole / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # bit-identical on CPU
    info = json.loads((killed / "unlearning.json").read_text())
    assert info["resumed_from_step"] == 12
    assert not (killed / "checkpoints").exists() and not (killed / "invocation.json").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_resume_refuses_what_it_cannot_continue(tmp_path, tiny_models, records, capsys):
    whole = tmp_path / "whole"
    assert main(unlearn_argv(tiny_models.target, records, whole)) == 0
    capsys.readouterr()
    cases = [(["unlearn", "--resume", str(whole)], "already complete"),
             (["unlearn", "--resume", str(tmp_path / "nope")], "no such folder"),
             (["unlearn", "--resume", str(whole), "--out", "x"], "drop --out"),
             (["run", "--resume", str(whole), "--seeds", "2"], "drop --seeds"),
             (["unlearn", "--model", str(tiny_models.target), "--forget", str(records["forget"]), "--out",
               str(tmp_path / "icu"), "--method", "icu", "--set", "training.save_every=2"],
              "schedule 'icu' cannot be checkpointed")]
    for argv, expected in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and "\n" not in err, (argv, err)
    assert not (tmp_path / "icu").exists()


def test_a_killed_run_resumes_to_the_same_model_and_figures(tmp_path, tiny_models, capsys, monkeypatch):
    from tests.conftest import TEST_OVERRIDES

    monkeypatch.chdir(tmp_path)
    sets = [a for o in TEST_OVERRIDES for a in ("--set", o)]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert main(["run", "--out", str(whole), "--quiet", *sets]) == 0
    # 3 steps per epoch, 60 in all; killed right after the checkpoint at step 24
    done = run_child(tmp_path, "SIGKILL", 24, ["run", "--out", str(killed), "--quiet", *sets,
                                               "--set", "training.save_every=12", "--set", "training.keep_checkpoints=true"])
    assert done.returncode == -signal.SIGKILL
    assert not (killed / "summary.json").exists()
    capsys.readouterr()
    assert main(["run", "--resume", str(killed), "--quiet"]) == 0
    a, b = load_file(whole / "model" / "model.safetensors"), load_file(killed / "model" / "model.safetensors")
    assert all((a[k] == b[k]).all() for k in a)
    first, second = (json.loads((d / "summary.json").read_text()) for d in (whole, killed))
    assert first["metrics"]["unlearned"] == second["metrics"]["unlearned"]
    assert second["unlearning"]["resumed_from_step"] == 24
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["checkpoint-60"]  # kept when asked
