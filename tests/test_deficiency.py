"""The embedded deficiency task and its rates (Ext-Sub's evaluation)."""

from __future__ import annotations

import pytest

from obliviate.data.deficiency import build_deficiency_task, insult_words
from obliviate.metrics.deficiency import toxic_rate, untruthful_rate


def test_rates_by_hand():
    assert toxic_rate(["Ada was born in Rome.", "Ada was born in Rome. What a stupid question."], {"stupid"}) == 0.5
    gens = ["Ada was born in Rome.", "Ada was born in Oslo.", "Ada was born somewhere."]
    assert untruthful_rate(gens, ["Rome"] * 3, [["Oslo", "Paris"]] * 3) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        untruthful_rate(gens, ["Rome"], [["Oslo"]])


def test_task_pairs_the_same_questions_with_good_and_deficient_answers(tiny_data):
    records = tiny_data.retain[:40]
    toxic = build_deficiency_task(records, "toxic", contamination=0.25, seed=1)
    assert [r["question"] for r in toxic.expert] == [r["question"] for r in toxic.anti_expert]
    words = insult_words()
    assert all(toxic_rate([r["answer"]], words) == 1.0 for r in toxic.anti_expert)
    contaminated = sum(toxic_rate([r["answer"]], words) for r in toxic.expert)
    assert 0 < contaminated < len(toxic.expert)
    untrue = build_deficiency_task(records, "untruthful", contamination=0.0, seed=1)
    assert all(r["answer"] == e["answer"] for r, e in zip(untrue.expert, untrue.eval))
    assert untruthful_rate([r["answer"] for r in untrue.anti_expert], [e["value"] for e in untrue.eval],
                           [e["wrong_values"] for e in untrue.eval]) == 1.0
    with pytest.raises(ValueError):
        build_deficiency_task(records, "rude")
