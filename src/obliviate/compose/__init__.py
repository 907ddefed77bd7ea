"""The composition axis: how the final model answers."""

from obliviate.compose.base import COMPOSITIONS, Composition, DirectComposition
from obliviate.compose import logit_diff  # noqa: E402,F401  (registration)

__all__ = ["COMPOSITIONS", "Composition", "DirectComposition"]
