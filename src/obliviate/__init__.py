"""obliviate: unlearning for large language models.

``from obliviate import run, unlearn, finetune, evaluate, Recipe`` — the same operations as the command line.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["Recipe", "evaluate", "finetune", "load_recipe", "run", "unlearn", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: `import obliviate` (and `obliviate --help`) must not pay for torch and transformers.
    if name in ("run", "unlearn", "finetune", "evaluate"):
        from obliviate import api

        return getattr(api, name)
    if name in ("Recipe", "load_recipe"):
        from obliviate import recipe

        return getattr(recipe, name)
    raise AttributeError(f"module 'obliviate' has no attribute {name!r}")
