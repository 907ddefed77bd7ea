"""Plain supervised fine-tuning on QA and text records: how the embedded target and retain models
are made."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Sequence

from obliviate.data.encoding import SFTCollator
from obliviate.registry import make_config
from obliviate.train.args import trainer_output_dir, training_arguments
from obliviate.train.data import encode_record, is_text_record
from obliviate.validation import option

#: transformers schedulers that need what our trainer does not give: an evaluation loop
#: (reduce_lr_on_plateau, greedy) or scheduler arguments (warmup_stable_decay, cosine_warmup_with_min_lr).
_UNSUPPORTED_SCHEDULERS = frozenset({"reduce_lr_on_plateau", "greedy", "warmup_stable_decay",
                                     "cosine_warmup_with_min_lr"})
WARMUP_HINT = "< 1: a fraction of the steps; >= 1: a number of steps"


def trainer_schedulers() -> tuple[str, ...]:
    """The learning-rate schedules a recipe may name: transformers' ``SchedulerType`` values that
    train with the arguments :func:`~obliviate.train.args.training_arguments` passes."""
    from transformers.trainer_utils import SchedulerType

    return tuple(s.value for s in SchedulerType if s.value not in _UNSUPPORTED_SCHEDULERS)


def reporting_integrations() -> tuple[str, ...]:
    """What ``report_to`` may name: ``none``, ``all`` or an integration that is installed here
    (transformers would fail on the first logging step otherwise)."""
    from transformers.integrations import get_available_reporting_integrations

    return ("none", "all", *get_available_reporting_integrations())


@dataclass(frozen=True)
class FinetuneConfig:
    """Defaults memorise the embedded benchmark fast on CPU: a high peak learning rate with
    cosine decay to 10 % (a constant rate needed almost twice the time), AdamW β2 0.98, no decay."""

    epochs: int = option(30, ge=1)
    learning_rate: float = option(3e-3, gt=0)
    batch_size: int = option(32, ge=1)
    min_lr_rate: float = option(0.1, ge=0, le=1)
    adam_beta2: float = option(0.98, ge=0, lt=1)
    weight_decay: float = option(0.0, ge=0)
    warmup_ratio: float = option(0.03, ge=0, hint=WARMUP_HINT)
    max_length: int = option(128, ge=2)
    # A class attribute, not a field: as_dict() is part of the embedded models' cache key.
    scheduler: ClassVar[str] = "cosine_with_min_lr"

    def as_dict(self) -> dict:
        return asdict(self)


#: Peak learning rates of :class:`UserFinetuneConfig` when none is given.
FULL_LEARNING_RATE = 1e-5
LORA_LEARNING_RATE = 1e-4


@dataclass(frozen=True)
class UserFinetuneConfig:
    """Fine-tuning a user's own model (``obliviate finetune --model``): paper-like defaults.

    As in TOFU's fine-tuning of its target models: AdamW with a linear schedule, peak rate 1e-5 for
    full weights (1e-4 for a LoRA adapter: :func:`user_finetune_config`), a few epochs, no weight
    decay and no warm-up. :class:`FinetuneConfig`'s high rates suit only the tiny embedded models.
    """

    epochs: float = option(3, gt=0)
    learning_rate: float = option(FULL_LEARNING_RATE, gt=0)
    batch_size: int = option(8, ge=1)
    max_length: int = option(512, ge=2)  # a prompt token and an answer token
    scheduler: str = option("linear", choices=trainer_schedulers)
    weight_decay: float = option(0.0, ge=0)
    warmup_ratio: float = option(0.0, ge=0, hint=WARMUP_HINT)
    adam_beta2: float = option(0.999, ge=0, lt=1)
    min_lr_rate: float = option(0.0, ge=0, le=1)  # used only by the cosine_with_min_lr scheduler

    def as_dict(self) -> dict:
        return asdict(self)


def user_finetune_config(*, lora: bool = False, learning_rate: float | None = None,
                         **kwargs: Any) -> UserFinetuneConfig:
    """:class:`UserFinetuneConfig` with the LoRA or full-weight default rate unless one is given,
    each option checked (:mod:`obliviate.validation`) before any model loads."""
    if learning_rate is None:
        learning_rate = LORA_LEARNING_RATE if lora else FULL_LEARNING_RATE
    return make_config(UserFinetuneConfig, {"learning_rate": learning_rate, **kwargs}, where="fine-tuning")


def encode_records(tokenizer: Any, records: Sequence[dict], max_length: int) -> list[dict]:
    """QA records get the answer-only loss; text records (no ``question``) the full-sequence loss,
    so one fine-tuning set may mix both. The same encoding as unlearning."""
    return [encode_record(tokenizer, r, max_length=max_length) for r in records]


class _KindBatchSampler:
    """Shuffled indices in which each full batch holds one record kind (QA or text).

    Passages are 2-3x longer than QA pairs and a step's cost grows with the padded length, so one
    passage in a QA batch roughly doubles that step's cost. Each epoch: shuffle each kind, cut it
    into full batches, pool the leftovers into mixed batches, shuffle the batch order (the one
    partial batch last). Deterministic for a seed.
    """

    def __init__(self, kinds: Sequence[bool], batch_size: int, seed: int):
        import torch

        self.kinds, self.batch_size = list(kinds), batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.kinds)

    def __iter__(self):
        import torch

        order = torch.randperm(len(self.kinds), generator=self.generator).tolist()
        batches, leftovers, bs = [], [], self.batch_size
        for kind in (False, True):
            group = [i for i in order if self.kinds[i] == kind]
            full = len(group) - len(group) % bs
            batches += [group[j:j + bs] for j in range(0, full, bs)]
            leftovers += group[full:]
        batches += [leftovers[j:j + bs] for j in range(0, len(leftovers), bs)]
        last = batches.pop() if batches and len(batches[-1]) < bs else None
        perm = torch.randperm(len(batches), generator=self.generator).tolist()
        for k in perm:
            yield from batches[k]
        if last:
            yield from last


def finetune(model: Any, tokenizer: Any, records: Sequence[dict],
             config: FinetuneConfig | UserFinetuneConfig, *, seed: int = 0, show_progress: bool = True) -> Any:
    """Fine-tune ``model`` (full weights, or a peft model's adapter) on ``records`` in place and
    return it."""
    with trainer_output_dir() as scratch:
        return _finetune_in(scratch, model, tokenizer, records, config, seed=seed, show_progress=show_progress)


def _finetune_in(output_dir: str, model: Any, tokenizer: Any, records: Sequence[dict],
                 config: FinetuneConfig | UserFinetuneConfig, *, seed: int, show_progress: bool) -> Any:
    from transformers import Trainer

    args = training_arguments(
        output_dir=output_dir, epochs=config.epochs, learning_rate=config.learning_rate,
        batch_size=config.batch_size, seed=seed, scheduler=config.scheduler,
        min_lr_rate=config.min_lr_rate, adam_beta2=config.adam_beta2,
        weight_decay=config.weight_decay, warmup_ratio=config.warmup_ratio,
        logging_steps=10 ** 9, show_progress=show_progress)
    kinds = [is_text_record(r) for r in records]
    trainer_class = Trainer
    if len(set(kinds)) > 1:  # a mixed set: batches of one kind (QA-only training is unchanged)
        class trainer_class(Trainer):  # noqa: N801
            def _get_train_sampler(self, *_args, **_kwargs):
                return _KindBatchSampler(kinds, config.batch_size, seed)

    trainer = trainer_class(model=model, args=args,
                            train_dataset=encode_records(tokenizer, records, config.max_length),
                            data_collator=SFTCollator(tokenizer.pad_token_id))
    from obliviate.train.trainer import use_quiet_progress

    use_quiet_progress(trainer)
    trainer.train()
    return trainer.model
