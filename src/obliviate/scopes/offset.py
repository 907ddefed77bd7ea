"""Offset (δ) unlearning's scope: the target and a reference assistant stay frozen, a trainable
copy of the assistant moves, and the model that trains and answers is

    logits = l_target + w · (l_assistant − l_assistant₀)

("Offset Unlearning for Large Language Models", arXiv 2404.11045, as reimplemented in the ULD
repository, spec §2.7). Any objective trains through these combined logits; at the start both
assistants are equal, so the combined model is exactly the target (NPO's reference log-probs and
KL's reference are the target's). The assistant is a truncated copy of the target's first K
layers by default (the paper uses a separate same-vocabulary chat model, ``scope.assistant``: a
folder or hub id), fully fine-tuned as in the paper. Defaults: w = 1.0 (reference config).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from obliviate.errors import ConfigError
from obliviate.scopes.base import SCOPES, Scope, ScopeData, eval_mode
from obliviate.validation import option


@dataclass
class OffsetConfig:
    assistant: str | None = None
    layers: int | None = option(None, ge=1, hint="null: a quarter of the target's layers")
    # w = 0 would leave the assistant no gradient (the model stays the target); w < 0 flips the offset.
    weight: float = option(1.0, gt=0)


@SCOPES.register("offset")
class OffsetScope(Scope):
    """Train an assistant's offset from its frozen copy; the target stays frozen (δ-unlearning)."""

    Config = OffsetConfig
    # Trainer cannot save the composed module it trains (tied weights shared across members)
    supports_checkpoints = False

    def prepare(self, model: Any, data: ScopeData | None = None) -> Any:
        from obliviate.models.composed import ComposedCausalLM
        from obliviate.models.loading import load_model
        from obliviate.models.truncate import default_assistant_layers, layer_count, provenance, truncated_copy

        for p in model.parameters():
            p.requires_grad_(False)
        if self.config.assistant:
            reference = load_model(self.config.assistant, dtype=str(model.dtype).replace("torch.", ""))
            reference.to(model.device)
            saved = {"path": self.config.assistant}
        else:
            k = self.config.layers or default_assistant_layers(layer_count(model.config))
            reference = truncated_copy(model, k)
            saved = provenance(model, k)
        for p in reference.parameters():
            p.requires_grad_(False)
        trained = copy.deepcopy(reference)
        for p in trained.parameters():
            p.requires_grad_(True)
        w = self.config.weight
        self.info = {"assistant": saved, "weight": w,
                     "assistant_parameters": sum(p.numel() for p in trained.parameters())}
        self._trained = trained
        try:
            return ComposedCausalLM(model, [(trained, w), (reference, -w)], rho=None, normalize=False)
        except ValueError as exc:  # e.g. an assistant with another vocabulary
            raise ConfigError(f"scope offset: {exc}") from None

    def reference_logits(self, model: Any) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        # The frozen target is the reference: no copy needed.
        @torch.no_grad()
        def logits(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            with eval_mode(model.base):
                return model.base(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return logits

    def trainable_parameters(self, model: Any) -> int:
        return sum(p.numel() for p in self._trained.parameters())

    def save(self, model: Any, folder: Path, *, base_path: str | None = None) -> None:
        from obliviate.models.composed_io import ASSISTANT_DIR, write_composition

        self._trained.save_pretrained(Path(folder) / ASSISTANT_DIR, safe_serialization=True)
        write_composition(folder, {"type": "offset", "weight": self.config.weight, "base": base_path,
                                   "assistant": self.info["assistant"]})
