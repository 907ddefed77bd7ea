"""The scope axis: which parameters unlearning may change."""

from obliviate.scopes.base import SCOPES, FullScope, LoraScope, Scope, ScopeData
from obliviate.scopes import assistant, eul, offset, wagle  # noqa: E402,F401  (registration)

__all__ = ["SCOPES", "FullScope", "LoraScope", "Scope", "ScopeData"]
