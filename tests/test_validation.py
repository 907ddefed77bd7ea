"""One validation layer over the typed configs: every recipe value is range-checked when the recipe
is resolved, with one line naming the key and what it accepts."""

from __future__ import annotations

import dataclasses
import math

import pytest

from obliviate import api
from obliviate.errors import ConfigError
from obliviate.recipe import _SECTIONS, _Scalars, resolve_recipe
from obliviate.registry import make_config
from obliviate.validation import check_option, constraint_of, option, validate

# (method preset or None for the default recipe, override, key named, what the message says is valid)
BAD = [
    # training
    (None, "training.batch_size=0", "batch_size", ">= 1"),
    (None, "training.gradient_accumulation_steps=0", "gradient_accumulation_steps", ">= 1"),
    (None, "training.learning_rate=0", "learning_rate", "> 0"),
    (None, "training.learning_rate=-1e-4", "learning_rate", "> 0"),
    (None, "training.learning_rate=.nan", "learning_rate", "> 0"),
    (None, "training.weight_decay=-0.01", "weight_decay", ">= 0"),
    (None, "training.weight_decay=.inf", "weight_decay", ">= 0"),
    (None, "training.scheduler=bogus", "scheduler", "one of linear, cosine"),
    (None, "training.scheduler=reduce_lr_on_plateau", "scheduler", "one of linear"),
    (None, "training.warmup_ratio=-0.1", "warmup_ratio", ">= 0"),
    (None, "training.max_length=1", "max_length", ">= 2"),
    (None, "training.logging_steps=0", "logging_steps", ">= 1"),
    (None, "training.report_to=no-such-tracker", "report_to", "one of none, all"),
    (None, "training.batch_size=null", "batch_size", "an integer >= 1"),
    (None, "training.batch_size=true", "batch_size", "an integer >= 1"),
    # eval
    (None, "eval.batch_size=0", "batch_size", ">= 1"),
    (None, "eval.max_new_tokens=0", "max_new_tokens", ">= 1 or null"),
    (None, "eval.max_new_tokens=-5", "max_new_tokens", ">= 1 or null"),
    (None, "eval.max_length=1", "max_length", ">= 2"),
    (None, "eval.mia_k=0", "mia_k", "in (0, 1]"),
    (None, "eval.mia_k=1.5", "mia_k", "in (0, 1]"),
    (None, "eval.el_n=0", "el_n", ">= 1"),
    # scalars, benchmark, model
    (None, "seed=-1", "seed", "in [0, 4294967296)"),
    (None, "threads=0", "threads", ">= 1 or null"),
    (None, "threads=-1", "threads", ">= 1 or null"),
    (None, "benchmark.name=nope", "name", "one of authors, tofu"),
    (None, "benchmark.size=huge", "size", "one of default, small, test"),
    (None, "benchmark.task=essays", "task", "one of qa, passages"),
    (None, "model.dtype=int8", "dtype", "one of float32"),
    (None, "model.template=nope", "template", "one of auto, plain"),
    # objectives (every objective shares the weights and choices of ObjectiveConfig)
    (None, "objective.beta=0", "beta", "> 0"),
    (None, "objective.beta=-1", "beta", "> 0"),
    (None, "objective.retain_weight=-1", "retain_weight", ">= 0"),
    (None, "objective.forget_weight=-0.5", "forget_weight", ">= 0"),
    (None, "objective.forget_weight=.inf", "forget_weight", ">= 0"),
    (None, "objective.retain_loss=mse", "retain_loss", "one of nll, kl, none"),
    (None, "objective.forget_tokens=all", "forget_tokens", "one of answer, fact"),
    ("ga", "objective.retain_loss=mse", "retain_loss", "one of nll, kl, none"),
    ("graddiff", "objective.retain_weight=-1", "retain_weight", ">= 0"),
    ("kl", "objective.forget_weight=-1", "forget_weight", ">= 0"),
    ("simnpo", "objective.delta=-1", "delta", ">= 0"),
    ("simnpo", "objective.beta=0", "beta", "> 0"),
    ("idkdpo", "objective.beta=-0.1", "beta", "> 0"),
    ("icu", "objective.neighbour_weight=-1", "neighbour_weight", ">= 0"),
    ("icu", "objective.kl_weight=-1", "kl_weight", ">= 0"),
    ("icu", "objective.embedder=bert", "embedder", "one of auto, minilm, tfidf"),
    ("uld", "objective.uniform_positions=some", "uniform_positions", "one of attended, answer, all"),
    ("uld", "objective.retain_weight=-6.5", "retain_weight", ">= 0"),
    ("eul", "objective.kl_weight=-1", "kl_weight", ">= 0"),
    ("eul", "objective.lm_weight=-1", "lm_weight", ">= 0"),
    ("eul", "objective.bound=-1", "bound", ">= 0"),
    ("eul", "objective.retain_loss=kl", "retain_loss", "set retain_weight=0"),
    # scopes
    (None, "scope=lora,scope.r=0", "r", ">= 1"),
    (None, "scope=lora,scope.alpha=0", "alpha", "> 0"),
    (None, "scope=lora,scope.dropout=1", "dropout", "in [0, 1)"),
    (None, "scope=lora,scope.dropout=-0.1", "dropout", "in [0, 1)"),
    ("wagle", "scope.ratio=0", "ratio", "in (0, 1]"),
    ("wagle", "scope.ratio=1.5", "ratio", "the fraction of weights updated"),
    ("wagle", "scope.mu=0", "mu", "> 0"),
    ("wagle", "scope.score=wanda", "score", "one of wagle, magnitude"),
    ("wagle", "scope.batch_size=0", "batch_size", ">= 1"),
    ("wagle", "scope.sample_size=0", "sample_size", ">= 1"),
    ("uld", "scope.layers=0", "layers", ">= 1 or null"),
    ("uld", "scope.r=0", "r", ">= 1"),
    ("uld", "scope.alpha=0", "alpha", "> 0"),
    ("uld", "scope.dropout=1", "dropout", "in [0, 1)"),
    ("eul", "scope.size=0", "size", "in (0, 1)"),
    ("eul", "scope.size=1", "size", "in (0, 1)"),
    ("eul", "scope.bottleneck=-1", "bottleneck", ">= 0"),
    ("eul", "scope.gram_batch_size=0", "gram_batch_size", ">= 1"),
    ("eul", "scope.init_seed=-1", "init_seed", ">= 0"),
    ("offset", "scope.layers=0", "layers", ">= 1 or null"),
    ("offset", "scope.weight=0", "weight", "> 0"),
    # schedules
    (None, "schedule.epochs=-1", "epochs", ">= 0"),
    (None, "schedule.max_steps=-2", "max_steps", ">= -1"),
    ("eul", "schedule.cycles=0", "cycles", ">= 1"),
    ("eul", "schedule.first=middle", "first", "one of retain, forget"),
    ("eul", "schedule.retain_per_cycle=-1", "retain_per_cycle", ">= 0"),
    ("icu", "schedule.max_epochs=0", "max_epochs", ">= 1"),
    ("icu", "schedule.bleu_threshold=1.5", "bleu_threshold", "in [0, 1]"),
    ("icu", "schedule.similarity_threshold=2", "similarity_threshold", "in [-1, 1]"),
    ("icu", "schedule.ma_threshold=-0.1", "ma_threshold", "in [0, 1]"),
    ("icu", "schedule.el_threshold=2", "el_threshold", "in [0, 1]"),
    ("icu", "schedule.el_n=0", "el_n", ">= 1"),
    ("icu", "schedule.num_beams=0", "num_beams", ">= 1"),
    ("icu", "schedule.batch_size=0", "batch_size", ">= 1"),
    ("icu", "schedule.embedder=bert", "embedder", "one of auto, minilm, tfidf"),
    # compositions
    ("uld", "composition.alpha=-1", "alpha", ">= 0"),
    ("uld", "composition.rho=0", "rho", "in (0, 1] or null"),
    ("uld", "composition.rho=1.5", "rho", "in (0, 1] or null"),
]


@pytest.mark.parametrize("method, override, key, valid", BAD, ids=[f"{m or 'npo'}:{o}" for m, o, _, _ in BAD])
def test_bad_values_are_one_line_errors_naming_key_and_range(method, override, key, valid):
    with pytest.raises(ConfigError) as info:
        resolve_recipe({}, method=method, overrides=override.split(","))
    message = str(info.value)
    assert "\n" not in message
    assert f"{key} must be " in message and valid in message and ", got " in message


GOOD = [
    (None, ["objective.retain_weight=0"], lambda r: r.objective["retain_weight"] == 0),
    (None, ["objective.forget_weight=0"], lambda r: r.objective["forget_weight"] == 0),
    (None, ["training.warmup_ratio=0"], lambda r: r.training.warmup_ratio == 0),
    (None, ["training.warmup_ratio=10"], lambda r: r.training.warmup_ratio == 10),  # >= 1: steps
    (None, ["training.scheduler=cosine_with_min_lr"], lambda r: r.training.scheduler == "cosine_with_min_lr"),
    (None, ["training.report_to=all"], lambda r: r.training.report_to == "all"),
    (None, ["training.learning_rate=2e-4"], lambda r: r.training.learning_rate == pytest.approx(2e-4)),
    (None, ["eval.max_new_tokens=null", "eval.mia_k=1"], lambda r: r.eval.max_new_tokens is None),
    (None, ["threads=null", "seed=0"], lambda r: r.threads is None and r.seed == 0),
    (None, ["threads=1"], lambda r: r.threads == 1),
    (None, ["schedule.epochs=0", "schedule.max_steps=5"], lambda r: r.schedule["max_steps"] == 5),
    (None, ["scope=lora", "scope.dropout=0"], lambda r: r.scope["dropout"] == 0),
    ("wagle", ["scope.ratio=1"], lambda r: r.scope["ratio"] == 1),
    ("uld", ["composition.rho=null", "composition.alpha=0"], lambda r: r.composition["rho"] is None),
    ("eul", ["scope.bottleneck=0", "schedule.retain_per_cycle=0", "objective.retain_weight=0"],
     lambda r: r.scope["bottleneck"] == 0),
    ("icu", ["schedule.bleu_threshold=0", "schedule.similarity_threshold=-1"],
     lambda r: r.schedule["bleu_threshold"] == 0),
]


@pytest.mark.parametrize("method, overrides, check", GOOD, ids=[",".join(o) for _, o, _ in GOOD])
def test_edge_values_are_accepted(method, overrides, check):
    assert check(resolve_recipe({}, method=method, overrides=overrides))


def test_supported_but_missing_integration_is_refused():
    from transformers.integrations import get_available_reporting_integrations
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    missing = sorted(set(INTEGRATION_TO_CALLBACK) - set(get_available_reporting_integrations()))
    if not missing:
        pytest.skip("every reporting integration is installed here")
    with pytest.raises(ConfigError, match=f"report_to must be one of none, all.*got '{missing[0]}'"):
        resolve_recipe({}, overrides=[f"training.report_to={missing[0]}"])


def _configs() -> list[type]:
    from obliviate.compose import COMPOSITIONS
    from obliviate.objectives import OBJECTIVES
    from obliviate.schedules import SCHEDULES
    from obliviate.scopes import SCOPES
    from obliviate.train.finetune import FinetuneConfig, UserFinetuneConfig

    axes = [reg.get(n).Config for reg in (OBJECTIVES, SCOPES, SCHEDULES, COMPOSITIONS) for n in reg.names()]
    return [*axes, *_SECTIONS.values(), _Scalars, FinetuneConfig, UserFinetuneConfig]


@pytest.mark.parametrize("config_cls", _configs(), ids=lambda c: c.__name__)
def test_every_config_declares_its_numbers_and_its_defaults_are_valid(config_cls):
    """A new numeric option without a declared range fails here, not in a user's run."""
    undeclared = [f.name for f in dataclasses.fields(config_cls)
                  if str(f.type).split(" ")[0] in ("int", "float") and constraint_of(config_cls, f.name) is None]
    assert not undeclared, f"{config_cls.__name__}: declare a range with obliviate.validation.option"
    validate(config_cls(), where=config_cls.__name__)


# --- the layer itself, on a toy config -------------------------------------------------------


def _lazy_names() -> tuple[str, ...]:
    _lazy_names.calls += 1
    return ("red", "green")


_lazy_names.calls = 0


@dataclasses.dataclass
class Toy:
    count: int = option(1, ge=1)
    fraction: float = option(0.5, gt=0, le=1, hint="a share")
    limit: int | None = option(None, ge=1)
    colour: str = option("red", choices=_lazy_names)
    scale: float = 1.0  # no declared range: still must be finite
    label: str = "x"


@dataclasses.dataclass
class ToyChild(Toy):
    count: int = 5  # only a new default: the base's range still applies


@pytest.mark.parametrize("changes, message", [
    ({"count": 0}, "toy: count must be an integer >= 1, got 0"),
    ({"count": 2.5}, "toy: count must be an integer >= 1, got 2.5"),
    ({"count": True}, "toy: count must be an integer >= 1, got True"),
    ({"fraction": 0.0}, "toy: fraction must be a number in (0, 1], got 0.0 (a share)"),
    ({"fraction": math.nan}, "toy: fraction must be a number in (0, 1], got nan (a share)"),
    ({"limit": 0}, "toy: limit must be an integer >= 1 or null, got 0"),
    ({"colour": "blue"}, "toy: colour must be one of red, green, got 'blue'"),
    ({"scale": math.inf}, "toy: scale must be a finite number, got inf"),
    ({"scale": None}, "toy: scale must be a finite number, got None"),
    ({"label": None}, "toy: label must be a string, got None"),
])
def test_validate_toy_messages(changes, message):
    with pytest.raises(ConfigError) as info:
        validate(dataclasses.replace(Toy(), **changes), "toy")
    assert str(info.value) == message


def test_validate_accepts_valid_values_and_none_where_the_type_admits_it():
    toy = Toy(count=3, fraction=1.0, limit=None, colour="green", scale=-2.0)
    assert validate(toy, "toy") is toy


def test_choices_are_computed_only_when_checked():
    before = _lazy_names.calls
    Toy()
    assert _lazy_names.calls == before
    validate(Toy(), "toy")
    assert _lazy_names.calls == before + 1


def test_a_subclass_keeps_its_base_constraint():
    assert validate(ToyChild(), "child").count == 5
    with pytest.raises(ConfigError, match="count must be an integer >= 1, got 0"):
        validate(ToyChild(count=0), "child")


def test_make_config_coerces_then_validates():
    assert make_config(Toy, {"fraction": "2e-1", "count": 2.0}, where="toy").fraction == pytest.approx(0.2)
    with pytest.raises(ConfigError, match="toy: fraction must be a number in"):
        make_config(Toy, {"fraction": "2"}, where="toy")
    with pytest.raises(ConfigError, match="option 'count' must be int, got inf"):
        make_config(Toy, {"count": math.inf}, where="toy")


def test_check_option_on_a_loose_value():
    assert check_option(0.3, "contamination", where="task", ge=0, le=1) == 0.3
    with pytest.raises(ConfigError, match=r"^task: n must be an integer >= 1, got 0$"):
        check_option(0, "n", where="task", annotation="int", ge=1)


# --- API options that bypass recipes go through the same layer, before anything loads ---------


@pytest.mark.parametrize("call, message", [
    (lambda tmp: api.evaluate(tmp / "absent", batch_size=0), "eval: batch_size must be an integer >= 1"),
    (lambda tmp: api.evaluate(tmp / "absent", max_new_tokens=0), "eval: max_new_tokens must be an integer >= 1"),
    (lambda tmp: api.check_requests(tmp / "absent", batch_size=0), "batch_size must be an integer >= 1"),
    (lambda tmp: api.check_requests(tmp / "absent", max_new_tokens=-1), "max_new_tokens must be an integer >= 1"),
    (lambda tmp: api.evaluate_deficiency_task(tmp / "absent", tmp, max_new_tokens=0),
     "max_new_tokens must be an integer >= 1"),
    (lambda tmp: api.evaluate_deficiency_task(tmp / "absent", tmp, batch_size=0), "batch_size must be an integer >= 1"),
    (lambda tmp: api.deficiency_task(out=tmp / "d", contamination=1.5), "contamination must be a number in [0, 1]"),
    (lambda tmp: api.deficiency_task(out=tmp / "d", n_questions=0), "n_questions must be an integer >= 1"),
    (lambda tmp: api.deficiency_task("rude", out=tmp / "d"), "kind must be one of toxic, untruthful"),
    (lambda tmp: api.finetune(tmp / "absent", [], out=tmp / "o", epochs=0), "epochs must be a number > 0"),
    (lambda tmp: api.finetune(tmp / "absent", [], out=tmp / "o", batch_size=0), "batch_size must be an integer >= 1"),
    (lambda tmp: api.finetune(tmp / "absent", [], out=tmp / "o", max_length=1), "max_length must be an integer >= 2"),
    (lambda tmp: api.finetune(tmp / "absent", [], out=tmp / "o", learning_rate=math.nan),
     "learning_rate must be a number > 0"),
])
def test_api_options_fail_in_one_line_before_loading(tmp_path, call, message):
    with pytest.raises(ConfigError) as info:
        call(tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "d").exists() and not (tmp_path / "o").exists()
