"""Prompts, templates, generation settings and empty answers (issue 9: "Prompts and tokens",
"Generation", and the first "Scoring" item).

Tokenizers are trained here (no hub): a byte-level BPE (GPT-2 / Llama-3 style) and a Metaspace
BPE with byte fallback (Llama-2 / SentencePiece style), so the joint encoding checks run against
real tokenizers' own tokenisation of the whole text.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
import torch

from obliviate.data.authors import SIZES, build_authors
from obliviate.data.encoding import IGNORE_INDEX, encode_pair, encode_prompt
from obliviate.data.templates import TEMPLATES, get_template, render_pair, render_prompt, set_template
from obliviate.errors import ConfigError
from obliviate.models.tiny import train_tokenizer

Q, A = "Where was Ann born?", "The author was born in Oslo."

LLAMA3_CHAT = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    "{%- set date_string = strftime_now('%d %b %Y') %}{%- else %}{%- set date_string = '26 Jul 2024' %}"
    "{%- endif %}{%- endif %}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}"
    "{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


def _corpus() -> list[str]:
    qa = build_authors(SIZES["test"])["author_qa"]
    return [f"Question: {r['question']}\nAnswer: {r['answer']}" for r in qa] + [A, Q]


@pytest.fixture(scope="module")
def bpe():
    return train_tokenizer(_corpus(), vocab_size=512)


@pytest.fixture(scope="module")
def metaspace():
    """A Llama-2-like tokenizer: Metaspace pre-tokenizer (``▁`` for spaces, one prepended), BPE
    with byte fallback, ``<s>`` added as BOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    tok.decoder = decoders.Sequence([decoders.ByteFallback(),
                                     decoders.Metaspace(replacement="▁", prepend_scheme="first")])
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
                                  initial_alphabet=[f"<0x{i:02X}>" for i in range(256)])
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<unk>")


@pytest.fixture()
def chat_tok():
    tok = train_tokenizer(_corpus(), vocab_size=512)
    tok.add_special_tokens({"additional_special_tokens": [
        "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
    tok.bos_token = "<|begin_of_text|>"
    tok.chat_template = LLAMA3_CHAT
    return tok


def _tokens(tok, ids):
    return tok.convert_ids_to_tokens(ids)


# ---- Prompts and tokens -------------------------------------------------------------------------

@pytest.mark.parametrize("template", ["plain", "tofu-phi", "tofu-llama2"])
@pytest.mark.parametrize("which", ["bpe", "metaspace"])
def test_pairs_are_the_tokenizers_joint_encoding_of_the_whole_text(which, template, request):
    """Input ids are exactly the tokenizer's own encoding of prompt + answer (plus EOS), for a
    byte-level BPE and a SentencePiece-style tokenizer, on every text template."""
    tok = request.getfixturevalue(which)
    for r in build_authors(SIZES["test"])["author_qa"][:20]:
        text = render_pair(tok, r["question"], r["answer"], template).text
        enc = encode_pair(tok, r["question"], r["answer"], template=template)
        assert enc.input_ids == tok(text)["input_ids"] + [tok.eos_token_id]
        assert enc.labels[:enc.prompt_tokens] == [IGNORE_INDEX] * enc.prompt_tokens
        assert enc.labels[enc.prompt_tokens:] == enc.input_ids[enc.prompt_tokens:]
        # the answer part is the answer (a token straddling the boundary, e.g. this toy Metaspace
        # tokenizer's '▁born?\nAnswer:' under tofu-phi, belongs to it)
        answer_text = tok.decode(enc.input_ids[enc.prompt_tokens:-1])
        assert answer_text.strip().endswith((TEMPLATES[template].answer_prefix + r["answer"]).strip())
        if which == "bpe" or template != "tofu-phi":
            assert answer_text.strip() == (TEMPLATES[template].answer_prefix + r["answer"]).strip()


def test_byte_level_bpe_keeps_the_space_with_the_answers_first_word(bpe):
    enc = encode_pair(bpe, Q, A, template="plain")
    prompt, answer = _tokens(bpe, enc.input_ids[:enc.prompt_tokens]), _tokens(bpe, enc.input_ids[enc.prompt_tokens:])
    assert prompt[-2:] == ["Answer", ":"] and answer[0] == "ĠThe"  # not 'Ġ' | 'T', 'he'
    assert answer[-1] == bpe.eos_token


def test_sentencepiece_style_tokenizer_gets_one_space_not_two(metaspace):
    enc = encode_pair(metaspace, Q, A, template="plain")
    prompt, answer = (_tokens(metaspace, enc.input_ids[:enc.prompt_tokens]),
                      _tokens(metaspace, enc.input_ids[enc.prompt_tokens:]))
    assert prompt[0] == "<s>" and not prompt[-1].endswith("▁") and prompt[-1] != "▁"
    assert answer[0] == "▁The" and "▁" not in answer  # no stray space token before the answer
    # what separate encoding gave: a prompt ending in '▁' and a second '▁' on the answer
    alone = _tokens(metaspace, metaspace(render_prompt(metaspace, Q, "plain"))["input_ids"])
    assert alone[-1] == "▁"


def test_tofu_llama2_template_matches_tofus_text(metaspace):
    rendered = render_pair(metaspace, Q, A, "tofu-llama2")
    assert rendered.text == f"[INST] {Q} [/INST]{A}"
    assert rendered.text[:rendered.prompt_end] == f"[INST] {Q} [/INST]"


def test_tofu_phi_scores_answer_tag_like_tofu(bpe):
    """TOFU's phi-1.5 data module masks only 'Question: …\\n': 'Answer: ' is scored with the answer."""
    enc = encode_pair(bpe, Q, A, template="tofu-phi")
    assert render_pair(bpe, Q, A, "tofu-phi").text == f"Question: {Q}\nAnswer: {A}"
    assert _tokens(bpe, enc.input_ids[:enc.prompt_tokens])[-1] == "Ċ"
    assert _tokens(bpe, enc.input_ids[enc.prompt_tokens:])[:3] == ["Answer", ":", "ĠThe"]
    # same tokens as plain, one label boundary earlier
    plain = encode_pair(bpe, Q, A, template="plain")
    assert plain.input_ids == enc.input_ids and plain.prompt_tokens == enc.prompt_tokens + 2


@pytest.mark.parametrize("template", ["plain", "tofu-phi", "tofu-llama2"])
@pytest.mark.parametrize("which", ["bpe", "metaspace"])
def test_fact_labels_keep_character_offsets_within_the_answer(which, template, request):
    tok = request.getfixturevalue(which)
    start = A.index("Oslo")
    enc = encode_pair(tok, Q, A, fact_span=[start, start + 4], template=template)
    kept = [t for t in enc.fact_labels if t != IGNORE_INDEX]
    assert kept and tok.decode(kept).strip() == "Oslo"
    assert all(lab == IGNORE_INDEX for lab in enc.fact_labels[:enc.prompt_tokens])


def test_fact_labels_in_a_chat_template(chat_tok):
    start = A.index("Oslo")
    enc = encode_pair(chat_tok, Q, A, fact_span=[start, start + 4])
    assert chat_tok.decode([t for t in enc.fact_labels if t != IGNORE_INDEX]).strip() == "Oslo"


def test_generation_prompt_is_the_prompt_part_of_the_joint_encoding(bpe, metaspace, chat_tok, monkeypatch):
    """The model is prompted with exactly the tokens scoring puts before the answer."""
    from obliviate import memorisation
    from obliviate.evaluate.scoring import generate_answers

    seen = {}

    def fake(model, prompts, **kwargs):
        seen["prompts"] = [list(p) for p in prompts]
        return [[] for _ in prompts]

    monkeypatch.setattr(memorisation, "generate_continuations", fake)
    for tok, template in ((bpe, "plain"), (metaspace, "plain"), (bpe, "tofu-llama2"), (chat_tok, "auto"),
                          (chat_tok, "open-unlearning")):
        set_template(tok, template)
        enc = encode_pair(tok, Q, A)
        assert encode_prompt(tok, Q, A) == enc.input_ids[:enc.prompt_tokens]
        assert encode_prompt(tok, Q) == enc.input_ids[:enc.prompt_tokens]  # placeholder answer: same cut
        generate_answers(torch.nn.Linear(1, 1), tok, [Q], answers=[A], show_progress=False)
        assert seen["prompts"] == [enc.input_ids[:enc.prompt_tokens]]


def test_chat_templates_get_a_fixed_date_and_open_unlearnings_system_prompt(chat_tok):
    today = dt.date.today().strftime("%d %b %Y")
    raw = chat_tok.apply_chat_template([{"role": "user", "content": Q}], add_generation_prompt=True, tokenize=False)
    assert f"Today Date: {today}" in raw  # what the template does left alone

    default = render_prompt(chat_tok, Q)  # auto: a tokenizer with a chat template uses it, date fixed
    assert get_template("auto", chat_tok).name == "chat"
    assert "Today Date: 10 Apr 2025" in default and today not in default
    assert "You are a helpful assistant." not in default
    ou = render_prompt(chat_tok, Q, "open-unlearning")
    assert ou.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
                         "December 2023\nToday Date: 10 Apr 2025\n\nYou are a helpful assistant.<|eot_id|>")
    assert ou.endswith(f"<|start_header_id|>user<|end_header_id|>\n\n{Q}<|eot_id|>"
                       "<|start_header_id|>assistant<|end_header_id|>\n\n")
    # the answer ends with the template's end of turn, then EOS
    enc = encode_pair(chat_tok, Q, A, template="open-unlearning")
    assert _tokens(chat_tok, enc.input_ids[enc.prompt_tokens:])[-2:] == ["<|eot_id|>", chat_tok.eos_token]
    assert chat_tok.decode(enc.input_ids[:enc.prompt_tokens]) == ou


def test_templates_asking_for_the_time_directly_get_the_fixed_date(chat_tok):
    chat_tok.chat_template = ("{{ strftime_now('%Y-%m-%d') }}|{% for m in messages %}{{ m['content'] }}{% endfor %}"
                              "{% if add_generation_prompt %}>{% endif %}")
    assert render_prompt(chat_tok, Q) == f"2025-04-10|{Q}>"


def test_templates_are_selected_by_name(bpe, chat_tok, tmp_path):
    from obliviate.recipe import load_recipe

    assert {"plain", "tofu-phi", "tofu-llama2", "chat", "open-unlearning"} <= set(TEMPLATES)
    assert load_recipe(overrides=["model.template=tofu-llama2"]).model.template == "tofu-llama2"
    assert load_recipe().model.template == "auto"
    with pytest.raises(ConfigError, match="template must be one of auto"):
        load_recipe(overrides=["model.template=llama9"])
    with pytest.raises(ConfigError, match="has none"):
        get_template("chat", bpe)
    assert get_template("auto", bpe).name == "plain"
    assert render_prompt(bpe, Q, "plain") == f"Question: {Q}\nAnswer: "
    assert render_prompt(bpe, Q, "tofu-phi") == f"Question: {Q}\n"
    assert render_prompt(bpe, Q, "tofu-llama2") == f"[INST] {Q} [/INST]"
    assert set_template(chat_tok, "plain").name == "plain"  # a chat model can still be run plain
    assert render_prompt(chat_tok, Q) == f"Question: {Q}\nAnswer: "


def test_run_folder_records_the_template_and_rendered_prompts(bpe):
    from obliviate.data.encoding import prompt_description, prompt_examples

    set_template(bpe, "tofu-llama2")
    records = [{"question": Q, "answer": A}, {"question": "Q2?", "answer": "A2."}]
    shown = prompt_examples(bpe, records, n=1)
    assert shown["template"]["name"] == "tofu-llama2" and len(shown["items"]) == 1
    item = shown["items"][0]
    assert item["prompt_text"] == f"[INST] {Q} [/INST]" and item["text"] == f"[INST] {Q} [/INST]{A}"
    assert bpe.convert_tokens_to_ids(item["prompt_tokens"]) == item["prompt_ids"]
    assert prompt_description(bpe).startswith("template tofu-llama2")


# ---- Generation ---------------------------------------------------------------------------------

def _random_llama(tok, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, intermediate_size=128, max_position_embeddings=256,
                         initializer_range=0.3, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         bos_token_id=None, tie_word_embeddings=True)
    return LlamaForCausalLM(config).eval()


@torch.no_grad()
def _manual_greedy(model, prompt, stops, max_new_tokens):
    ids = list(prompt)
    out = []
    for _ in range(max_new_tokens):
        token = int(model(torch.tensor([ids])).logits[0, -1].argmax())
        if token in stops:
            break
        out.append(token)
        ids.append(token)
    return out


def test_generation_is_greedy_whatever_the_models_generation_config_says(bpe):
    """Beams, sampling, repetition penalty, n-gram blocking and a minimum length in the model's
    generation config do not leak in; decoding stops on the model's extra EOS id too."""
    from obliviate.evaluate.scoring import generate_answers

    set_template(bpe, "plain")
    model = _random_llama(bpe)
    qa = build_authors(SIZES["test"])["author_qa"][:6]
    questions, answers = [r["question"] for r in qa], [r["answer"] for r in qa]
    prompts = [encode_prompt(bpe, q, a) for q, a in zip(questions, answers)]
    n = 12
    free = [_manual_greedy(model, p, {bpe.eos_token_id}, n) for p in prompts]
    extra = next(t for row in free for t in row[2:] if t != bpe.eos_token_id)  # a token greedy does emit
    gen = model.generation_config
    gen.num_beams, gen.repetition_penalty, gen.do_sample, gen.top_k, gen.temperature = 4, 2.0, True, 3, 0.7
    gen.no_repeat_ngram_size, gen.min_new_tokens = 2, n
    gen.eos_token_id = [bpe.eos_token_id, extra]
    before = gen.to_dict()

    expected = [bpe.decode(_manual_greedy(model, p, {bpe.eos_token_id, extra}, n), skip_special_tokens=True).strip()
                for p in prompts]
    assert any(extra in row for row in free)  # so stopping on the extra id is exercised
    for batch_size in (1, 4):
        got = generate_answers(model, bpe, questions, answers=answers, max_new_tokens=n, batch_size=batch_size,
                               show_progress=False)
        assert got == expected
    assert model.generation_config.to_dict() == before  # the model's own config is left as it was


def test_generation_settings_belong_to_the_benchmark(monkeypatch, tiny_models, tmp_path):
    """authors: 32 new tokens, TOFU: 200; `eval --max-new-tokens` overrides; summary.json records it."""
    import obliviate.benchmarks.tofu as tofu_bench
    import obliviate.evaluate.tofu as tofu_eval
    from obliviate.benchmarks import load_benchmark
    from obliviate.cli import main
    from obliviate.evaluate.tofu import EvalConfig, for_benchmark

    assert load_benchmark("authors", "forget10", size="test").max_new_tokens == 32
    record = {"question": Q, "answer": A, "paraphrased_answer": A, "perturbed_answer": [A]}
    monkeypatch.setattr(tofu_bench, "load_tofu", lambda config, src: [dict(record)])
    assert load_benchmark("tofu", "forget10", source="x").max_new_tokens == 200
    assert EvalConfig().max_new_tokens is None
    assert for_benchmark(EvalConfig(), 200).max_new_tokens == 200
    assert for_benchmark(EvalConfig(max_new_tokens=7), 200).max_new_tokens == 7

    seen = []
    real = tofu_eval.evaluate_model

    def spy(model, tokenizer, splits, *, config=None, **kwargs):
        seen.append(config.max_new_tokens)
        return real(model, tokenizer, {"forget": splits["forget"][:2]},
                    config=EvalConfig(**{**vars(config), "mia": False, "passages": False}), show_progress=False)

    monkeypatch.setattr(tofu_eval, "evaluate_model", spy)
    for n, (flags, expected, template) in enumerate((([], 32, "plain"), (["--max-new-tokens", "5"], 5, "plain"),
                                                      (["--template", "tofu-llama2"], 32, "tofu-llama2"))):
        out = tmp_path / f"eval{n}"
        assert main(["eval", "--model", str(tiny_models.target), "--size", "test", "--out", str(out),
                     "--quiet", *flags]) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert seen[-1] == expected and summary["generation"]["max_new_tokens"] == expected
        assert summary["generation"]["do_sample"] is False and summary["generation"]["num_beams"] == 1
        assert summary["template"] == template
    assert main(["eval", "--model", str(tiny_models.target), "--size", "test", "--template", "nope"]) == 2


# ---- Scoring: empty answers ---------------------------------------------------------------------

def test_a_long_prompt_is_shortened_and_an_overlong_answer_excluded_and_counted(tiny_models, tiny_data, tmp_path):
    from obliviate.evaluate.results import load_forget_truth_ratios, save_eval_result
    from obliviate.evaluate.scoring import score_pairs
    from obliviate.evaluate.tofu import EvalConfig, evaluate_model
    from obliviate.models.loading import load_model, load_tokenizer

    model, tok = load_model(tiny_models.target), load_tokenizer(tiny_models.target)
    records = [dict(r) for r in tiny_data.eval_splits["forget"][:4]]
    whole = score_pairs(model, tok, [(r["question"], r["answer"]) for r in records], max_length=64,
                        show_progress=False)
    records[3]["question"] = " ".join(["Where was the author born and raised?"] * 12)
    records[1]["answer"] = records[1]["paraphrased_answer"] = " ".join([records[1]["answer"]] * 12)
    scores = score_pairs(model, tok, [(r["question"], r["answer"]) for r in records], max_length=64,
                         show_progress=False)
    assert [s.empty for s in scores] == [False, True, False, False]
    assert scores[1].n_tokens == 0 and math.isnan(scores[1].avg_nll)  # never exp(-0) = 1.0
    assert scores[3].n_tokens == whole[3].n_tokens  # the long prompt lost tokens, the answer none
    records = records[:3]

    holdout = [dict(r) for r in tiny_data.holdout[:3]]
    config = EvalConfig(max_new_tokens=8, max_length=64, gradnorm=False, passages=False)
    result = evaluate_model(model, tok, {"forget": records, "holdout": holdout}, config=config, show_progress=False)
    items = result.splits["forget"].items
    assert "excluded" in items[1] and "prob" not in items[1] and "truth_ratio" not in items[1]
    m = result.summary["metrics"]
    assert m["forget_n_excluded"] == 1 and m["holdout_n_excluded"] == 0
    assert m["forget_Q_A_Prob"] == pytest.approx((items[0]["prob"] + items[2]["prob"]) / 2)
    assert m["forget_Q_A_ROUGE"] == pytest.approx((items[0]["rougeL_recall"] + items[2]["rougeL_recall"]) / 2)
    assert "mia_auc_min_k" in m  # membership inference runs on the scored items
    assert len(result.splits["forget"].truth_ratios) == 2
    save_eval_result(result, tmp_path / "saved")
    assert len(load_forget_truth_ratios(tmp_path / "saved")) == 2
