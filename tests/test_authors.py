from __future__ import annotations

from obliviate.data import validate_records
from obliviate.data.authors import (
    PERTURBED_PER_QUESTION,
    QUESTIONS_PER_AUTHOR,
    SIZES,
    build_authors,
    forget_retain_split,
)


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
