"""TrainingArguments shared by fine-tuning and unlearning.

Both go through ``transformers.Trainer``, so users get its logging (``report_to``), gradient
accumulation, checkpoints and Accelerate launchers unchanged.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Any, Iterator


@contextlib.contextmanager
def trainer_output_dir(path: str | None = None) -> Iterator[str]:
    """The Trainer's output folder: ``path`` when checkpoints are kept there, else a scratch
    folder removed when training ends (Trainer wants one even when it saves nothing)."""
    if path is not None:
        yield str(path)
        return
    scratch = tempfile.mkdtemp(prefix="obliviate-trainer-")
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def training_arguments(*, output_dir: str, epochs: float, learning_rate: float,
                       batch_size: int, seed: int, scheduler: str = "constant",
                       min_lr_rate: float = 0.1, weight_decay: float = 0.0,
                       adam_beta2: float = 0.999, warmup_ratio: float = 0.0,
                       max_steps: int = -1, gradient_accumulation_steps: int = 1,
                       logging_steps: int = 10, report_to: str | list[str] = "none",
                       show_progress: bool = True, save_steps: int | None = None,
                       extra: dict[str, Any] | None = None) -> Any:
    """Build TrainingArguments with the project's CPU-friendly defaults; checkpoints every
    ``save_steps`` steps into ``output_dir`` when given, else none."""
    import torch
    from transformers import TrainingArguments

    from obliviate.progress import progress_enabled

    kwargs: dict[str, Any] = {}
    if scheduler == "cosine_with_min_lr":
        kwargs["lr_scheduler_kwargs"] = {"min_lr_rate": min_lr_rate}
    warmup_steps = warmup_ratio if warmup_ratio < 1 else int(warmup_ratio)
    # Mixed precision comes from the launcher (`accelerate launch --mixed_precision` or a config
    # file): Trainer must agree with it, or DeepSpeed refuses to start.
    precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    kwargs.update({"bf16": precision == "bf16", "fp16": precision == "fp16"})
    kwargs.update(extra or {})
    return TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=epochs, max_steps=max_steps, learning_rate=learning_rate,
        per_device_train_batch_size=batch_size, gradient_accumulation_steps=gradient_accumulation_steps,
        lr_scheduler_type=scheduler, weight_decay=weight_decay, adam_beta2=adam_beta2,
        warmup_steps=warmup_steps, max_grad_norm=1.0, seed=seed, data_seed=seed,
        logging_steps=logging_steps, report_to=report_to,
        save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500,
        remove_unused_columns=False, use_cpu=not torch.cuda.is_available(),
        disable_tqdm=not (show_progress and progress_enabled()), dataloader_num_workers=0, **kwargs,
    )
