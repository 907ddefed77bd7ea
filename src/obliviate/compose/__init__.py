"""The composition axis: how the final model answers."""

from obliviate.compose.base import COMPOSITIONS, Composition, DirectComposition

__all__ = ["COMPOSITIONS", "Composition", "DirectComposition"]
