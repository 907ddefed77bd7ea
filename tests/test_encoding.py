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
    # one joint tokenisation of prompt + answer (see tests/test_prompts.py for the boundary cases)
    assert enc.input_ids == tok(render_prompt(tok, "Where was Ann born?") + "Ann was born in Oslo.")["input_ids"] + [
        tok.eos_token_id]
    prompt_len = enc.prompt_tokens
    assert 0 < prompt_len < len(enc.input_ids)
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


def test_encode_text_labels_every_token_and_counts_prefix_tokens():
    from obliviate.benchmarks.authors import _tokenizer_corpus
    from obliviate.data.encoding import encode_text

    splits = build_authors(SIZES["test"])
    real_tok = train_tokenizer(_tokenizer_corpus(splits), vocab_size=1024)  # as the benchmark builds it
    for bio in splits["biographies"][:5]:
        text, prefix, suffix = bio["text"], bio["prefix"], bio["suffix"]
        enc = encode_text(real_tok, text, prefix_chars=len(prefix))
        joint = real_tok(text)["input_ids"]
        assert enc.input_ids == joint + [real_tok.eos_token_id]  # one joint tokenisation, no BOS added
        assert enc.labels == enc.input_ids and IGNORE_INDEX not in enc.labels
        assert enc.as_dict() == {"input_ids": enc.input_ids, "labels": enc.labels}
        p = enc.prefix_tokens
        assert 0 < p < len(joint)
        assert real_tok.decode(enc.input_ids[:p]) == prefix
        assert real_tok.decode(enc.input_ids[p:-1]) == suffix
    text = splits["biographies"][0]["text"]
    assert encode_text(real_tok, text, add_eos=False).input_ids == real_tok(text)["input_ids"]
    assert encode_text(real_tok, text).prefix_tokens is None
    # a cut inside a token leaves that token to the suffix
    cut = len("Jeipiam Skumty") if text.startswith("Jeipiam") else 5
    enc = encode_text(real_tok, text, prefix_chars=cut)
    assert len(real_tok.decode(enc.input_ids[:enc.prefix_tokens])) <= cut
    short = encode_text(real_tok, text, max_length=10, prefix_chars=len(text))
    assert len(short.input_ids) == 10 and short.labels == short.input_ids and short.prefix_tokens == 10


def test_encode_records_mixes_qa_and_text(tok):
    from obliviate.data.encoding import encode_text
    from obliviate.train.finetune import encode_records

    qa = {"question": "Where was Ann born?", "answer": "Ann was born in Oslo."}
    text = {"text": "Ann was born in Oslo.", "prefix": "Ann was", "suffix": " born in Oslo."}
    qa_enc, text_enc = encode_records(tok, [qa, text], max_length=64)
    assert qa_enc == encode_pair(tok, qa["question"], qa["answer"], max_length=64).as_dict()
    assert text_enc == encode_text(tok, text["text"], max_length=64).as_dict()
    assert IGNORE_INDEX in qa_enc["labels"] and IGNORE_INDEX not in text_enc["labels"]


def test_mixed_fine_tuning_batches_hold_one_record_kind():
    from obliviate.train.finetune import _KindBatchSampler

    kinds = [i % 9 == 0 for i in range(100)]  # 12 text records among 88 QA
    sampler = _KindBatchSampler(kinds, batch_size=8, seed=0)
    epochs = [list(sampler), list(sampler)]
    for order in epochs:
        assert sorted(order) == list(range(100)) and len(sampler) == 100
        batches = [order[j:j + 8] for j in range(0, 100, 8)]
        mixed = [b for b in batches if len({kinds[i] for i in b}) > 1]
        assert len(mixed) <= 1  # only the pooled leftovers (88 % 8 = 0, 12 % 8 = 4) may mix
    assert epochs[0] != epochs[1]  # reshuffled every epoch
    assert list(_KindBatchSampler(kinds, 8, seed=0)) == epochs[0]  # deterministic for a seed
