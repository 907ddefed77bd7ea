"""EUL's scope: train only small bottleneck adapters after every feed-forward block (the
"unlearning layers" of Chen & Yang, EMNLP 2023, arXiv 2310.20150), the base frozen.

- Size: ``size`` × the base's parameter count (0.5 %, the paper's, after Chen et al. 2023's PEFT
  design spaces), or an explicit ``bottleneck`` width.
- The base with the adapters switched off is the teacher/reference, so no second copy is held.
- After training, the Gram matrices of each adapter's inputs on the forget set, and separately on
  the retain items paired with it, are stored with the adapter (``eul_grams.safetensors``, the
  retain ones under ``retain.``): closed-form fusion of several requests' adapters
  (``obliviate compose fuse``) needs them and no data. Fusion regresses on the forget sets (the
  paper) or, with ``--grams forget+retain`` (our option), also keeps each adapter's behaviour on
  retained data.
- Every adapter starts from the same ``init_seed`` (not the run's seed), so the hidden units of
  adapters trained for different requests correspond and can be fused.

Saved: ``eul_adapter.json`` (base path, FFN modules, width), ``eul_adapter.safetensors`` and the
Grams. ``load_model`` on that folder rebuilds base + adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from transformers import TrainerCallback

from obliviate.models.bottleneck import (
    AdapterSpec,
    adapter_state,
    adapters_disabled,
    attach_adapters,
    auto_bottleneck,
    base_parameter_count,
    collect_grams,
    find_ffn_modules,
    hidden_size,
    save_adapter_folder,
)
from obliviate.scopes.base import SCOPES, Scope, ScopeData, eval_mode
from obliviate.validation import option


@dataclass
class EULScopeConfig:
    size: float = option(0.005, gt=0, lt=1, hint="a fraction of the base's parameter count")
    bottleneck: int = option(0, ge=0)  # explicit width; 0 = from ``size``
    modules: list[str] = field(default_factory=list)  # FFN module name; empty = found per architecture
    init_seed: int = option(0, ge=0)
    gram_batch_size: int = option(32, ge=1)


class _GramCallback(TrainerCallback):
    def __init__(self, scope: EULScope):
        self.scope = scope

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.scope.grams = self.scope.compute_grams(model)


@SCOPES.register("eul")
class EULScope(Scope):
    """Bottleneck adapters after every FFN block (EUL's unlearning layers); the base is frozen."""

    Config = EULScopeConfig
    needs_data = True

    def __init__(self, config: EULScopeConfig):
        super().__init__(config)
        self.spec: AdapterSpec | None = None
        self.data: ScopeData | None = None
        self.grams: dict[str, torch.Tensor] | None = None

    def prepare(self, model: Any, data: ScopeData | None = None) -> Any:
        for p in model.parameters():
            p.requires_grad_(False)
        modules = find_ffn_modules(model, self.config.modules)
        width = self.config.bottleneck or auto_bottleneck(model, len(modules), self.config.size)
        base_count = base_parameter_count(model)
        attach_adapters(model, modules, width, self.config.init_seed)
        self.data = data
        self.spec = AdapterSpec(modules=modules, hidden_size=hidden_size(model), bottleneck=width,
                                init_seed=self.config.init_seed)
        trained = self.trainable_parameters(model)
        self.info = {"adapters": len(modules), "bottleneck": width, "ffn_module": modules[0].split(".")[-1],
                     "parameters": trained, "fraction_of_base": round(trained / base_count, 5)}
        return model

    def reference_logits(self, model: Any) -> Callable[[dict[str, torch.Tensor]], torch.Tensor]:
        @torch.no_grad()
        def logits(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            with adapters_disabled(model), eval_mode(model):
                return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return logits

    def callbacks(self) -> list[Any]:
        return [_GramCallback(self)]

    def compute_grams(self, model: Any) -> dict[str, torch.Tensor]:
        """Gram matrices of the trained adapters' inputs on the forget items, and (``retain.``
        keys) on the retain items paired with them."""
        from obliviate.data.encoding import pad_batch

        if self.data is None:
            return {}
        size = self.config.gram_batch_size
        grams: dict[str, torch.Tensor] = {}
        for prefix, items in (("", self.data.forget), ("retain.", self.data.retain)):
            if not items:
                continue
            batches = (pad_batch(items[i:i + size], self.data.pad_id) for i in range(0, len(items), size))
            grams.update({prefix + k: v for k, v in collect_grams(model, batches).items()})
        return grams

    def save(self, model: Any, folder: Path, *, base_path: str | None = None) -> None:
        self.spec.base = base_path
        self.spec.info = dict(self.info)
        save_adapter_folder(folder, self.spec, adapter_state(model), self.grams)
