"""One progress-bar helper so every long loop shows rate and ETA the same way, and one switch
(:func:`silence_all`, what ``--quiet`` calls) that turns off every bar a run could show."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Iterable, TypeVar

T = TypeVar("T")


def progress_enabled() -> bool:
    """Bars on unless OBLIVIATE_PROGRESS=0 (tests and logs that do not want them)."""
    return os.environ.get("OBLIVIATE_PROGRESS", "1") != "0"


def progress(items: Iterable[T], *, desc: str, disable: bool = False, total: int | None = None) -> Iterable[T]:
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, disable=disable or not progress_enabled(),
                leave=False, file=sys.stderr, dynamic_ncols=True)


# Read when each library is imported: they cover libraries this process has not imported yet (and
# child processes); those already imported are switched off by their own functions below.
_QUIET_ENV = {
    "OBLIVIATE_PROGRESS": "0",  # ours, and Trainer's tqdm (training_arguments' disable_tqdm)
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # huggingface_hub (downloads), and transformers follows it
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # datasets (downloads, "Generating split", map)
    "TQDM_DISABLE": "1",  # any other tqdm bar that does not choose ``disable`` itself
}


def silence_all() -> None:
    """Turn off every progress bar of this process for good: ours, Trainer's, transformers' ("Loading
    weights", "Writing model shards"), huggingface_hub's and datasets'. ``--quiet`` calls it first.

    Cheap: it imports nothing heavy; a library imported later reads the environment set here.
    """
    os.environ.update(_QUIET_ENV)
    with warnings.catch_warnings():
        # huggingface_hub warns (and keeps its bars) when the user's environment forces them on
        # and it was imported before we could override it; nothing more to do then.
        warnings.simplefilter("ignore")
        if "huggingface_hub" in sys.modules:
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        if "transformers" in sys.modules:
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
        if "datasets" in sys.modules:
            from datasets.utils import disable_progress_bars as disable_datasets_bars

            disable_datasets_bars()


__all__ = ["progress", "progress_enabled", "silence_all"]
