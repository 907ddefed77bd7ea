"""Gradient ascent and its retain-regularised forms (GA, GradDiff, KL).

GA: maximise the forget NLL. GradDiff adds the retain NLL (TOFU, arXiv 2401.06121). KL keeps the
retain predictive distribution close to the original model instead (TOFU's "KL" baseline).
Defaults: γ = α = 1 (open-unlearning configs).
"""

from __future__ import annotations

from dataclasses import dataclass

from obliviate.objectives.base import OBJECTIVES, Objective, ObjectiveConfig


@dataclass
class GAConfig(ObjectiveConfig):
    retain_loss: str = "none"


@dataclass
class GradDiffConfig(ObjectiveConfig):
    retain_loss: str = "nll"


@dataclass
class KLConfig(ObjectiveConfig):
    retain_loss: str = "kl"


class _Ascent(Objective):
    def forget_term(self, stats, batch):
        return -stats["forget"].mean_nll()


@OBJECTIVES.register("ga")
class GradientAscent(_Ascent):
    """Gradient ascent on the forget answers (no retain term)."""

    Config = GAConfig


@OBJECTIVES.register("graddiff")
class GradDiff(_Ascent):
    """Gradient ascent on forget plus NLL descent on retain (gradient difference)."""

    Config = GradDiffConfig


@OBJECTIVES.register("kl")
class KLMinimisation(_Ascent):
    """Gradient ascent on forget plus KL to the original model on retain."""

    Config = KLConfig
