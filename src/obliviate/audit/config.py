"""The audit's settings: a recipe section (``audit:``), each value range-checked."""

from __future__ import annotations

from dataclasses import dataclass, field

from obliviate.validation import option

#: every attack, in the order they run and are reported
ATTACKS = ("relearn", "relearn-benign", "quant8", "quant4", "paraphrase", "fewshot", "prefix", "cloze")
#: attacks that change the weights (model utility applies to them)
WEIGHT_ATTACKS = ("relearn", "relearn-benign", "quant8", "quant4")


@dataclass
class AuditConfig:
    """``after_run``: ``obliviate run`` ends with the audit (the embedded default recipe turns it
    on; off by default, because relearning a large model is a training run of its own).
    ``attacks``: which to run (``obliviate audit --attacks``).
    ``relearn_*``: the relearning attacks fine-tune a copy of each model for ``relearn_steps``
    optimiser steps of ``relearn_batch_size`` (AdamW, constant rate) on half of the forget set
    (``relearn``) or on retain records (``relearn-benign``) and are judged on the other half;
    ``relearn_learning_rate`` null means the target's own fine-tuning rate (its build record or
    ``finetune.json``; 1e-5 for a model of unknown origin).
    ``quant8_group_size`` / ``quant4_group_size``: input weights per scale, 0 for one scale per
    output channel. ``fewshot_k``: worked retain examples before each forget question.
    ``prefix_fraction``: the share of the answer given in the prompt (``prefix``, ``cloze``)."""

    after_run: bool = False
    attacks: list[str] = field(default_factory=lambda: list(ATTACKS))
    relearn_steps: int = option(20, ge=1)
    relearn_batch_size: int = option(8, ge=1)
    relearn_learning_rate: float | None = option(None, gt=0, hint="null: the target's fine-tuning rate")
    quant8_group_size: int = option(0, ge=0, hint="0: one scale per output channel")
    quant4_group_size: int = option(128, ge=0, hint="0: one scale per output channel")
    fewshot_k: int = option(3, ge=1)
    prefix_fraction: float = option(0.5, gt=0, lt=1)

    def __post_init__(self) -> None:
        if isinstance(self.attacks, str):
            self.attacks = [a.strip() for a in self.attacks.split(",") if a.strip()]
        names = list(self.attacks or [])
        unknown = [a for a in names if a not in ATTACKS]
        if unknown:
            raise ValueError(f"unknown attack {unknown[0]!r}; choose from {', '.join(ATTACKS)}")
        if not names:
            raise ValueError(f"attacks is empty; choose from {', '.join(ATTACKS)}")
        self.attacks = [a for a in ATTACKS if a in names]  # run order; repeats collapse
