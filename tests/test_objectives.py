"""Objective formulas pinned with numbers worked out by hand (derivations in comments)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from obliviate.errors import ConfigError
from obliviate.objectives import OBJECTIVES, GroupStats
from obliviate.objectives.base import kl_to_reference


def stats(token_nll: list[list[float]], mask: list[list[bool]] | None = None) -> GroupStats:
    nll = torch.tensor(token_nll)
    m = torch.tensor(mask) if mask is not None else torch.ones_like(nll, dtype=torch.bool)
    return GroupStats(logits=torch.zeros(1), labels=torch.zeros(1), token_nll=nll * m, mask=m)


def test_npo_forget_term():
    # sum log p = -(1 + 1) = -2, reference -1.5 -> log ratio -0.5; beta 0.5:
    # -(2/0.5) * log sigmoid(0.25) = 4 * log(1 + e^-0.25) = 4 * 0.5759394 = 2.303758
    npo = OBJECTIVES.build({"name": "npo", "beta": 0.5})
    loss = npo.forget_term({"forget": stats([[1.0, 1.0]])}, {"ref_logps": {"forget": torch.tensor([-1.5])}})
    assert loss.item() == pytest.approx(2.303758, abs=1e-5)


def test_npo_defaults_follow_the_paper():
    npo = OBJECTIVES.build({"name": "npo"})
    assert (npo.config.beta, npo.config.forget_weight, npo.config.retain_weight) == (0.1, 1.0, 1.0)
    assert npo.config.retain_loss == "nll"


def test_simnpo_forget_term():
    # mean NLL (1 + 3) / 2 = 2; beta 2, delta 0.5: -(2/2) log sigmoid(2 * 1.5) = log(1 + e^-3) = 0.0485874
    simnpo = OBJECTIVES.build({"name": "simnpo", "beta": 2.0, "delta": 0.5})
    assert simnpo.forget_term({"forget": stats([[1.0, 3.0]])}, {}).item() == pytest.approx(0.0485874, abs=1e-6)
    defaults = OBJECTIVES.build({"name": "simnpo"}).config
    assert (defaults.beta, defaults.delta, defaults.forget_weight) == (4.5, 0.0, 0.125)


def test_idkdpo_forget_term():
    # win: -1 - (-2) = 1; lose: -3 - (-1) = -2; margin 3; beta 0.1:
    # -(2/0.1) log sigmoid(0.3) = 20 * log(1 + e^-0.3) = 20 * 0.5543552 = 11.087104
    dpo = OBJECTIVES.build({"name": "idkdpo"})
    loss = dpo.forget_term({"forget_idk": stats([[1.0]]), "forget": stats([[3.0]])},
                           {"ref_logps": {"forget_idk": torch.tensor([-2.0]), "forget": torch.tensor([-1.0])}})
    assert loss.item() == pytest.approx(11.087104, abs=1e-4)


def test_gradient_ascent_is_negative_token_mean_nll():
    # masked token excluded: (1 + 2 + 3) / 3 = 2 -> -2
    ga = OBJECTIVES.build({"name": "ga"})
    s = stats([[1.0, 2.0], [3.0, 9.0]], [[True, True], [True, False]])
    assert ga.forget_term({"forget": s}, {}).item() == pytest.approx(-2.0)
    assert ga.groups() == ["forget"]
    assert OBJECTIVES.build({"name": "graddiff"}).groups() == ["forget", "retain"]
    assert OBJECTIVES.build({"name": "idkdpo"}).groups() == ["forget", "forget_idk", "retain"]
    assert OBJECTIVES.build({"name": "npo", "retain_weight": 0}).groups() == ["forget"]


def test_kl_to_reference_hand_computed():
    # model uniform over 2 tokens; reference probs (0.75, 0.25):
    # KL = 0.75 ln(1.5) + 0.25 ln(0.5) = 0.304099 - 0.173287 = 0.130812
    model_logits = torch.zeros(1, 2, 2)
    ref_logits = torch.tensor([[[math.log(3.0), 0.0], [0.0, 0.0]]])
    s = GroupStats(model_logits, torch.tensor([[-100, 1]]), torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool))
    assert kl_to_reference(s, ref_logits).item() == pytest.approx(0.130812, abs=1e-5)
    assert kl_to_reference(s, model_logits).item() == pytest.approx(0.0, abs=1e-7)


def test_objective_call_weights_forget_and_retain_terms():
    # A model whose logits ignore the context: uniform over 4 tokens -> NLL ln 4 per token.
    class Uniform(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(4))

        def forward(self, input_ids, attention_mask):
            return type("Out", (), {"logits": self.w.expand(*input_ids.shape, 4)})()

    group = {"input_ids": torch.tensor([[1, 2, 3]]), "attention_mask": torch.ones(1, 3, dtype=torch.long),
             "labels": torch.tensor([[-100, 2, 3]])}
    gd = OBJECTIVES.build({"name": "graddiff", "forget_weight": 2.0, "retain_weight": 0.5})
    loss, logs = gd(Uniform(), {"forget": group, "retain": group}, None)
    # 2 * (-ln 4) + 0.5 * ln 4 = -1.5 ln 4
    assert loss.item() == pytest.approx(-1.5 * math.log(4), abs=1e-6)
    assert logs["retain_loss"] == pytest.approx(math.log(4), abs=1e-6)


def test_bad_objective_options_are_config_errors():
    with pytest.raises(ConfigError, match="beta"):
        OBJECTIVES.build({"name": "npo", "beta": -1})
    with pytest.raises(ConfigError, match="retain_loss"):
        OBJECTIVES.build({"name": "npo", "retain_loss": "mse"})
    with pytest.raises(ConfigError, match="unknown"):
        OBJECTIVES.build({"name": "nope"})


def test_lora_reference_runs_without_dropout_while_training():
    """A reference with dropout on would differ between two calls on the same input (GPT-2 has
    dropout 0.1 by default)."""
    from transformers import AutoModelForCausalLM, GPT2Config

    from obliviate.scopes import SCOPES

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=2,
                                                        n_positions=16))
    for name in ("lora", "eul"):
        scope = SCOPES.build({"name": name})
        wrapped = scope.prepare(copy.deepcopy(model), None)
        wrapped.train()
        reference = scope.reference_logits(wrapped)
        batch = {"input_ids": torch.tensor([[1, 2, 3, 4]]), "attention_mask": torch.ones(1, 4, dtype=torch.long)}
        assert torch.equal(reference(batch), reference(batch))
        assert wrapped.training  # restored
