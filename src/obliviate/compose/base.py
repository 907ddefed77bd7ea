"""Compositions turn what was trained into the model that answers.

Whatever they return must support ``forward(input_ids, attention_mask).logits`` and ``generate``
like a plain causal LM, so the evaluator and every metric work on it unchanged. ``direct`` returns
the trained model itself; logit difference (ULD, offset), module arithmetic (Ext-Sub) and adapter
fusion (EUL) plug in here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from obliviate.registry import Registry


class Composition:
    name: ClassVar[str]
    Config: ClassVar[type]
    #: whether the scope must train a model separate from the base (an assistant)
    needs_separate_model: ClassVar[bool] = False

    def __init__(self, config: Any):
        self.config = config

    def compose(self, trained: Any, base: Any | None = None) -> Any:
        raise NotImplementedError

    def save(self, composed: Any, folder: Path, base_path: str, scope_info: dict[str, Any]) -> None:
        """Write what loading the composed model needs, next to what the scope saved."""


COMPOSITIONS: Registry[Composition] = Registry("composition")


@dataclass
class DirectConfig:
    pass


@COMPOSITIONS.register("direct")
class DirectComposition(Composition):
    """The unlearned model answers directly."""

    Config = DirectConfig

    def compose(self, trained: Any, base: Any | None = None) -> Any:
        return trained
