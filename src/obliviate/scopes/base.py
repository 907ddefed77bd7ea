"""Scopes decide which parameters move. ``full`` trains all of them; ``lora`` trains a peft LoRA
(on the architecture's default modules unless the recipe names them: ``obliviate.models.lora_targets``);
``wagle`` (``scopes/wagle.py``) updates only the weights its attribution ranks highest.

A scope wraps the model before training (:meth:`Scope.prepare`, which may read the encoded
forget/retain data, e.g. to attribute weights), may add Trainer callbacks (:meth:`Scope.callbacks`,
e.g. gradient masks), can give the unchanged base's logits for reference terms
(:meth:`Scope.reference_logits`), and saves what it trained (:meth:`Scope.save`): the whole model,
or only the adapter. ``info`` holds what the run summary should record about it.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

import torch

from obliviate.registry import Registry
from obliviate.validation import option


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
    #: whether Trainer checkpoints can hold this scope's trained state (``training.save_every``)
    supports_checkpoints: ClassVar[bool] = True
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


@contextlib.contextmanager
def eval_mode(module: Any) -> Iterator[None]:
    """Reference passes run without dropout even while the trained model is in training mode
    (a reference with dropout on differs between two calls on the same input)."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


@SCOPES.register("full")
class FullScope(Scope):
    """All parameters are trainable."""

    def prepare(self, model: Any, data: ScopeData | None = None) -> Any:
        for p in model.parameters():
            p.requires_grad_(True)
        return model


@dataclass
class LoraConfig:
    r: int = option(8, ge=1)
    alpha: int = option(16, gt=0)
    dropout: float = option(0.0, ge=0, lt=1)
    #: module names; empty = the architecture's default (peft's per-model default, else all-linear)
    target_modules: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):
            self.target_modules = [self.target_modules]
        if self.target_modules is None:
            self.target_modules = []


@SCOPES.register("lora")
class LoraScope(Scope):
    """A peft LoRA adapter is trained; the base stays frozen and serves as the reference."""

    Config = LoraConfig

    def prepare(self, model: Any, data: ScopeData | None = None) -> Any:
        from obliviate.models.lora_targets import apply_lora, resolve_lora_targets

        # checked before anything trains: a name that matches no module is a one-line error
        targets = resolve_lora_targets(model, list(self.config.target_modules or []))
        wrapped = apply_lora(model, targets, r=self.config.r, alpha=self.config.alpha, dropout=self.config.dropout)
        self.info = {**targets.info(), "r": self.config.r, "alpha": self.config.alpha}
        return wrapped

    def reference_logits(self, model: Any) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        # The frozen base is already in memory: disabling the adapter gives it back for free.
        @torch.no_grad()
        def logits(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            with model.disable_adapter(), eval_mode(model):
                return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return logits
