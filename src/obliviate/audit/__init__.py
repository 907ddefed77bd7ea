"""The robustness audit: does the forgetting survive relearning, quantisation and other prompts?

``obliviate audit RUN_DIR`` (or ``obliviate run --audit``) applies each attack to the target,
retain and unlearned models and reports how much of the forgotten knowledge comes back
(:func:`obliviate.metrics.recovery`), beside the retain model's own rise. See ``docs/audit.md``.
"""

from obliviate.audit.config import ATTACKS, WEIGHT_ATTACKS, AuditConfig
from obliviate.audit.runner import AuditInputs, run_audit

__all__ = ["ATTACKS", "AuditConfig", "AuditInputs", "WEIGHT_ATTACKS", "run_audit"]
