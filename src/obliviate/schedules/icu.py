"""ICU's schedule: re-check every forget target after each epoch and train only on those not yet
forgotten (Iterative Contrastive Unlearning, arXiv 2407.20271, spec §3.3).

Before training and after every epoch, each target's continuation is generated (beam search with 2
beams, as the reference) from its prompt (a QA question, or a passage's prefix) and compared with
the text it must stop producing (the answer, or the suffix). A target counts as **forgotten** when

    similarity < similarity_threshold  OR  BLEU < bleu_threshold

(the reference's OR rule, thresholds 0.3 / 0.01). Forgotten targets leave the next epoch's data;
a target whose generation regresses re-enters. Training stops when memorisation accuracy and
EL_n on the targets are both below their thresholds (MA < 0.5994 and EL_10 < 0.0499, the
reference values), or when nothing is left to unlearn, or at ``max_epochs`` (the reference loops
forever; the run summary says when the cap ended training).

Deviations, documented:
- BERTScore (bert-base-uncased F1) is replaced by the cosine similarity of sentence embeddings
  (all-MiniLM-L6-v2 when the ``embeddings`` extra is installed, else TF-IDF); the summary records
  which. Unsmoothed BLEU < 0.01 dominates the OR rule in the reference as well (any missing 4-gram
  order gives 0), so the similarity rarely decides.
- Generation gets the attention mask (the reference's left-padded ``generate`` has none).
- BLEU tokenises with a regex approximation of NLTK's ``word_tokenize``.
- On short QA answers (a few tokens), EL_n with n = 10 has no valid cut; the EL condition then
  counts as met and MA alone decides. Lower ``el_n`` for QA if EL should take part.
- With ``gradient_accumulation_steps`` > 1 a shrunken epoch's trailing partial accumulation is
  carried into the next epoch's first step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from transformers import TrainerCallback

from obliviate.memorisation import extraction_likelihoods, generate_continuations, memorisation_accuracy
from obliviate.models.embedding import _KINDS as EMBEDDERS
from obliviate.schedules.base import SCHEDULES, ForgetSampler, Schedule, ScheduleContext
from obliviate.validation import option


@dataclass
class ICUScheduleConfig:
    max_epochs: int = option(30, ge=1)
    # BLEU, memorisation accuracy and EL lie in [0, 1]; the similarity is a cosine, in [-1, 1].
    bleu_threshold: float = option(0.01, ge=0, le=1)
    similarity_threshold: float = option(0.3, ge=-1, le=1)
    ma_threshold: float = option(0.5994, ge=0, le=1)
    el_threshold: float = option(0.0499, ge=0, le=1)
    el_n: int = option(10, ge=1)
    num_beams: int = option(2, ge=1)
    embedder: str = option("auto", choices=EMBEDDERS)
    batch_size: int = option(32, ge=1)


@dataclass
class EpochCheck:
    """What one check saw: ``epoch`` 0 is before training."""

    epoch: int
    ma: float
    el: float
    active: int
    forgotten: int
    re_entered: int
    bleu: float
    similarity: float

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in vars(self).items()}


@dataclass
class ICUTracker:
    """The per-target flags and the stopping rule, free of any model (so they can be tested on a
    scripted sequence of generation scores)."""

    config: ICUScheduleConfig
    n_targets: int
    flags: list[bool] = field(default_factory=list)  # True = still to unlearn
    history: list[EpochCheck] = field(default_factory=list)
    stop_reason: str | None = None

    def __post_init__(self) -> None:
        self.flags = [True] * self.n_targets

    def is_forgotten(self, bleu: float, similarity: float) -> bool:
        return similarity < self.config.similarity_threshold or bleu < self.config.bleu_threshold

    def observe(self, epoch: int, bleu: Sequence[float], similarity: Sequence[float], ma: float, el: float) -> str | None:
        """Update the flags from one check; return why training should stop, or None."""
        new = [not self.is_forgotten(b, s) for b, s in zip(bleu, similarity)]
        re_entered = sum(1 for old, now in zip(self.flags, new) if now and not old) if self.history else 0
        self.flags = new
        self.history.append(EpochCheck(epoch, ma, el, sum(new), len(new) - sum(new), re_entered,
                                       float(np.mean(bleu)) if len(bleu) else math.nan,
                                       float(np.mean(similarity)) if len(similarity) else math.nan))
        if not any(new):
            self.stop_reason = "every target is forgotten"
        elif ma < self.config.ma_threshold and (math.isnan(el) or el < self.config.el_threshold):
            self.stop_reason = "memorisation accuracy and extraction likelihood are below their thresholds"
        else:
            self.stop_reason = None
        return self.stop_reason


class ActiveItemsSampler(ForgetSampler):
    """Each epoch, a seeded shuffle of the items whose flag is set (read when the epoch starts)."""

    def __init__(self, tracker: ICUTracker, seed: int = 0):
        super().__init__(len(tracker.flags), seed)
        self.tracker = tracker

    def active(self) -> list[int]:
        return [i for i, flag in enumerate(self.tracker.flags) if flag]


class _ICUCallback(TrainerCallback):
    def __init__(self, schedule: ICUSchedule):
        self.schedule = schedule

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.schedule.check(model, epoch=0)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        epoch = len(self.schedule.tracker.history)
        if self.schedule.check(model, epoch=epoch):
            control.should_training_stop = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.schedule.finish()


@SCHEDULES.register("icu")
class ICUSchedule(Schedule):
    """ICU: re-check each target every epoch, train only on those not forgotten, stop on MA/EL."""

    Config = ICUScheduleConfig
    supports_checkpoints = False  # the per-item forgotten flags live between epochs, not in a checkpoint

    def __init__(self, config: ICUScheduleConfig):
        super().__init__(config)
        self.context: ScheduleContext | None = None
        self.tracker: ICUTracker | None = None
        self.embedder: Any = None
        self._reference_embeddings: np.ndarray | None = None

    def training_overrides(self) -> dict[str, Any]:
        return {"num_train_epochs": self.config.max_epochs, "max_steps": -1}

    def prepare(self, context: ScheduleContext) -> None:
        from obliviate.models.embedding import load_embedder

        self.context = context
        self.tracker = ICUTracker(self.config, len(context.targets))
        references = [t.reference for t in context.targets]
        self.embedder = load_embedder(self.config.embedder, corpus=references)
        self._reference_embeddings = self.embedder.encode(references)
        self.info = {"similarity": self.embedder.name, "max_epochs": self.config.max_epochs}

    def train_sampler(self, n_items: int, seed: int) -> ActiveItemsSampler:
        return ActiveItemsSampler(self.tracker, seed)

    def callbacks(self) -> list[Any]:
        return [_ICUCallback(self)]

    def measure(self, model: Any) -> tuple[list[float], list[float], float, float]:
        """BLEU and similarity of each target's generation, and MA / EL_n over the targets."""
        from obliviate.metrics.similarity import sentence_bleu

        ctx = self.context
        tok = ctx.tokenizer
        pad, eos = tok.pad_token_id, tok.eos_token_id
        budgets = [max(1, len(t.target.input_ids) - t.target.first_cut) for t in ctx.targets]
        ids = generate_continuations(model, [t.prompt_ids for t in ctx.targets], max_new_tokens=budgets,
                                     pad_id=pad, eos_id=eos, num_beams=self.config.num_beams,
                                     batch_size=self.config.batch_size)
        texts = [tok.decode(x, skip_special_tokens=True) for x in ids]
        bleu = [sentence_bleu(t.reference, g) for t, g in zip(ctx.targets, texts)]
        gen_emb = self.embedder.encode(texts)
        sims = (gen_emb * self._reference_embeddings).sum(-1).astype(float).tolist()
        targets = [t.target for t in ctx.targets]
        ma = float(np.mean(memorisation_accuracy(model, targets, pad, self.config.batch_size)))
        els = extraction_likelihoods(model, targets, n=self.config.el_n, pad_id=pad, eos_id=eos)
        valid = [e for e in els if not math.isnan(e)]
        return bleu, sims, ma, (float(np.mean(valid)) if valid else math.nan)

    def check(self, model: Any, epoch: int) -> bool:
        bleu, sims, ma, el = self.measure(model)
        return self.tracker.observe(epoch, bleu, sims, ma, el) is not None

    def finish(self) -> None:
        history = self.tracker.history
        epochs = max(0, len(history) - 1)
        self.info.update({
            "epochs": epochs, "stop_reason": self.tracker.stop_reason or f"epoch cap ({self.config.max_epochs})",
            "cap_hit": self.tracker.stop_reason is None, "checks": [h.as_dict() for h in history]})
