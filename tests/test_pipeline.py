"""Integration: real pipelines on the embedded benchmark at test size (models trained once per session)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import TEST_OVERRIDES


def test_target_memorises_and_retain_model_does_not_know_the_forget_authors(target_eval, retain_eval):
    t, r = target_eval.summary["metrics"], retain_eval.summary["metrics"]
    assert t["forget_Q_A_ROUGE"] >= 0.9 and t["retain_Q_A_ROUGE"] >= 0.9
    assert r["retain_Q_A_ROUGE"] >= 0.9
    assert r["forget_Q_A_ROUGE"] < 0.5 * t["forget_Q_A_ROUGE"]
    assert t["forget_quality"] < 0.01


def test_evaluator_writes_per_item_numbers(target_eval, tiny_data):
    forget = target_eval.splits["forget"]
    assert len(forget.items) == len(tiny_data.eval_splits["forget"])
    item = forget.items[0]
    for key in ("question", "answer", "generation", "avg_nll", "prob", "rougeL_recall", "truth_ratio",
                "avg_nll_perturbed", "avg_nll_correct", "prob_normalised"):
        assert key in item
    assert 0 < target_eval.summary["metrics"]["model_utility"] <= 1


def test_default_run_forgets_and_keeps_utility(tmp_path, tiny_models):
    from obliviate import run

    out = tmp_path / "run"
    result = run(overrides=TEST_OVERRIDES, out=out, show_progress=False, log=lambda *_: None)
    rows = result.rows
    assert rows["retain"]["forget_quality"] == 1.0
    assert rows["unlearned"]["forget_Q_A_Prob"] < 0.5 * rows["target"]["forget_Q_A_Prob"]
    assert rows["unlearned"]["forget_quality"] >= 100 * rows["target"]["forget_quality"]
    assert rows["unlearned"]["model_utility"] >= 0.9 * rows["target"]["model_utility"]
    assert rows["unlearned"]["retain_Q_A_ROUGE"] >= 0.9
    for name in ("recipe.yaml", "summary.json", "report.md", "fq_vs_mu.png", "train_log.jsonl",
                 "model/model.safetensors", "eval/unlearned/items/forget.jsonl", "eval/retain/summary.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["recipe"]["objective"]["name"] == "npo" and "transformers" in summary["versions"]
    assert "| unlearned" in (out / "report.md").read_text()
    # prompts are recorded: the template's name, the benchmark's generation budget, and the exact
    # rendered prompts of the first forget items (the answer's first word keeps its space)
    assert summary["template"] == "plain" and summary["prompt"].startswith("template plain")
    assert summary["generation"]["max_new_tokens"] == 32 and summary["generation"]["num_beams"] == 1
    prompts = json.loads((out / "prompts.json").read_text())
    first = prompts["items"][0]
    assert prompts["template"]["name"] == "plain" and len(prompts["items"]) == 3
    assert first["prompt_text"] == f"Question: {first['question']}\nAnswer: "
    assert first["prompt_tokens"][-2:] == ["Answer", ":"] and first["answer_tokens"][0].startswith("Ġ")


@pytest.mark.parametrize("method", ["ga", "graddiff", "kl", "npo", "simnpo", "idkdpo"])
def test_every_objective_lowers_forget_probability(method, tiny_models, tiny_data, tokenizer):
    from obliviate.api import _unlearn_loaded
    from obliviate.evaluate.scoring import score_pairs
    from obliviate.models.loading import load_model
    from obliviate.recipe import load_recipe

    recipe = load_recipe(method=method, overrides=["benchmark.size=test", "schedule.max_steps=6",
                                                   "training.learning_rate=5e-4", "training.batch_size=8"])
    pairs = [(r["question"], r["answer"]) for r in tiny_data.forget]
    model = load_model(tiny_models.target)
    before = sum(s.avg_nll for s in score_pairs(model, tokenizer, pairs, show_progress=False))
    answering, _, outcome = _unlearn_loaded(model, tokenizer, tiny_data.forget, tiny_data.retain, recipe, False)
    after = sum(s.avg_nll for s in score_pairs(answering, tokenizer, pairs, show_progress=False))
    assert after > before, f"{method}: forget NLL did not rise ({before:.3f} -> {after:.3f})"
    assert outcome.history and "forget_loss" in outcome.history[0]


def test_lora_scope_unlearns_and_saves_only_an_adapter(tmp_path, tiny_models, tiny_data):
    import safetensors.torch

    from obliviate import unlearn
    from obliviate.evaluate.scoring import score_pairs
    from obliviate.models.loading import load_model, load_tokenizer

    forget = tmp_path / "forget.jsonl"
    forget.write_text("".join(json.dumps(r) + "\n" for r in tiny_data.forget))
    retain = tmp_path / "retain.jsonl"
    retain.write_text("".join(json.dumps(r) + "\n" for r in tiny_data.retain))
    out = tmp_path / "lora"
    from obliviate.recipe import default_recipe_path

    result = unlearn(str(tiny_models.target), str(forget), str(retain), recipe=default_recipe_path(), overrides=[
        "scope=lora", "scope.r=8", "objective.forget_tokens=answer", "training.learning_rate=3e-3",
        "training.batch_size=8", "schedule=epochs", "schedule.epochs=10"], out=out, show_progress=False)
    adapter = out / "adapter_model.safetensors"
    assert adapter.is_file() and not (out / "model.safetensors").exists()
    assert all("lora_" in k for k in safetensors.torch.load_file(adapter))
    tok = load_tokenizer(tiny_models.target)
    pairs = [(r["question"], r["answer"]) for r in tiny_data.forget]
    before = sum(s.avg_nll for s in score_pairs(load_model(tiny_models.target), tok, pairs, show_progress=False))
    after = sum(s.avg_nll for s in score_pairs(result.model, tok, pairs, show_progress=False))
    assert after > before + 0.5 * len(pairs)


def test_eval_cli_with_saved_retain_results(tmp_path, tiny_models, capsys):
    from obliviate.cli import main

    retain_out = tmp_path / "retain-eval"
    assert main(["eval", "--model", str(tiny_models.retain), "--size", "test", "--out", str(retain_out),
                 "--quiet"]) == 0
    assert main(["eval", "--model", str(tiny_models.target), "--size", "test", "--retain-results",
                 str(retain_out), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "forget quality" in out and (retain_out / "items" / "forget.jsonl").is_file()
    # the saved retain evaluation also serves membership inference: Reference score and privleak
    assert "privleak" in out and (retain_out / "items" / "holdout.jsonl").is_file()
