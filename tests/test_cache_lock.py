"""The cache of embedded models under concurrency and crashes.

Two cold builds at once train each model once (the second waits for the first's lock and reuses
its entry); a crashed build leaves nothing a later run trusts; the lock helper itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from obliviate.locks import file_lock

_ENV = {"OMP_NUM_THREADS": "1", "OBLIVIATE_PROGRESS": "0", "TOKENIZERS_PARALLELISM": "false"}


def _env(**extra: str) -> dict[str, str]:
    src = str(Path(__file__).parents[1] / "src")
    path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, **_ENV, "PYTHONPATH": path, **extra}


# --- the lock helper -------------------------------------------------------------------------------

_HOLDER = textwrap.dedent("""
    import sys, time
    from obliviate.locks import file_lock
    with file_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", flush=True)
    time.sleep(float(sys.argv[3]))
""")


def _holder(lock: Path, hold: float, linger: float = 0.0) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(lock), str(hold), str(linger)],
                            stdout=subprocess.PIPE, text=True, env=_env())
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_waits_for_the_lock_and_a_killed_holder_releases_it(tmp_path):
    lock = tmp_path / "entry.lock"
    # A holder that releases by itself: the waiter logs one line naming it, then gets the lock after it.
    holder = _holder(lock, hold=0.5, linger=30)
    lines: list[str] = []
    started = time.monotonic()
    with file_lock(lock, log=lines.append, waiting=f"waiting for another process building {tmp_path}/entry"):
        waited = time.monotonic() - started
        assert holder.stdout.readline().strip() == "released"  # it let go before we got in
        assert holder.poll() is None  # ... by releasing the lock, not by exiting
    assert lines == [f"waiting for another process building {tmp_path}/entry (pid {holder.pid})"]
    assert waited >= 0.3
    holder.kill()
    holder.wait(5)

    # A holder killed (kill -9) while holding: the kernel drops its lock; the stale file is harmless.
    holder = _holder(lock, hold=60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(5)
    lines.clear()
    started = time.monotonic()
    with file_lock(lock, log=lines.append):
        assert time.monotonic() - started < 1
    assert lines == [] and lock.exists()  # nobody was waited for; the lock file is kept

    # Uncontended: no log line.
    with file_lock(lock, log=lines.append):
        pass
    assert lines == []


# --- half-written entries --------------------------------------------------------------------------

def _fake_finetune(model, tokenizer, records, config, **_):
    return model


def _entries(cache: Path) -> dict[str, Path]:
    models = cache / "models"
    return {p.name.split("-")[1]: p for p in models.iterdir() if p.is_dir() and not p.name.startswith(".")}


_CRASH = textwrap.dedent("""
    import os, signal
    import obliviate.benchmarks.authors as bench
    bench.finetune = lambda model, *a, **k: model
    def crash(path, data):
        # the model and tokenizer are written into the temporary folder; die before the build record
        os.kill(os.getpid(), signal.SIGKILL)
    bench.write_json_atomic = crash
    bench.ensure_models("forget10", "test", show_progress=False)
""")


def test_a_build_killed_mid_write_leaves_nothing_trusted_and_is_rebuilt(monkeypatch, tmp_path):
    import obliviate.benchmarks.authors as bench

    proc = subprocess.run([sys.executable, "-c", _CRASH], check=False, capture_output=True, text=True, timeout=120,
                          env=_env(OBLIVIATE_CACHE=str(tmp_path)))
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    models = tmp_path / "models"
    leftovers = [p for p in models.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1 and (leftovers[0] / "config.json").exists()  # half-written, hidden
    assert not _entries(tmp_path)  # nothing under an entry's name
    assert [p.name for p in models.glob("*.lock")]  # the dead builder's lock file: stale, harmless

    monkeypatch.setenv("OBLIVIATE_CACHE", str(tmp_path))
    monkeypatch.setattr(bench, "finetune", _fake_finetune)
    lines: list[str] = []
    models_ = bench.ensure_models("forget10", "test", show_progress=False, log=lines.append)
    assert set(models_.built) == {"target", "retain"}
    assert not any("waiting" in line for line in lines)  # the stale lock did not block
    assert any("left by an interrupted build" in line for line in lines)
    assert not [p for p in models.iterdir() if p.name.endswith(".tmp")]  # cleaned
    record = bench.read_build_record(models_.target)
    assert record["role"] == "target" and record["builder"]["pid"] == os.getpid()


def test_an_entry_without_its_build_record_is_not_trusted(monkeypatch, tmp_path):
    import obliviate.benchmarks.authors as bench

    monkeypatch.setenv("OBLIVIATE_CACHE", str(tmp_path))
    monkeypatch.setattr(bench, "finetune", _fake_finetune)
    quiet = {"show_progress": False, "log": lambda *_: None}
    first = bench.ensure_models("forget10", "test", **quiet)
    assert set(first.built) == {"target", "retain"}
    assert bench.ensure_models("forget10", "test", **quiet).built == {}  # cached

    # A folder under the entry's name without its completeness marker (say, copied in part), and
    # one whose record does not match (another role): both rebuilt; the complete retain is kept.
    (first.target / bench.BUILD_RECORD).unlink()
    again = bench.ensure_models("forget10", "test", **quiet)
    assert set(again.built) == {"target"} and again.target == first.target
    assert bench.read_build_record(first.target)["role"] == "target"

    record = bench.read_build_record(first.retain)
    (first.retain / bench.BUILD_RECORD).write_text('{"role": "target"}')
    assert set(bench.ensure_models("forget10", "test", **quiet).built) == {"retain"}
    assert bench.read_build_record(first.retain)["n_train_records"] == record["n_train_records"]


# --- two cold builds at once -----------------------------------------------------------------------

@pytest.mark.slow
def test_two_concurrent_cold_builds_train_each_model_once(tmp_path):
    env = _env(OBLIVIATE_CACHE=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "obliviate", "finetune", "--size", "test", "--forget-split", "forget10",
               "--quiet"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "%|" not in err and "it/s]" not in err, err  # --quiet: not even transformers' shard bar
    pids = [p.pid for p in procs]
    stdouts = [out for out, _ in outs]
    folders = [[line for line in out.splitlines() if line.startswith(("target: ", "retain: "))] for out in stdouts]
    assert len(folders[0]) == 2 and folders[0] == folders[1]  # both end with the same two entries

    from obliviate.benchmarks.authors import read_build_record

    for name, line in zip(("target", "retain"), folders[0]):
        folder = Path(line.split(": ", 1)[1])
        builders = [pid for pid, out in zip(pids, stdouts) if f"building the embedded {name} model" in out]
        assert len(builders) == 1, (name, stdouts)  # trained exactly once, by one of the two
        assert sum(out.count(f"building the embedded {name} model") for out in stdouts) == 1
        assert read_build_record(folder)["builder"]["pid"] == builders[0]
        other = stdouts[1 - pids.index(builders[0])]
        # the other one, if it waited for this entry, reused it once its builder was done
        if f"waiting for another process building {folder}" in other:
            assert f"reusing the embedded {name} model another process built (pid {builders[0]}" in other
    assert any("waiting for another process building" in out for out in stdouts), stdouts
    models = tmp_path / "cache" / "models"
    assert not [p for p in models.iterdir() if p.name.endswith(".tmp")]
    assert sorted(p.name for p in models.iterdir() if p.is_dir()) == sorted(Path(f.split(": ")[1]).name
                                                                          for f in folders[0])
