"""The robustness audit: does the forgetting survive relearning, quantisation and other prompts?

``obliviate audit RUN_DIR`` (or ``obliviate run --audit``) applies each attack to the target,
retain and unlearned models and reports how much of the forgotten knowledge comes back
(:func:`obliviate.metrics.recovery`), beside the retain model's own rise. See ``docs/audit.md``.
The attacks themselves are in :mod:`obliviate.audit.runner` (imported on use: the recipe only
needs the settings, and the runner pulls in training).
"""

from obliviate.audit.config import ATTACKS, WEIGHT_ATTACKS, AuditConfig

__all__ = ["ATTACKS", "AuditConfig", "WEIGHT_ATTACKS"]
