from __future__ import annotations

import pytest

from obliviate.data.authors import SIZES, build_authors
from obliviate.data.encoding import IGNORE_INDEX, encode_pair, pad_batch, render_prompt
from obliviate.models.tiny import train_tokenizer


@pytest.fixture(scope="module")
def tok():
    qa = build_authors(SIZES["test"])["author_qa"]
    return train_tokenizer([render_prompt(None, r["question"]) + r["answer"] for r in qa], vocab_size=512)


def test_prompt_is_masked_and_answer_ends_with_eos(tok):
    enc = encode_pair(tok, "Where was Ann born?", "Ann was born in Oslo.")
    prompt_len = len(tok(render_prompt(tok, "Where was Ann born?"))["input_ids"])
    assert enc.labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert enc.labels[prompt_len:] == enc.input_ids[prompt_len:]
    assert enc.input_ids[-1] == tok.eos_token_id
    assert tok.decode(enc.input_ids[prompt_len:-1]) == "Ann was born in Oslo."


def test_fact_labels_cover_only_the_fact_value(tok):
    answer = "Ann was born in Oslo."
    start = answer.index("Oslo")
    enc = encode_pair(tok, "Where was Ann born?", answer, fact_span=[start, start + 4])
    kept = [t for t in enc.fact_labels if t != IGNORE_INDEX]
    assert kept and tok.decode(kept).strip() == "Oslo"
    assert set(kept) <= set(t for t in enc.labels if t != IGNORE_INDEX)


def test_pad_batch_sides():
    feats = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    right = pad_batch(feats, pad_id=0)
    assert right["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert right["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    left = pad_batch([{"input_ids": [5, 6]}, {"input_ids": [8]}], pad_id=0, side="left")
    assert left["input_ids"].tolist() == [[5, 6], [0, 8]]
    assert left["attention_mask"].tolist() == [[1, 1], [0, 1]]
