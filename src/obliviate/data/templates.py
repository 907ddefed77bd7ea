"""Prompt templates: how a question and its answer are laid out as the text a model reads.

A model is scored and prompted on the sequence it was trained on, so the template must be the one
of the model's fine-tuning, chosen by name (recipe ``model.template``, ``obliviate eval
--template``):

``auto`` (default)
    ``chat`` when the tokenizer has a chat template, else ``plain``.
``plain``
    ``Question: {question}\\nAnswer: {answer}``; the answer is scored from its first character
    (open-unlearning's Question/Answer tags, as for its Llama-2-7b-hf).
``tofu-phi``
    TOFU's phi-1.5 format: the same text, but the prompt is ``Question: {question}\\n`` and
    ``Answer: `` is scored with the answer, as TOFU's data module masks only the question.
``tofu-llama2``
    TOFU's (and open-unlearning's) Llama-2-chat format: ``[INST] {question} [/INST]{answer}``.
``chat``
    The tokenizer's chat template, no system prompt, with the date fixed to 10 Apr 2025: templates
    such as Llama-3.x's write today's date into the prompt unless given one, which would make
    scores change from day to day.
``open-unlearning``
    The chat template as open-unlearning renders it for its Llama-3 models: system prompt "You are
    a helpful assistant." and ``date_string`` 10 Apr 2025.

The template travels with the tokenizer (:func:`set_template`), so every encoding of a run (training,
scoring, generation, membership inference) uses the same one.
"""

from __future__ import annotations

import datetime as _dt
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from obliviate.errors import ConfigError

PLAIN_TEMPLATE = "Question: {question}\nAnswer: "
#: the date chat templates are rendered with (open-unlearning's ``date_string``)
FIXED_DATE = _dt.date(2025, 4, 10)
OPEN_UNLEARNING_SYSTEM_PROMPT = "You are a helpful assistant."
_ATTRIBUTE = "_obliviate_template"


@dataclass(frozen=True)
class PromptTemplate:
    """``prompt``: a format string with ``{question}``, or None for the tokenizer's chat template.
    ``answer_prefix``: text between prompt and answer that is scored (and generated) with the
    answer. ``system_prompt`` and ``date`` apply to chat templates."""

    name: str
    description: str
    prompt: str | None = None
    answer_prefix: str = ""
    system_prompt: str | None = None
    date: _dt.date | None = None

    @property
    def is_chat(self) -> bool:
        return self.prompt is None

    def chat_kwargs(self) -> dict[str, Any]:
        """Variables the chat template is rendered with: a fixed ``date_string`` (Llama-3.x's)."""
        return {} if self.date is None else {"date_string": self.date.strftime("%d %b %Y")}

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        if self.prompt is not None:
            out["prompt"] = self.prompt
        if self.answer_prefix:
            out["answer_prefix"] = self.answer_prefix
        if self.is_chat:
            out["system_prompt"] = self.system_prompt
            out["date"] = self.date.isoformat() if self.date else None
        return out


TEMPLATES: dict[str, PromptTemplate] = {t.name: t for t in (
    PromptTemplate("plain", "'Question: {question}\\nAnswer: ' + answer, the answer scored from its first "
                   "character", prompt=PLAIN_TEMPLATE),
    PromptTemplate("tofu-phi", "TOFU's phi-1.5 format: prompt 'Question: {question}\\n', 'Answer: ' scored "
                   "with the answer", prompt="Question: {question}\n", answer_prefix="Answer: "),
    PromptTemplate("tofu-llama2", "TOFU's Llama-2-chat format: '[INST] {question} [/INST]' + answer",
                   prompt="[INST] {question} [/INST]"),
    PromptTemplate("chat", "the tokenizer's chat template, no system prompt, date fixed to 10 Apr 2025",
                   date=FIXED_DATE),
    PromptTemplate("open-unlearning", "the tokenizer's chat template with system prompt "
                   f"{OPEN_UNLEARNING_SYSTEM_PROMPT!r} and date 10 Apr 2025 (open-unlearning's Llama-3 setting)",
                   system_prompt=OPEN_UNLEARNING_SYSTEM_PROMPT, date=FIXED_DATE),
)}
TEMPLATE_NAMES = ("auto", *TEMPLATES)


def uses_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def check_template_name(name: Any) -> str:
    if name is None:
        return "auto"
    if not isinstance(name, str) or name not in TEMPLATE_NAMES:
        raise ConfigError(f"prompt template {name!r} is unknown; use one of {', '.join(TEMPLATE_NAMES)}")
    return name


def get_template(template: str | PromptTemplate | None, tokenizer: Any = None) -> PromptTemplate:
    """The template ``template`` names (``auto``/None: chat when ``tokenizer`` has a chat template)."""
    if isinstance(template, PromptTemplate):
        return template
    name = check_template_name(template)
    if name == "auto":
        return TEMPLATES["chat" if uses_chat_template(tokenizer) else "plain"]
    chosen = TEMPLATES[name]
    if chosen.is_chat and tokenizer is not None and not uses_chat_template(tokenizer):
        raise ConfigError(f"prompt template {name!r} renders the tokenizer's chat template, but this tokenizer "
                          "has none; use plain, tofu-phi or tofu-llama2")
    return chosen


def set_template(tokenizer: Any, template: str | PromptTemplate | None) -> PromptTemplate:
    """Resolve ``template`` for ``tokenizer`` and attach it: every later encoding with this
    tokenizer uses it. Returns the template."""
    chosen = get_template(template, tokenizer)
    setattr(tokenizer, _ATTRIBUTE, chosen)
    return chosen


def template_of(tokenizer: Any, template: str | PromptTemplate | None = None) -> PromptTemplate:
    """``template`` when given, else the one attached to ``tokenizer``, else ``auto``'s."""
    if template is not None:
        return get_template(template, tokenizer)
    attached = getattr(tokenizer, _ATTRIBUTE, None) if tokenizer is not None else None
    return attached if isinstance(attached, PromptTemplate) else get_template("auto", tokenizer)


@dataclass(frozen=True)
class RenderedPair:
    """The whole text of a (question, answer) pair: characters before ``prompt_end`` are the prompt
    (a token straddling it belongs to the answer); the answer text itself starts at
    ``answer_start`` (fact spans are relative to it). ``add_special_tokens``: whether the
    tokenizer adds its own (BOS) — not for a chat template, which writes its special tokens."""

    text: str
    prompt_end: int
    answer_start: int
    add_special_tokens: bool


@contextmanager
def _fixed_clock(date: _dt.date | None) -> Iterator[None]:
    """While rendering, transformers' ``strftime_now`` (which templates call for today's date when
    not given ``date_string``) returns ``date``. Template variables cannot carry a function, so
    the clock that function reads is replaced; without that hook only ``date_string`` applies."""
    try:
        from transformers.utils import chat_template_utils as hooks
    except ImportError:  # pragma: no cover - transformers always has it in supported versions
        hooks = None
    original = getattr(hooks, "datetime", None)
    if date is None or not isinstance(original, type) or not issubclass(original, _dt.datetime):
        yield
        return
    fixed = original.combine(date, _dt.time())

    class _FixedClock(original):  # type: ignore[misc, valid-type]
        @classmethod
        def now(cls, tz=None):
            return fixed.replace(tzinfo=tz) if tz is not None else fixed

    hooks.datetime = _FixedClock
    try:
        yield
    finally:
        hooks.datetime = original


def _apply_chat_template(tokenizer: Any, template: PromptTemplate, messages: list[dict[str, str]],
                         add_generation_prompt: bool) -> str:
    with _fixed_clock(template.date):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False,
                                             **template.chat_kwargs())


#: what separates worked examples (``shots``) from each other and from the question in a
#: plain-text template
SHOT_SEPARATOR = "\n\n"

Shots = Sequence[tuple[str, str]]


def _chat_messages(template: PromptTemplate, question: str, shots: Shots = ()) -> list[dict[str, str]]:
    system = [{"role": "system", "content": template.system_prompt}] if template.system_prompt else []
    turns = [m for q, a in shots for m in ({"role": "user", "content": q}, {"role": "assistant", "content": a})]
    return [*system, *turns, {"role": "user", "content": question}]


def render_prompt(tokenizer: Any, question: str, template: str | PromptTemplate | None = None,
                  shots: Shots = ()) -> str:
    """The prompt text of ``question``: what the model reads before its answer. ``shots``
    (question, answer) pairs come first as worked examples: earlier turns of a chat, or earlier
    question/answer blocks of a plain-text template."""
    chosen = template_of(tokenizer, template)
    if not chosen.is_chat:
        examples = "".join(chosen.prompt.format(question=q) + chosen.answer_prefix + a + SHOT_SEPARATOR
                           for q, a in shots)
        return examples + chosen.prompt.format(question=question)
    return _apply_chat_template(tokenizer, chosen, _chat_messages(chosen, question, shots), True)


def render_pair(tokenizer: Any, question: str, answer: str,
                template: str | PromptTemplate | None = None, shots: Shots = ()) -> RenderedPair:
    """Prompt and answer as one text, as the model was trained on it.

    A chat template renders the whole conversation (so the answer ends with the template's
    end-of-turn text, trailing whitespace dropped); when that text does not start with the
    generation prompt or does not contain the answer, the prompt followed by the answer is used.
    """
    chosen = template_of(tokenizer, template)
    prompt = render_prompt(tokenizer, question, chosen, shots)
    if not chosen.is_chat:
        return RenderedPair(prompt + chosen.answer_prefix + answer, len(prompt),
                            len(prompt) + len(chosen.answer_prefix), True)
    full = _apply_chat_template(tokenizer, chosen,
                                [*_chat_messages(chosen, question, shots), {"role": "assistant", "content": answer}],
                                False)
    if isinstance(full, str) and full.startswith(prompt):
        start = full.find(answer, len(prompt)) if answer else len(prompt)
        if start < 0 and answer.strip():
            start = full.find(answer.strip(), len(prompt))
            answer_start = start - (len(answer) - len(answer.lstrip()))  # fact offsets count the stripped spaces
        else:
            answer_start = start
        if start >= 0:
            return RenderedPair(full.rstrip(), len(prompt), answer_start, False)
    return RenderedPair(prompt + answer, len(prompt), len(prompt), False)


__all__ = ["FIXED_DATE", "OPEN_UNLEARNING_SYSTEM_PROMPT", "PLAIN_TEMPLATE", "PromptTemplate", "RenderedPair",
           "TEMPLATES", "TEMPLATE_NAMES", "check_template_name", "get_template", "render_pair", "render_prompt",
           "set_template", "template_of", "uses_chat_template"]
