"""The scope axis: which parameters unlearning may change."""

from obliviate.scopes.base import SCOPES, FullScope, LoraScope, Scope

__all__ = ["SCOPES", "FullScope", "LoraScope", "Scope"]
