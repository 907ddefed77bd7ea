"""Unlearning objectives, registered by name (see :data:`OBJECTIVES`)."""

from obliviate.objectives import ascent, dpo, eul, icu, npo, uld  # noqa: F401  (registration)
from obliviate.objectives.base import OBJECTIVES, GroupStats, Objective, ObjectiveConfig, Reference, forward_groups

__all__ = ["OBJECTIVES", "GroupStats", "Objective", "ObjectiveConfig", "Reference", "forward_groups"]
