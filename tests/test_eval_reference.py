"""Scoring against the reference definitions (issue 9, "Scoring" and "Side by side").

* obliviate's TOFU evaluation of the tiny test model gives the same per-item answer
  probabilities, truth ratios, normalised probabilities, ROUGE-L, exact memorisation and
  extraction strength as a straightforward computation written here from first principles
  (plain ``model(...)`` forward on the jointly tokenised text, a greedy loop without
  ``generate``, ``rouge_score``'s scorer, TOFU's truth-ratio definition), with the plain template
  and with a chat template;
* exact memorisation drops the final (EOS) position and extraction strength is 0.0, not
  open-unlearning's ``1/len``, when the last position is wrong (hand-computed);
* saved retain results that scored other data are refused, and the summary records which were used.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from obliviate.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# exact memorisation / extraction strength, by hand


def test_memorisation_flags_drop_the_final_position():
    from obliviate.evaluate.tofu import memorisation_flags

    assert memorisation_flags([True, False, True, True, True]) == [True, False, True, True]
    assert memorisation_flags([True, False]) == [True]
    assert memorisation_flags([True]) == []  # an empty answer: only its EOS was scored


def _fake_scores(monkeypatch, flags_by_answer: dict[str, list[bool]]):
    """evaluate_split with the model passes replaced: each answer's teacher-forced flags given."""
    from obliviate.evaluate import tofu
    from obliviate.evaluate.scoring import PairScore

    def score_pairs(model, tokenizer, pairs, **_):
        return [PairScore(0.5 * len(flags_by_answer[a]), len(flags_by_answer[a]), flags_by_answer[a])
                for _, a in pairs]

    monkeypatch.setattr(tofu, "score_pairs", score_pairs)
    monkeypatch.setattr(tofu, "generate_answers", lambda model, tok, questions, **_: ["x"] * len(questions))


def test_exact_memorization_and_extraction_strength_by_hand(monkeypatch):
    """Four answers, each scored on its tokens plus EOS (the last flag). Hand-computed:

    a: T F T T | eos T  -> EM 3/4 (4/5 if EOS counted), ES 1 - 2/4 = 0.5
    b: T T T F | eos T  -> EM 3/4, ES 0.0 (last answer token wrong; open-unlearning: 1/4)
    c: T T     | eos F  -> EM 1.0 (2/3 if EOS counted), ES 1.0
    d:         | eos T  -> empty answer: no EM/ES, skipped by the aggregates
    """
    from obliviate.evaluate.tofu import EvalConfig, evaluate_split

    flags = {"a": [True, False, True, True, True], "b": [True, True, True, False, True],
             "c": [True, True, False], "d": [True]}
    _fake_scores(monkeypatch, flags)
    records = [{"question": f"q{k}", "answer": k} for k in flags]
    result = evaluate_split(None, None, "forget", records, EvalConfig(mia=False), show_progress=False)
    em = [item.get("exact_memorization") for item in result.items]
    es = [item.get("extraction_strength") for item in result.items]
    assert em == [0.75, 0.75, 1.0, None]
    assert es == [0.5, 0.0, 1.0, None]
    assert result.aggregates["forget_exact_memorization"] == pytest.approx((0.75 + 0.75 + 1.0) / 3)
    assert result.aggregates["forget_extraction_strength"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert result.aggregates["forget_n_excluded"] == 0


# ---------------------------------------------------------------------------------------------
# side by side with an independent computation

CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}"
                 "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")


def _reference_texts(tok, question: str, answer: str, chat: bool) -> tuple[str, str]:
    """(whole text, prompt text) as the model reads them, rendered without obliviate."""
    if not chat:
        prompt = f"Question: {question}\nAnswer: "
        return prompt + answer, prompt
    prompt = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                     tokenize=False)
    whole = tok.apply_chat_template([{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
                                    tokenize=False)
    assert whole.startswith(prompt)
    return whole.rstrip(), prompt


def _reference_encoding(tok, question: str, answer: str, chat: bool) -> tuple[list[int], int]:
    """The whole text tokenised at once (EOS appended unless last) and the number of prompt
    tokens: the answer starts at the first token whose characters reach past the prompt text."""
    whole, prompt = _reference_texts(tok, question, answer, chat)
    enc = tok(whole, add_special_tokens=not chat, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    n_prompt = next(i for i, (_, end) in enumerate(enc["offset_mapping"]) if end > len(prompt))
    if ids[-1] != tok.eos_token_id:
        ids.append(tok.eos_token_id)
    return ids, n_prompt


@torch.no_grad()
def _reference_answer_stats(model, tok, question: str, answer: str, chat: bool) -> dict:
    ids, n_prompt = _reference_encoding(tok, question, answer, chat)
    logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)
    # position t predicts token t + 1; the answer tokens are ids[n_prompt:]
    nll = [-float(logp[t - 1, ids[t]]) for t in range(n_prompt, len(ids))]
    correct = [int(logits[t - 1].argmax()) == ids[t] for t in range(n_prompt, len(ids))]
    return {"avg_nll": sum(nll) / len(nll), "n_tokens": len(nll), "correct": correct, "prompt": ids[:n_prompt]}


@torch.no_grad()
def _reference_generation(model, tok, prompt_ids: list[int], max_new_tokens: int) -> str:
    ids = list(prompt_ids)
    new: list[int] = []
    for _ in range(max_new_tokens):
        nxt = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        if nxt == tok.eos_token_id:
            break
        ids.append(nxt)
        new.append(nxt)
    return tok.decode(new, skip_special_tokens=True).strip()


def _reference_items(model, tok, split: str, records, chat: bool, max_new_tokens: int) -> list[dict]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    out = []
    for rec in records:
        q = rec["question"]
        ans = _reference_answer_stats(model, tok, q, rec["answer"], chat)
        # TOFU: the truth ratio's correct answer is the paraphrase on forget/retain, the answer elsewhere
        correct_text = rec["paraphrased_answer"] if split in ("forget", "retain") else rec["answer"]
        p_correct = math.exp(-_reference_answer_stats(model, tok, q, correct_text, chat)["avg_nll"])
        p_wrong = [math.exp(-_reference_answer_stats(model, tok, q, w, chat)["avg_nll"])
                   for w in rec["perturbed_answer"]]
        generation = _reference_generation(model, tok, ans["prompt"], max_new_tokens)
        flags = ans["correct"][:-1]  # final EOS position dropped
        wrong = [i for i, f in enumerate(flags) if not f]
        p_answer = math.exp(-ans["avg_nll"])
        out.append({
            "prob": p_answer, "n_tokens": ans["n_tokens"], "generation": generation,
            # TOFU: geometric mean of the perturbed answers' length-normalised probabilities over the
            # correct answer's
            "truth_ratio": math.prod(p_wrong) ** (1 / len(p_wrong)) / p_correct,
            "prob_normalised": p_answer / (p_answer + sum(p_wrong)),
            "rougeL_recall": scorer.score(rec["answer"], generation)["rougeL"].recall,
            "exact_memorization": sum(flags) / len(flags),
            "extraction_strength": 1 - (wrong[-1] + 1) / len(flags) if wrong else 1.0,
        })
    return out


@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat"])
def test_evaluation_matches_an_independent_computation(chat, tiny_models, tokenizer, tiny_data):
    from transformers import AutoModelForCausalLM

    from obliviate.evaluate.tofu import EvalConfig, evaluate_model

    tok = copy.deepcopy(tokenizer)
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    model = AutoModelForCausalLM.from_pretrained(tiny_models.target, dtype=torch.float32).eval()
    splits = {"forget": tiny_data.eval_splits["forget"][:8], "retain": tiny_data.eval_splits["retain"][:4],
              "real_authors": tiny_data.eval_splits["real_authors"][:4],
              "world_facts": tiny_data.eval_splits["world_facts"][:4]}
    max_new = tiny_data.max_new_tokens
    result = evaluate_model(model, tok, splits, config=EvalConfig(max_new_tokens=max_new, mia=False, passages=False,
                                                                  batch_size=4), show_progress=False)
    assert result.summary["template"] == ("chat" if chat else "plain")
    n_rouge_positive = 0
    for split, records in splits.items():
        expected = _reference_items(model, tok, split, records, chat, max_new)
        for got, want, rec in zip(result.splits[split].items, expected, records):
            where = f"{split}: {rec['question']!r}"
            assert "excluded" not in got, where
            assert got["n_tokens"] == want["n_tokens"], where
            assert got["generation"] == want["generation"], where
            for key in ("prob", "truth_ratio", "rougeL_recall", "exact_memorization", "extraction_strength"):
                assert got[key] == pytest.approx(want[key], rel=1e-4, abs=1e-6), f"{where}: {key}"
            if split in ("real_authors", "world_facts"):
                assert got["prob_normalised"] == pytest.approx(want["prob_normalised"], rel=1e-4), where
            n_rouge_positive += want["rougeL_recall"] > 0
        aggregates = result.splits[split].aggregates
        prefix = {"real_authors": "ra", "world_facts": "wf"}.get(split, split)
        ratios = np.array([w["truth_ratio"] for w in expected])
        want_tr = (np.mean(np.minimum(ratios, 1 / ratios)) if split == "forget"
                   else np.mean(np.maximum(0, 1 - ratios)))
        assert aggregates[f"{prefix}_Truth_Ratio"] == pytest.approx(want_tr, rel=1e-4)
        assert aggregates[f"{prefix}_Q_A_ROUGE"] == pytest.approx(np.mean([w["rougeL_recall"] for w in expected]))
    assert n_rouge_positive > 0  # the comparison saw real generations, not empty strings only


# ---------------------------------------------------------------------------------------------
# forget quality against saved retain results


def _saved_retain(folder, questions, summary=None, holdout=None):
    items = folder / "items"
    items.mkdir(parents=True)
    (items / "forget.jsonl").write_text("".join(json.dumps({"question": q, "truth_ratio": 0.5 + 0.01 * i}) + "\n"
                                                for i, q in enumerate(questions)), encoding="utf-8")
    if holdout is not None:
        (items / "holdout.jsonl").write_text("".join(json.dumps({"question": q}) + "\n" for q in holdout),
                                             encoding="utf-8")
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return folder


@pytest.fixture()
def no_model_pass(monkeypatch):
    """api.evaluate with the evaluation itself stubbed: only the retain-results handling runs."""
    from obliviate.evaluate import tofu
    from obliviate.models import loading

    calls = []

    def evaluate_model(model, tokenizer, splits, **kwargs):
        calls.append(kwargs.get("retain_result"))
        return tofu.EvalResult({}, {"metrics": {}})

    monkeypatch.setattr(tofu, "evaluate_model", evaluate_model)
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: object())
    monkeypatch.setattr(loading, "load_tokenizer", lambda *a, **k: object())
    monkeypatch.setattr("obliviate.data.templates.set_template", lambda *a, **k: None)
    return calls


def _questions(split="forget"):
    from obliviate.benchmarks import load_benchmark

    data = load_benchmark("authors", "forget10", size="test", seed=0)
    return [r["question"] for r in (data.eval_splits["forget"] if split == "forget" else data.holdout)]


RECORDED = {"benchmark": "authors", "forget_split": "forget10", "size": "test", "seed": 0, "template": "plain"}


def test_retain_results_recorded_in_the_summary(tmp_path, no_model_pass):
    from obliviate import api

    folder = _saved_retain(tmp_path / "retain", _questions(), RECORDED, holdout=_questions("holdout"))
    result = api.evaluate("unused", size="test", retain_results=folder, show_progress=False)
    assert no_model_pass[0] is not None  # the saved evaluation was handed to the evaluator
    used = result.summary["retain_results"]
    assert used == {"path": str(folder), "source": None, **RECORDED}
    assert {k: result.summary[k] for k in ("benchmark", "forget_split", "size", "seed")} == {
        "benchmark": "authors", "forget_split": "forget10", "size": "test", "seed": 0}


@pytest.mark.parametrize("change, message", [
    ({"benchmark": "tofu"}, "benchmark 'tofu'"),
    ({"forget_split": "forget01"}, "forget_split 'forget01'"),
    ({"size": "small"}, "size 'small'"),
    ({"seed": 3}, "seed 3"),
])
def test_retain_results_of_other_data_are_refused(tmp_path, no_model_pass, change, message):
    from obliviate import api

    folder = _saved_retain(tmp_path / "retain", _questions(), {**RECORDED, **change})
    with pytest.raises(ConfigError, match=message) as info:
        api.evaluate("unused", size="test", retain_results=folder, show_progress=False)
    assert "\n" not in str(info.value) and not no_model_pass


def test_retain_results_with_other_questions_are_refused(tmp_path, no_model_pass):
    from obliviate import api

    questions = _questions()
    # nothing recorded (an older saved evaluation): the questions still decide
    fewer = _saved_retain(tmp_path / "fewer", questions[:-2])
    with pytest.raises(ConfigError, match=r"forget split is not this evaluation's \(18 questions, this "
                                          r"evaluation has 20\)"):
        api.evaluate("unused", size="test", retain_results=fewer, show_progress=False)
    other = _saved_retain(tmp_path / "other", [*questions[:4], "Who is nobody?", *questions[5:]], RECORDED)
    with pytest.raises(ConfigError, match="question 5 differs"):
        api.evaluate("unused", size="test", retain_results=other, show_progress=False)
    holdout = _saved_retain(tmp_path / "holdout", questions, RECORDED, holdout=_questions("holdout")[::-1])
    with pytest.raises(ConfigError, match="its holdout split"):
        api.evaluate("unused", size="test", retain_results=holdout, show_progress=False)
    assert not no_model_pass


def test_retain_results_of_a_run_folder_read_the_run_summary(tmp_path, no_model_pass):
    from obliviate import api

    run = tmp_path / "run"
    folder = _saved_retain(run / "eval" / "retain", _questions(), {"metrics": {}, "template": "plain"})
    (run / "summary.json").write_text(json.dumps({
        "benchmark": "authors", "forget_split": "forget10", "seed": 0,
        "recipe": {"benchmark": {"name": "authors", "forget_split": "forget10", "size": "small"}}}), encoding="utf-8")
    with pytest.raises(ConfigError, match="size 'small'"):
        api.evaluate("unused", size="test", retain_results=folder, show_progress=False)
    (run / "summary.json").write_text(json.dumps({
        "benchmark": "authors", "forget_split": "forget10", "seed": 0,
        "recipe": {"benchmark": {"name": "authors", "forget_split": "forget10", "size": "test"}}}), encoding="utf-8")
    result = api.evaluate("unused", size="test", retain_results=folder, show_progress=False)
    assert result.summary["retain_results"]["size"] == "test"
    assert result.summary["retain_results"]["path"] == str(folder)


def test_unlearn_recipe_help_names_the_paper_defaults():
    from obliviate.cli import build_parser

    parser = build_parser()
    unlearn = next(a for a in parser._subparsers._group_actions[0].choices["unlearn"]._actions
                   if "--recipe" in a.option_strings)
    assert "paper defaults" in unlearn.help and "embedded default)" not in unlearn.help
