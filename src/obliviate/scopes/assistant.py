"""ULD's assistant scope: train a small model made from the target's first K layers, with LoRA,
while the target itself stays frozen and untouched (arXiv 2406.08607, spec §2.3).

The assistant is built through the architecture's own config (``num_hidden_layers = K``) and loads
the target's embeddings, first K decoder layers, final norm and output head, so it works for any
decoder-only model transformers has (``obliviate.models.truncate``). LoRA goes on every linear
layer but the output head. Defaults: K = a quarter of the layers (the paper: 8 of 32), LoRA
r 32, alpha 32, dropout 0.05 (paper; the reference code's config uses r 16: the ``uld-code``
preset). Compose the result with ``composition: logit_diff``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obliviate.scopes.base import SCOPES, Scope, ScopeData
from obliviate.validation import option


@dataclass
class AssistantConfig:
    layers: int | None = option(None, ge=1, hint="null: a quarter of the target's layers")
    r: int = option(32, ge=1)
    alpha: int = option(32, gt=0)
    dropout: float = option(0.05, ge=0, lt=1)


@SCOPES.register("assistant")
class AssistantScope(Scope):
    """A LoRA assistant made from the target's first K layers (ULD); the target stays frozen."""

    Config = AssistantConfig
    separate_model = True

    def prepare(self, model: Any, data: ScopeData | None = None) -> Any:
        from obliviate.models.truncate import assistant_with_lora, default_assistant_layers, layer_count, provenance

        for p in model.parameters():
            p.requires_grad_(False)
        n = layer_count(model.config)
        k = self.config.layers or default_assistant_layers(n)
        assistant = assistant_with_lora(model, k, r=self.config.r, alpha=self.config.alpha,
                                        dropout=self.config.dropout)
        self.info = {"layers": k, "of_layers": n, "assistant": provenance(model, k),
                     "assistant_parameters": sum(p.numel() for p in assistant.parameters()),
                     "target_modules": sorted({name.rsplit(".", 1)[-1]
                                                 for name in assistant.peft_config["default"].target_modules})}
        return assistant

    def save(self, model: Any, folder: Path, *, base_path: str | None = None) -> None:
        from obliviate.models.composed_io import ASSISTANT_DIR

        model.save_pretrained(Path(folder) / ASSISTANT_DIR, safe_serialization=True)
