"""Scopes decide which parameters move. ``full`` trains all of them; ``lora`` trains a peft LoRA;
``wagle`` (``scopes/wagle.py``) updates only the weights its attribution ranks highest.

A scope wraps the model before training (:meth:`Scope.prepare`, which may read the encoded
forget/retain data, e.g. to attribute weights), may add Trainer callbacks (:meth:`Scope.callbacks`,
e.g. gradient masks), can give the unchanged base's logits for reference terms
(:meth:`Scope.reference_logits`), and saves what it trained (:meth:`Scope.save`): the whole model,
or only the adapter. ``info`` holds what the run summary should record about it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch

from obliviate.registry import Registry


@dataclass
class ScopeConfig:
    pass


@dataclass
class ScopeData:
    """The encoded training data a scope may look at before training (``input_ids``/``labels``
    dicts): the forget items with the labels the objective trains on, and the retain items paired
    with them."""

    forget: list[dict]
    retain: list[dict]
    pad_id: int
    seed: int = 0


class Scope:
    name: ClassVar[str]
    Config: ClassVar[type] = ScopeConfig

    #: whether :meth:`prepare` needs the encoded forget/retain data
    needs_data: ClassVar[bool] = False

    def __init__(self, config: Any):
        self.config = config
        self.info: dict[str, Any] = {}

    def prepare(self, model: Any, data: ScopeData | None = None) -> Any:
        """Return the model to train (possibly wrapped), with only the scoped parameters trainable."""
        return model

    def callbacks(self) -> list[Any]:
        """``transformers.TrainerCallback`` instances the trainer must run (after :meth:`prepare`)."""
        return []

    def reference_logits(self, model: Any) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        """A function giving the pre-unlearning model's logits; default: a frozen copy."""
        frozen = copy.deepcopy(model).eval()
        for p in frozen.parameters():
            p.requires_grad_(False)

        @torch.no_grad()
        def logits(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return frozen(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return logits

    def save(self, model: Any, folder: Path, *, base_path: str | None = None) -> None:
        """Save what was trained; ``base_path`` is where the base model came from (for scopes whose
        saved model needs the base to be rebuilt)."""
        model.save_pretrained(folder, safe_serialization=True)

    def trainable_parameters(self, model: Any) -> int:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)


SCOPES: Registry[Scope] = Registry("scope")


@SCOPES.register("full")
class FullScope(Scope):
    """All parameters are trainable."""

    def prepare(self, model: Any, data: ScopeData | None = None) -> Any:
        for p in model.parameters():
            p.requires_grad_(True)
        return model


@dataclass
class LoraConfig:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])


@SCOPES.register("lora")
class LoraScope(Scope):
    """A peft LoRA adapter is trained; the base stays frozen and serves as the reference."""

    Config = LoraConfig

    def prepare(self, model: Any, data: ScopeData | None = None) -> Any:
        from peft import LoraConfig as PeftLoraConfig, get_peft_model

        cfg = PeftLoraConfig(r=self.config.r, lora_alpha=self.config.alpha, lora_dropout=self.config.dropout,
                             target_modules=list(self.config.target_modules), task_type="CAUSAL_LM")
        return get_peft_model(model, cfg)

    def reference_logits(self, model: Any) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        # The frozen base is already in memory: disabling the adapter gives it back for free.
        @torch.no_grad()
        def logits(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            with model.disable_adapter():
                return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return logits
