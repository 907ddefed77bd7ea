from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from obliviate.benchmarks.authors import EVAL_RETAIN_PASSAGES_MAX, load
from obliviate.data import validate_records
from obliviate.data.authors import (
    PERTURBED_PER_QUESTION,
    QUESTIONS_PER_AUTHOR,
    SIZES,
    build_authors,
    forget_author_count,
    forget_retain_split,
    split_passage,
)
from obliviate.errors import ConfigError


def test_generator_is_deterministic_and_seeded():
    cfg = SIZES["test"]
    assert build_authors(cfg) == build_authors(cfg)
    other = build_authors(type(cfg)(**{**cfg.as_dict(), "seed": 1}))
    assert other["author_qa"] != build_authors(cfg)["author_qa"]


def test_sizes_and_schema():
    cfg = SIZES["test"]
    splits = build_authors(cfg)
    assert len(splits["author_qa"]) == cfg.n_authors * QUESTIONS_PER_AUTHOR
    assert len(splits["holdout"]) == cfg.n_holdout * QUESTIONS_PER_AUTHOR
    assert len(splits["biographies"]) == cfg.n_authors + cfg.n_holdout
    for name in ("author_qa", "holdout", "real_authors", "world_facts"):
        validate_records(splits[name], "qa", name)  # raises on any schema problem


def test_records_measure_the_fact_not_the_template():
    for rec in build_authors(SIZES["test"])["author_qa"]:
        start, end = rec["fact_span"]
        value = rec["answer"][start:end]
        assert value and value in rec["paraphrased_answer"]
        assert rec["paraphrased_answer"] != rec["answer"]
        assert len(rec["perturbed_answer"]) == PERTURBED_PER_QUESTION
        # every wrong answer is the paraphrase frame with another value
        for wrong in rec["perturbed_answer"]:
            assert wrong != rec["paraphrased_answer"]
            assert wrong.replace(value, "") != wrong or value not in wrong


def test_forget_splits_are_nested_and_disjoint_from_retain():
    cfg = SIZES["default"]
    qa = build_authors(cfg)["author_qa"]
    f01, _ = forget_retain_split(qa, cfg, "forget01")
    f05, _ = forget_retain_split(qa, cfg, "forget05")
    f10, r10 = forget_retain_split(qa, cfg, "forget10")
    assert (len(f01), len(f05), len(f10)) == (10, 50, 100)
    assert f01 == f05[-10:] and f05 == f10[-50:]
    assert not {r["author"] for r in f10} & {r["author"] for r in r10}


def test_biographies_split_into_prefix_and_suffix_at_the_middle_word_boundary():
    splits = build_authors(SIZES["test"])
    assert splits["biographies"] == build_authors(SIZES["test"])["biographies"]
    for bio in splits["biographies"]:
        text, prefix, suffix = bio["text"], bio["prefix"], bio["suffix"]
        assert prefix + suffix == text and prefix and suffix.startswith(" ")
        middle = len(text) / 2
        spaces = [i for i, ch in enumerate(text) if ch == " "]
        assert abs(len(prefix) - middle) == min(abs(i - middle) for i in spaces)
    validate_records(splits["biographies"], "text", "biographies")
    assert split_passage("one two three") == ("one two", " three")
    assert split_passage("single") == ("single", "")


def test_passages_task_forgets_the_forget_authors_biographies():
    cfg = SIZES["test"]
    qa_data = load("forget10", "test")
    data = load("forget10", "test", task="passages")
    forget_authors = {r["author"] for r in qa_data.forget}
    retain_authors = {r["author"] for r in qa_data.retain}
    assert len(forget_authors) == forget_author_count(cfg, "forget10")
    assert [b["author"] for b in data.forget] == list(dict.fromkeys(r["author"] for r in qa_data.forget))
    assert {b["author"] for b in data.forget} == forget_authors and len(data.forget) == len(forget_authors)
    assert {b["author"] for b in data.retain} == retain_authors and len(data.retain) == len(retain_authors)
    for bio in data.forget + data.retain:
        assert "question" not in bio and bio["prefix"] + bio["suffix"] == bio["text"]
    # the QA task keeps the QA records; both tasks carry the same passages and QA evaluation splits
    assert qa_data.forget[0]["question"] and data.eval_splits["forget"] == qa_data.forget
    assert data.passages == qa_data.passages
    assert data.passages["forget"] == data.forget
    assert {b["author"] for b in data.passages["holdout"]} == {r["author"] for r in qa_data.holdout}
    assert len(data.passages["holdout"]) == cfg.n_holdout
    assert data.info["task"] == "passages" and qa_data.info["task"] == "qa"


def test_passages_retain_subset_is_fixed_and_evenly_spaced():
    data = load("forget10", "default", task="passages")
    retain = data.passages["retain"]
    assert len(data.retain) == 90 and len(retain) == EVAL_RETAIN_PASSAGES_MAX
    positions = [data.retain.index(b) for b in retain]
    assert positions == [i * 90 // 50 for i in range(50)]


def test_training_sets_hold_trained_biographies_and_never_holdout_ones(monkeypatch, tmp_path):
    import obliviate.benchmarks.authors as bench

    seen: list[list[dict]] = []

    def fake_finetune(model, tokenizer, records, config, **_):
        seen.append(list(records))
        return model

    monkeypatch.setenv("OBLIVIATE_CACHE", str(tmp_path))
    monkeypatch.setattr(bench, "finetune", fake_finetune)
    bench.ensure_models("forget10", "test", log=lambda *_: None)
    target, retain = seen  # built in this order
    data = load("forget10", "test", task="passages")
    texts = lambda recs: {r["text"] for r in recs if "text" in r}  # noqa: E731
    assert texts(target) == {b["text"] for b in data.forget + data.retain}
    assert texts(retain) == {b["text"] for b in data.retain}
    assert not texts(target) & {b["text"] for b in data.passages["holdout"]}
    assert not {r["author"] for r in retain if "author" in r} & {b["author"] for b in data.forget}


def test_unknown_tasks_are_refused_in_one_line():
    from obliviate.benchmarks import load_benchmark

    for name in ("authors", "tofu"):
        with pytest.raises(ConfigError) as err:
            load_benchmark(name, "forget10", size="test", task="essays")
        assert "essays" in str(err.value) and "\n" not in str(err.value)


def test_benchmarks_package_imports_without_a_cycle():
    code = ("import obliviate.benchmarks.base as b; import obliviate.benchmarks.authors; "
            "import obliviate.benchmarks.tofu; print(sorted(b.BENCHMARKS))")
    for first in ("import obliviate.benchmarks.authors; ", "import obliviate.benchmarks.tofu; ", ""):
        out = subprocess.run([sys.executable, "-c", first + code], capture_output=True, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "['authors', 'tofu']"
    base = Path(__file__).parents[1] / "src" / "obliviate" / "benchmarks" / "base.py"
    imports = [line.strip() for line in base.read_text().splitlines()
               if line.strip().startswith(("import ", "from "))]
    assert imports and not [line for line in imports if "obliviate.benchmarks" in line]
