"""ULD: the uniform term's closed form, the data augmentation, and the whole method on the
embedded benchmark (assistant scope, logit-difference composition, save and reload)."""

from __future__ import annotations

import math

import pytest
import torch


def test_uniform_kl_closed_form_on_a_toy_vocabulary():
    from obliviate.objectives.uld import uniform_kl

    # p = (1/2, 1/4, 1/4): KL(U ‖ p) = Σ (1/3) log((1/3)/p_v) = −log 3 − (1/3)(log 1/2 + 2 log 1/4)
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]]))
    expected_first = -math.log(3) - (math.log(0.5) + 2 * math.log(0.25)) / 3
    assert float(uniform_kl(logits, torch.tensor([[1, 0]]))) == pytest.approx(expected_first)
    # the uniform position contributes 0, so averaging both halves it
    assert float(uniform_kl(logits, torch.tensor([[1, 1]]))) == pytest.approx(expected_first / 2)


def test_uld_objective_descends_forget_and_pushes_retain_towards_uniform():
    from obliviate.objectives import OBJECTIVES
    from obliviate.objectives.base import Reference

    class Fixed(torch.nn.Module):
        def __init__(self, table):
            super().__init__()
            self.table = torch.nn.Parameter(torch.tensor(table))

        def forward(self, input_ids, attention_mask):
            return type("Out", (), {"logits": self.table.expand(input_ids.shape[0], input_ids.shape[1], -1)})()

    model = Fixed([0.0, math.log(3.0)])  # p = (1/4, 3/4) everywhere
    forget = {"input_ids": torch.tensor([[0, 1]]), "attention_mask": torch.ones(1, 2, dtype=torch.long),
              "labels": torch.tensor([[-100, 1]])}
    retain = {**forget, "attention_mask": torch.tensor([[1, 1]])}
    loss, logs = OBJECTIVES.build({"name": "uld", "retain_weight": 2.0})(model, {"forget": forget, "retain": retain},
                                                                           Reference())
    kl = -math.log(2) - (math.log(0.25) + math.log(0.75)) / 2
    assert logs["forget_nll"] == pytest.approx(-math.log(0.75)) and logs["uniform_kl"] == pytest.approx(kl)
    assert float(loss.detach()) == pytest.approx(-math.log(0.75) + 2.0 * kl)


@pytest.mark.parametrize("positions, norm", [("attended", "attended_norm"), ("all", "positions_norm"),
                                             ("answer", "token_norm")])
def test_uniform_term_of_two_shards_averages_to_the_whole_batchs(positions, norm):
    """What two processes compute from the global counts the trainer hands them (their mean, as
    DDP averages gradients) equals one process's term over the whole batch, though the two
    shards hold different numbers of answer tokens and attended positions."""
    from obliviate.objectives import OBJECTIVES
    from obliviate.objectives.base import GroupStats
    from obliviate.logprobs import token_nll

    torch.manual_seed(0)
    logits = torch.randn(4, 5, 7)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    labels = torch.tensor([[-100, 1, 2, 3, 4], [-100, 5, -100, -100, -100], [-100, -100, 6, -100, -100],
                           [-100, -100, -100, -100, -100]])
    uld = OBJECTIVES.build({"name": "uld", "retain_weight": 1.0, "uniform_positions": positions})

    def term(rows, counts=None):
        group = {"attention_mask": mask[rows], "labels": labels[rows], **(counts or {})}
        nll, answer = token_nll(logits[rows], labels[rows])
        stats = GroupStats(logits[rows], labels[rows], nll, answer, (counts or {}).get("token_norm"))
        return float(uld.extra_terms({"retain": stats}, {"retain": group}, None)[0])

    whole = term([0, 1, 2, 3])
    per_process = {"attended_norm": mask.sum() / 2, "positions_norm": torch.tensor(mask.numel() / 2),
                   "token_norm": (labels[:, 1:] != -100).sum() / 2}
    shards = [term(rows, {norm: per_process[norm]}) for rows in ([0, 1], [2, 3])]
    assert sum(shards) / 2 == pytest.approx(whole, rel=1e-6)
    if positions != "all":  # (both shards here hold 10 positions, padding included)
        assert sum(term(rows) for rows in ([0, 1], [2, 3])) / 2 != pytest.approx(whole, rel=1e-3)  # local counts


def test_augmentation_adds_paraphrases_to_forget_and_wrong_answers_to_retain():
    from obliviate.data.augment import augment_forget, augment_retain

    forget = [{"question": "q", "answer": "a", "paraphrased_question": "pq", "paraphrased_answer": "pa",
               "perturbed_answer": ["w1", "w2", "w3"]}]
    assert [(r["question"], r["answer"]) for r in augment_forget(forget)] == [("q", "a"), ("q", "pa"), ("pq", "a")]
    retain = augment_retain(forget, [{"question": "r", "answer": "ra"}])
    assert [(r["question"], r["answer"]) for r in retain] == [("r", "ra"), ("q", "w1"), ("q", "w2")]


def test_uld_run_composes_and_reports_like_any_model(tmp_path, tiny_models):
    from obliviate import run
    from obliviate.models.composed_io import COMPOSITION_FILE
    from tests.conftest import TEST_OVERRIDES

    # At test size the assistant is one layer of a 2-layer, 64-wide model and learns the forget
    # answers only to p ≈ 0.5, so the paper's α = 0.75 under-subtracts; α = 1 shows the mechanism.
    overrides = [o for o in TEST_OVERRIDES if not o.startswith("training.learning_rate")]
    result = run(method="uld", overrides=[*overrides, "training.learning_rate=2e-3", "scope.r=8",
                                          "composition.alpha=1.0"],
                 out=tmp_path / "uld", show_progress=False, log=lambda *_: None)
    target, unlearned = result.rows["target"], result.rows["unlearned"]
    assert unlearned["forget_Q_A_Prob"] < 0.75 * target["forget_Q_A_Prob"]
    # this run with seeds=[0, 1, 2] gives utility 0.89 / 0.97 / 0.89 of the target's (Intel Xeon, 1 thread)
    assert unlearned["model_utility"] >= 0.85 * target["model_utility"]
    assert unlearned["retain_Q_A_Prob"] >= 0.95 * target["retain_Q_A_Prob"]
    folder = tmp_path / "uld" / "model"
    assert (folder / COMPOSITION_FILE).is_file() and (folder / "assistant" / "adapter_model.safetensors").is_file()
    assert not (folder / "model.safetensors").exists()  # the base is never copied
    info = result.summary["unlearning"]["scope"]
    assert info["layers"] == 1 and info["of_layers"] == 2 and "| unlearned" in (tmp_path / "uld" / "report.md").read_text()


@pytest.mark.parametrize("method", ["uld", "offset"])
def test_composed_model_save_load_round_trip_gives_identical_logits(method, tmp_path, tiny_models, tiny_data):
    import shutil

    from obliviate import unlearn
    from obliviate.errors import ConfigError
    from obliviate.models.loading import load_model

    base = tmp_path / "base"
    shutil.copytree(tiny_models.target, base)
    out = tmp_path / method
    result = unlearn(str(base), tiny_data.forget, tiny_data.retain, method=method,
                     overrides=["schedule.max_steps=3", "training.learning_rate=1e-3"], out=out, show_progress=False)
    ids = torch.tensor([[5, 17, 42, 8, 99, 3]])
    with torch.no_grad():
        expected = result.model.eval()(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        reloaded = load_model(out)(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert torch.equal(expected, reloaded)
    # a changed base is refused in one line; a missing one too
    from safetensors.torch import load_file, save_file

    weights = load_file(str(base / "model.safetensors"))
    name = next(k for k in weights if "layers.0." in k)
    weights[name] = weights[name] + 1.0
    save_file(weights, str(base / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ConfigError, match="changed"):
        load_model(out)
    shutil.rmtree(base)
    with pytest.raises(ConfigError, match="missing"):
        load_model(out)


def test_offset_run_unlearns_through_the_combined_logits_and_eval_reads_the_folder(tmp_path, tiny_models, capsys):
    from obliviate import run
    from obliviate.cli import main
    from tests.conftest import TEST_OVERRIDES

    result = run(method="offset", overrides=[*TEST_OVERRIDES, "scope.weight=1.0"], out=tmp_path / "offset",
                 show_progress=False, log=lambda *_: None)
    target, unlearned = result.rows["target"], result.rows["unlearned"]
    assert unlearned["forget_Q_A_Prob"] < 0.75 * target["forget_Q_A_Prob"]
    info = result.summary["unlearning"]["scope"]
    assert info["assistant"]["layers"] == 1 and result.summary["trainable_parameters"] == info["assistant_parameters"]
    # `obliviate eval` loads the saved composed model from its folder like any model
    assert main(["eval", "--model", str(tmp_path / "offset" / "model"), "--size", "test", "--quiet"]) == 0
    assert "forget prob" in capsys.readouterr().out
