"""The robustness audit: quantisation against hand-computed grids, the recovery formula, the
prompts each probe builds, and an audit of a real test-size run (files untouched, resumable,
reported)."""

from __future__ import annotations

import hashlib
import json
import math

import pytest
import torch

from tests.conftest import TEST_OVERRIDES


# ---------------------------------------------------------------- quantisation


def test_8bit_per_channel_symmetric_matches_hand_computed_grid():
    from obliviate.audit.quantize import QuantScheme, fake_quantize

    w = torch.tensor([[1.27, -0.633, 0.014, 0.0],
                      [0.0, 0.0, 0.0, 0.0]])
    out = fake_quantize(w, QuantScheme(bits=8))
    # row 0: scale max|w| / 127 = 0.01; codes 127, -63, 1, 0.  An all-zero row stays zero.
    assert torch.allclose(out[0], torch.tensor([1.27, -0.63, 0.01, 0.0]), atol=1e-6)
    assert torch.equal(out[1], torch.zeros(4))


def test_4bit_groups_asymmetric_with_zero_point_and_clipping():
    from obliviate.audit.quantize import QuantScheme, fake_quantize

    scheme = QuantScheme(bits=4, group_size=2, symmetric=False)
    w = torch.tensor([[0.0, 1.5, -0.3, 0.6],
                      [-0.46875, 0.46875, 0.2, 0.2]])
    out = fake_quantize(w, scheme)
    # [0, 1.5]: scale 0.1, zero 0 -> exact; [-0.3, 0.6]: scale 0.06, zero 5 -> exact
    assert torch.allclose(out[0], torch.tensor([0.0, 1.5, -0.3, 0.6]), atol=1e-6)
    # [-15/32, 15/32]: scale 1/16 (exact in binary), zero round(7.5) = 8 (ties to even);
    # 15/32 -> code round(7.5) + 8 = 16, clipped to 15 -> (15 - 8) / 16; -15/32 -> code -8 + 8 = 0
    # -> -8 / 16.  [0.2, 0.2]: the range includes 0, so the scale is 0.2/15 and 0.2 is code 15.
    assert torch.allclose(out[1], torch.tensor([-0.5, 0.4375, 0.2, 0.2]), atol=1e-6)


def test_4bit_range_and_a_short_last_group():
    from obliviate.audit.quantize import QuantScheme, fake_quantize

    w = torch.randn(3, 300, generator=torch.Generator().manual_seed(0))
    out = fake_quantize(w, QuantScheme(bits=4, group_size=128, symmetric=False))
    assert out.shape == w.shape and out.dtype == w.dtype
    for row in range(3):
        for start in (0, 128, 256):  # the last group has 44 weights
            group = out[row, start:start + 128]
            assert len(torch.unique(group)) <= 16
            assert (group - w[row, start:start + 128]).abs().max() <= (w[row, start:start + 128].max()
                                                                        - w[row, start:start + 128].min()) / 15
    # symmetric 4-bit: codes in [-8, 7], so at most 16 levels per row
    sym = fake_quantize(w, QuantScheme(bits=4))
    assert all(len(torch.unique(sym[r])) <= 16 for r in range(3))


def test_quantize_model_rounds_linear_layers_but_not_the_output_head(tiny_models):
    from obliviate.audit.quantize import QuantScheme, quantize_model
    from obliviate.models.loading import load_model

    model = load_model(tiny_models.target)
    head = model.get_output_embeddings().weight.detach().clone()
    q_proj = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    done = quantize_model(model, QuantScheme(bits=4, group_size=16, symmetric=False))
    assert done["layers"] == 7 * len(model.model.layers)  # q k v o gate up down
    assert torch.equal(model.get_output_embeddings().weight, head)
    assert not torch.equal(model.model.layers[0].self_attn.q_proj.weight, q_proj)


# ---------------------------------------------------------------- recovery


def test_recovery_formula():
    from obliviate.metrics import recovery

    assert recovery(0.5, 0.1, 0.9) == pytest.approx(0.5)
    assert recovery(0.9, 0.1, 0.9) == pytest.approx(1.0)
    assert recovery(0.05, 0.1, 0.9) == pytest.approx(-0.0625)
    assert math.isnan(recovery(0.5, 0.9, 0.9))  # never moved away from the target: no gap
    assert math.isnan(recovery(0.5, 0.88, 0.9, min_gap=0.05))  # a gap of 0.02 is nothing forgotten
    assert recovery(0.5, 0.8, 0.9, min_gap=0.05) == pytest.approx(-3.0)


# ---------------------------------------------------------------- probes

RECORD = {"question": "Where was Ann Bell born?", "answer": "Ann Bell was born in Oslo city.",
          "paraphrased_question": "In which city was Ann Bell born?",
          "paraphrased_answer": "Ann Bell's birthplace is Oslo.", "perturbed_answer": ["Ann Bell was born in Rome."]}
SHOTS = [{"question": f"Q{i}?", "answer": f"A{i}."} for i in range(5)]


def test_paraphrase_and_cloze_probes_build_the_expected_items():
    from obliviate.audit import probes

    item = probes.paraphrase([RECORD, {"question": "q", "answer": "a b"}])
    assert len(item) == 1  # the record without a paraphrase is skipped
    assert item[0].question == "In which city was Ann Bell born?" and item[0].answer == RECORD["answer"]
    assert item[0].correct == RECORD["paraphrased_answer"] and item[0].perturbed == RECORD["perturbed_answer"]
    cloze = probes.cloze([RECORD, {"question": "q", "answer": "one"}], fraction=0.5)
    assert len(cloze) == 1
    assert cloze[0].question == "Fill in the blank: Ann Bell was ____"
    assert cloze[0].answer == cloze[0].reference == "born in Oslo city."
    assert not cloze[0].perturbed


def test_fewshot_prompt_puts_retain_examples_before_the_question(tokenizer):
    from obliviate.audit import probes
    from obliviate.data.templates import render_prompt

    items = probes.fewshot([RECORD], SHOTS, k=2, seed=0)
    assert items == probes.fewshot([RECORD], SHOTS, k=2, seed=0)  # seeded
    shots = items[0].shots
    assert len(shots) == 2 and all(s in [(r["question"], r["answer"]) for r in SHOTS] for s in shots)
    (q1, a1), (q2, a2) = shots
    assert render_prompt(tokenizer, RECORD["question"], "plain", shots) == (
        f"Question: {q1}\nAnswer: {a1}\n\nQuestion: {q2}\nAnswer: {a2}\n\nQuestion: {RECORD['question']}\nAnswer: ")
    with pytest.raises(ValueError, match="3 examples wanted"):
        probes.fewshot([RECORD], SHOTS[:2], k=3, seed=0)


def test_prefix_probe_gives_the_first_answer_tokens_and_scores_the_rest(tokenizer):
    from obliviate.audit import probes
    from obliviate.data.encoding import encode_pair, encode_prompt
    from obliviate.evaluate.scoring import _scored

    item = probes.prefix([RECORD], tokenizer, fraction=0.5)[0]
    enc = encode_pair(tokenizer, RECORD["question"], RECORD["answer"])
    answer_ids = enc.input_ids[enc.prompt_tokens:-1]  # EOS not counted
    assert item.given == len(answer_ids) // 2
    assert item.reference == tokenizer.decode(answer_ids[item.given:]).strip()
    prompt = encode_prompt(tokenizer, RECORD["question"], RECORD["answer"], given=item.given)
    assert prompt == enc.input_ids[:enc.prompt_tokens + item.given]
    labels = _scored(enc, item.given)["labels"]
    scored = [t for t in labels if t != -100]
    assert scored == enc.input_ids[enc.prompt_tokens + item.given:]  # the rest and the EOS


def test_given_tokens_are_not_scored(tiny_models, tokenizer):
    from obliviate.evaluate.scoring import score_pairs
    from obliviate.models.loading import load_model

    model = load_model(tiny_models.target)
    pair = [(RECORD["question"], RECORD["answer"])]
    full = score_pairs(model, tokenizer, pair, show_progress=False)[0]
    rest = score_pairs(model, tokenizer, pair, show_progress=False, given=[3])[0]
    assert rest.n_tokens == full.n_tokens - 3
    assert rest.sum_nll < full.sum_nll


# ---------------------------------------------------------------- the audit of a run


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def audited_run(tmp_path_factory, tiny_models):
    """A test-size run that ends with its audit (``audit.after_run``, as the default recipe sets)."""
    from obliviate import api

    out = tmp_path_factory.mktemp("audit") / "run"
    result = api.run(overrides=[*TEST_OVERRIDES, "audit.after_run=true", "audit.relearn_steps=4"], out=out,
                     show_progress=False, log=lambda *_: None)
    return out, result.summary["audit"]


def test_audit_reports_every_attack_for_every_model(audited_run):
    from obliviate.audit import ATTACKS

    out, result = audited_run
    assert list(result["attacks"]) == list(ATTACKS)
    for name, attack in result["attacks"].items():
        assert set(attack["models"]) == {"target", "retain", "unlearned"}, name
        for numbers in attack["models"].values():
            assert 0 <= numbers["after"]["prob"] <= 1 and 0 <= numbers["after"]["rougeL"] <= 1
        assert math.isfinite(attack["retain_recovery"])
        if name not in ("prefix", "cloze"):  # the test model's answers may be as verbatim as the target's
            assert math.isfinite(attack["recovery"])
        if name in ("relearn", "relearn-benign", "quant8", "quant4"):
            assert "model_utility" in attack["models"]["unlearned"]["after"]
    relearn = result["attacks"]["relearn"]
    assert relearn["items"] == 10 and relearn["relearning"]["trained_on"] == 10  # halves of 20
    assert result["relearn"]["learning_rate"] == pytest.approx(1e-3)  # the test target's 1e-2 x 0.1
    # 8-bit rounding barely moves a model; the relearning attack moves every one of them
    for role in ("target", "unlearned"):
        q8 = result["attacks"]["quant8"]["models"][role]
        assert abs(q8["after"]["prob"] - q8["before"]["prob"]) < 0.02
        moved = result["attacks"]["relearn"]["models"][role]
        assert moved["after"]["prob"] != moved["before"]["prob"]
    # the unlearned model relearns the held-out half from the other half
    unlearned = relearn["models"]["unlearned"]
    assert unlearned["after"]["prob"] > unlearned["before"]["prob"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["audit"]["attacks"].keys() == result["attacks"].keys()
    report = (out / "report.md").read_text()
    assert "## Robustness audit" in report and "| quant4 |" in report and "audit.png" in report
    assert (out / "audit.png").is_file() and (out / "audit" / "audit.json").is_file()


def test_relearning_leaves_the_saved_models_untouched(audited_run, tiny_models):
    from obliviate import api

    out, _ = audited_run
    before = {"model": _digest(out / "model"), "target": _digest(tiny_models.target)}
    lines: list[str] = []
    api.audit(out, attacks=["relearn", "quant4"], overrides=["audit.relearn_steps=3"], show_progress=False,
              log=lines.append)
    assert not any("relearn" in line for line in lines if "reusing" in line)  # relearned again, 3 steps
    assert _digest(out / "model") == before["model"]
    assert _digest(tiny_models.target) == before["target"]


def test_audit_reuses_finished_measurements_and_redoes_changed_ones(audited_run):
    from obliviate import api

    out, first = audited_run
    lines: list[str] = []
    again = api.audit(out, attacks="quant8,prefix", overrides=["audit.relearn_steps=4", "audit.prefix_fraction=0.3"],
                      show_progress=False, log=lines.append)
    reused = [line for line in lines if "reusing" in line]
    assert any("quant8" in line for line in reused) and any("standard" in line for line in reused)
    assert not any("prefix" in line for line in reused)  # its setting changed
    assert list(again["attacks"]) == ["quant8", "prefix"]
    assert again["attacks"]["quant8"] == first["attacks"]["quant8"]


def test_audit_refuses_bad_input_in_one_line(tmp_path, audited_run, capsys):
    from obliviate.cli import main

    out = audited_run[0]
    cases = [([str(tmp_path)], "not a finished run folder"),
             ([str(out), "--attacks", "quant3"], "unknown attack 'quant3'"),
             ([str(out), "--set", "audit.relearn_steps=0"], "relearn_steps must be an integer >= 1"),
             ([str(out), "--set", "audit.prefix_fraction=1"], "prefix_fraction"),
             ([str(out), "--set", "training.learning_rate=1"], "would change the run")]
    for argv, message in cases:
        assert main(["audit", *argv, "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("obliviate: error:") and message in err[0], err


def test_a_lora_adapter_is_merged_before_it_is_attacked(tmp_path, tiny_models):
    from peft import LoraConfig, get_peft_model

    from obliviate.audit.runner import load_plain
    from obliviate.models.loading import load_model

    torch.manual_seed(0)
    peft_model = get_peft_model(load_model(tiny_models.target), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                          init_lora_weights=False))
    peft_model.peft_config["default"].base_model_name_or_path = str(tiny_models.target)
    peft_model.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    expected = peft_model(input_ids=ids).logits
    plain = load_plain(str(tmp_path / "adapter"), dtype="float32", trust_remote_code=False)
    assert not any("lora_" in name for name, _ in plain.named_parameters())
    assert torch.allclose(plain(input_ids=ids).logits, expected, atol=1e-5)


def test_another_run_against_the_same_models_reuses_their_measurements(audited_run, tmp_path):
    import shutil

    from obliviate import api

    out, first = audited_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("audit"))
    lines: list[str] = []
    again = api.audit(copy, attacks="quant8", overrides=["audit.relearn_steps=4"], show_progress=False,
                      log=lines.append)
    reused = [line for line in lines if "reusing" in line]
    assert any("target / quant8" in line for line in reused) and any("retain / standard" in line for line in reused)
    assert not any(line.lstrip().startswith("unlearned") for line in reused)  # a new folder: measured again
    assert again["attacks"]["quant8"]["models"]["target"] == first["attacks"]["quant8"]["models"]["target"]
