"""The Python API, mirrored one to one by the command line: :func:`run`, :func:`unlearn`,
:func:`evaluate`."""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from obliviate.errors import ConfigError, DataError, ObliviateError
from obliviate.recipe import Recipe, load_recipe, resolve_recipe

Log = Callable[[str], None]


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    import obliviate

    return {"obliviate": obliviate.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__,
            "python": platform.python_version()}


def _set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(int(threads))


def _as_recipe(recipe: Recipe | str | os.PathLike | dict | None, **kwargs: Any) -> Recipe:
    if isinstance(recipe, Recipe):
        recipe = recipe.to_dict()
    if isinstance(recipe, dict):
        return resolve_recipe(recipe, **kwargs)
    return load_recipe(recipe, **kwargs)


def _build_axes(recipe: Recipe):
    from obliviate.compose import COMPOSITIONS
    from obliviate.objectives import OBJECTIVES
    from obliviate.schedules import SCHEDULES
    from obliviate.scopes import SCOPES

    return (OBJECTIVES.build(recipe.objective), SCOPES.build(recipe.scope),
            SCHEDULES.build(recipe.schedule), COMPOSITIONS.build(recipe.composition))


def _check_new_folder(out: str | os.PathLike | None, *, needed_bytes: int = 0) -> Path:
    """Refuse an output that cannot be written (exists, empty name, under a file, read-only, disk
    full) before any work starts."""
    from obliviate.io import check_output_path

    return check_output_path(out, needed_bytes=needed_bytes)


def _weights_bytes(model: str | os.PathLike) -> int:
    """The size of a local model's weights (what saving a full copy needs); 0 for a hub id."""
    folder = Path(model).expanduser()
    return sum(f.stat().st_size for f in folder.glob("*.safetensors")) if folder.is_dir() else 0


def _check_checkpointing(recipe: Recipe, n_seeds: int = 1) -> None:
    """``training.save_every`` needs a scope and schedule whose state a checkpoint can hold."""
    if not recipe.training.save_every:
        return
    _, scope, schedule, _ = _build_axes(recipe)
    for axis, component in (("scope", scope), ("schedule", schedule)):
        if not component.supports_checkpoints:
            raise ConfigError(f"training.save_every: {axis} {component.name!r} cannot be checkpointed yet; "
                              "remove training.save_every")
    if n_seeds > 1:
        raise ConfigError("training.save_every checkpoints one training run; use it without --seeds")


INVOCATION = "invocation.json"


def _silent(*_: Any) -> None:
    return None


@contextlib.contextmanager
def _output_folder(out: Path, recipe: Recipe, invocation: dict[str, Any], *, resume: bool,
                   ) -> Iterator[tuple[Path, Path | None]]:
    """Where a command writes: ``(folder for the final outputs, checkpoint folder or None)``.

    Without checkpoints the outputs go to a temporary sibling that replaces ``out`` on success.
    With ``training.save_every``, ``out`` exists from the start holding the recipe, the invocation
    and ``checkpoints/`` (what ``--resume`` needs); the final outputs still appear at once, by
    replacing that folder, which keeps its checkpoints only with ``training.keep_checkpoints``.
    A run that fails before its first checkpoint leaves nothing."""
    import tempfile

    from obliviate.distributed import is_main_process, wait_for_everyone
    from obliviate.io import atomic_directory, write_json_atomic, write_text_atomic
    from obliviate.train.checkpoints import latest_checkpoint

    wait_for_everyone()  # every process has checked its inputs before the main one creates anything
    checkpoints = out / "checkpoints" if recipe.training.save_every else None
    if not is_main_process():  # the main process writes; the others' outputs are scratch
        with tempfile.TemporaryDirectory(prefix="obliviate-rank-") as scratch:
            yield Path(scratch), checkpoints
        return
    if checkpoints is None:
        with atomic_directory(out) as tmp:
            yield tmp, None
        return
    if not resume:
        out.mkdir(parents=True)
        write_text_atomic(out / "recipe.yaml", recipe.to_yaml())
        write_json_atomic(out / INVOCATION, invocation)
    try:
        with atomic_directory(out, overwrite=True) as tmp:
            yield tmp, checkpoints
            if recipe.training.keep_checkpoints and checkpoints.is_dir():
                os.replace(checkpoints, tmp / "checkpoints")
    except BaseException:
        if not resume and latest_checkpoint(checkpoints) is None:
            shutil.rmtree(out, ignore_errors=True)
        raise


def read_invocation(run_dir: str | os.PathLike, command: str) -> dict[str, Any]:
    """What a checkpointed ``command`` was started with, to resume it; one-line errors for a
    folder that is not an interrupted run of that command."""
    from obliviate.train.checkpoints import latest_checkpoint

    folder = Path(run_dir)
    path = folder / INVOCATION
    if not folder.is_dir():
        raise ConfigError(f"--resume {folder}: no such folder")
    if not path.is_file():
        done = (folder / ("summary.json" if command == "run" else "unlearning.json")).is_file()
        raise ConfigError(f"--resume {folder}: " + ("the run is already complete" if done else
                          "not an interrupted checkpointed run (no invocation.json); "
                          "start runs with --set training.save_every=N to make them resumable"))
    try:
        invocation = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ConfigError(f"--resume {folder}: {INVOCATION} is damaged; start the run again") from None
    if invocation.get("command") != command:
        raise ConfigError(f"--resume {folder}: the folder holds an interrupted `obliviate "
                          f"{invocation.get('command')}`; resume it with that command")
    if latest_checkpoint(folder / "checkpoints") is None:
        raise ConfigError(f"--resume {folder}: no complete checkpoint yet; remove the folder and start again")
    return invocation


@dataclass
class UnlearnResult:
    model: Any
    tokenizer: Any
    out: Path | None
    history: list[dict]
    seconds: float
    info: dict[str, Any]


def _check_unlearning_inputs(model_path: str | os.PathLike, tokenizer: Any, forget: Sequence[dict],
                             retain: Sequence[dict], recipe: Recipe, log: Log | None = None,
                             holdout: Sequence[dict] = ()) -> None:
    """Everything about an unlearning run that can be checked without loading the model: the axes
    fit together and to the model's modules, the data the objective needs is there, and every
    record can be trained on."""
    from obliviate.models.lora_targets import check_targets_in_folder
    from obliviate.train.unlearn import check_training_records

    if not forget:
        raise DataError("the forget set is empty; give at least one record to unlearn")
    objective, scope, schedule, composition = _build_axes(recipe)
    schedule.check_inputs(forget, holdout)
    if composition.needs_separate_model and not getattr(scope, "separate_model", False):
        raise ConfigError(f"composition {recipe.composition['name']!r} combines the base with a separately "
                          f"trained model; use scope: assistant (scope {recipe.scope['name']!r} trains the base)")
    if "retain" in objective.groups() and not retain:
        raise DataError(f"objective {recipe.objective['name']!r} has a retain term "
                        f"(retain_loss={objective.config.retain_loss}); give retain records (--retain) "
                        "or set objective.retain_loss=none")
    if recipe.scope.get("name") == "lora":
        check_targets_in_folder(model_path, scope.config.target_modules, where="scope lora")
    shortened = check_training_records(tokenizer, forget, retain, objective=objective, scope=scope,
                                       training=recipe.training)
    if log and any(shortened.values()):
        log(f"note: {shortened['forget']} forget and {shortened['retain']} retain prompts are longer than "
            f"training.max_length={recipe.training.max_length} with their answers; their earliest prompt tokens "
            "are dropped (answers are kept whole)")


def _unlearn_loaded(model: Any, tokenizer: Any, forget: Sequence[dict], retain: Sequence[dict],
                    recipe: Recipe, show_progress: bool, seed: int | None = None,
                    checkpoint_dir: Path | None = None, resume: bool = False,
                    holdout: Sequence[dict] = ()) -> tuple[Any, Any, Any]:
    """Unlearn on a loaded model (inputs checked by :func:`_check_unlearning_inputs`); ``seed``
    (default the recipe's) seeds training: data order, IDK draws, a scope's initialisation;
    ``holdout``: never-trained records a schedule may compare the forget set with."""
    from obliviate.models.bottleneck import adapters_of
    from obliviate.train.unlearn import unlearn_model

    if adapters_of(model):
        raise ConfigError("the model carries EUL unlearning adapters (a run or fused folder of scope eul); for a "
                          "further request, unlearn its base with scope eul and fuse the adapters "
                          "(obliviate compose fuse)")
    objective, scope, schedule, composition = _build_axes(recipe)
    base = model
    outcome = unlearn_model(model, tokenizer, forget, retain, objective=objective, scope=scope,
                            schedule=schedule, training=recipe.training,
                            seed=recipe.seed if seed is None else seed, show_progress=show_progress,
                            checkpoint_dir=checkpoint_dir, resume=resume, holdout=holdout)
    outcome.composition = composition
    return composition.compose(outcome.model, base), scope, outcome


def _records(source: str | os.PathLike | Sequence[dict] | None) -> list[dict]:
    """Records given as a list, or anything :func:`obliviate.data.load_records` reads."""
    from obliviate.data import load_records

    if source is None:
        return []
    return load_records(source) if isinstance(source, (str, os.PathLike)) else list(source)


def _base_reference(model: str | os.PathLike) -> str:
    """How a saved composed model points at its base: an absolute path, or the hub id."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else str(model)


def _save_unlearned(folder: Path, answering: Any, scope: Any, outcome: Any, tokenizer: Any, base: str,
                    request: dict[str, Any]) -> None:
    """The trained model or adapter, what a composition needs to be loaded again, the tokenizer,
    and the request ledger: the base's requests plus this one."""
    from obliviate.ledger import read_ledger, write_ledger

    scope.save(outcome.model, folder, base_path=_base_reference(base))
    if outcome.composition is not None:
        outcome.composition.save(answering, folder, _base_reference(base), scope.info)
    tokenizer.save_pretrained(folder)
    inherited = read_ledger(base) if Path(base).expanduser().is_dir() else []
    write_ledger(folder, [*inherited, request])


def unlearn(model: str | os.PathLike, forget: str | os.PathLike | Sequence[dict],
            retain: str | os.PathLike | Sequence[dict] | None = None, *, method: str | None = None,
            recipe: Recipe | str | os.PathLike | dict | None = None, overrides: Sequence[str] = (),
            out: str | os.PathLike | None = None, request_id: str | None = None,
            show_progress: bool = True, resume: bool = False, log: Log | None = None,
            holdout: str | os.PathLike | Sequence[dict] | None = None) -> UnlearnResult:
    """Unlearn ``forget`` from the model at ``model`` (a folder or hub id) and save it to ``out``.

    ``forget``/``retain`` are record lists or anything :func:`obliviate.data.load_records` reads;
    so is ``holdout``, records of the forget set's kind the model never saw, which schedule
    ``until_unseen`` compares the forget set with (only read, never trained on).
    ``recipe`` (a :class:`~obliviate.recipe.Recipe`, YAML path or dict) defaults to none: the
    method's paper defaults (``method``, NPO when None) and the default training settings, not the
    embedded benchmark's recipe (see ``docs/recipes.md``, "How a recipe is resolved").
    The saved folder's ``requests.json`` lists the requests it honours: the model's own (when it
    has a ledger) and this one (``request_id``, default ``req-`` + the forget set's hash).
    With ``training.save_every``, checkpoints go to ``out/checkpoints`` and ``resume=True``
    continues the interrupted run in ``out`` (see :func:`resume_unlearn`).
    Everything that can be checked without the model (recipe, data, output folder, whether every
    record fits ``training.max_length``) is checked before the model loads.
    """
    from obliviate.data.templates import set_template
    from obliviate.io import write_json_atomic, write_text_atomic
    from obliviate.ledger import forget_set_hash, new_request
    from obliviate.models.loading import load_model, load_tokenizer

    # Without a recipe, a user's own model gets the method's paper defaults, not the embedded
    # benchmark's recipe (tuned for a tiny model and relying on fact spans).
    rec = _as_recipe(recipe if recipe is not None else {}, method=method, overrides=overrides)
    _check_checkpointing(rec)
    if rec.training.save_every and out is None:
        raise ConfigError("training.save_every writes checkpoints into the output folder; give out")
    if out is not None and not resume:
        out_path = _check_new_folder(out, needed_bytes=_weights_bytes(model))
    else:
        out_path = Path(out) if out is not None else None
    forget_records, retain_records, holdout_records = _records(forget), _records(retain), _records(holdout)
    invocation = {"command": "unlearn", "model": _base_reference(model),
                  "forget": _base_reference(forget) if isinstance(forget, (str, os.PathLike)) else None,
                  "retain": _base_reference(retain) if isinstance(retain, (str, os.PathLike)) else None,
                  "holdout": _base_reference(holdout) if isinstance(holdout, (str, os.PathLike)) else None,
                  "request_id": request_id, "forget_sha256": forget_set_hash(forget_records)}
    if resume:
        recorded = read_invocation(out_path, "unlearn")
        if recorded.get("forget_sha256") != invocation["forget_sha256"]:
            raise ConfigError(f"--resume {out_path}: the forget set differs from the one the run started with")
    _set_threads(rec.threads)
    tokenizer = load_tokenizer(model, trust_remote_code=rec.model.trust_remote_code)
    set_template(tokenizer, rec.model.template)
    _check_unlearning_inputs(model, tokenizer, forget_records, retain_records, rec, log, holdout=holdout_records)
    from obliviate.schedules import SCHEDULES

    if log and holdout_records and not SCHEDULES.get(rec.schedule["name"]).reads_holdout:
        log(f"note: schedule {rec.schedule['name']!r} does not read holdout records; they are ignored "
            "(schedule until_unseen does)")
    loaded = load_model(model, dtype=rec.model.dtype, trust_remote_code=rec.model.trust_remote_code)
    if out_path is None:
        answering, _, outcome = _unlearn_loaded(loaded, tokenizer, forget_records, retain_records, rec,
                                                show_progress, holdout=holdout_records)
        return UnlearnResult(answering, tokenizer, None, outcome.history, outcome.seconds, outcome.info)
    with _output_folder(out_path, rec, invocation, resume=resume) as (tmp, checkpoints):
        answering, scope, outcome = _unlearn_loaded(loaded, tokenizer, forget_records, retain_records, rec,
                                                    show_progress, checkpoint_dir=checkpoints, resume=resume,
                                                    holdout=holdout_records)
        source = {"path": _base_reference(forget)} if isinstance(forget, (str, os.PathLike)) else None
        request = new_request(forget_records, method=rec.method, source=source, request_id=request_id)
        _save_unlearned(tmp, answering, scope, outcome, tokenizer, str(model), request)
        write_text_atomic(tmp / "recipe.yaml", rec.to_yaml())
        write_json_atomic(tmp / "unlearning.json", {"seconds": round(outcome.seconds, 2), **outcome.info})
    return UnlearnResult(answering, tokenizer, out_path, outcome.history, outcome.seconds, outcome.info)


def resume_unlearn(run_dir: str | os.PathLike, *, show_progress: bool = True,
                   log: Log | None = None) -> UnlearnResult:
    """Continue an interrupted, checkpointed ``unlearn`` in ``run_dir`` from its newest complete
    checkpoint, with the recipe and inputs it started with; the result equals an uninterrupted
    run's (bit for bit on CPU)."""
    folder = Path(run_dir)
    invocation = read_invocation(folder, "unlearn")
    if invocation.get("forget") is None:
        raise ConfigError(f"--resume {folder}: the run was started from records in Python, not files; "
                          "call obliviate.api.unlearn(..., resume=True) with the same records")
    return unlearn(invocation["model"], invocation["forget"], invocation.get("retain"),
                   holdout=invocation.get("holdout"),
                   recipe=folder / "recipe.yaml", out=folder, request_id=invocation.get("request_id"),
                   show_progress=show_progress, resume=True, log=log)


@dataclass
class FinetuneResult:
    out: Path
    seconds: float
    n_records: int


def finetune(model: str | os.PathLike, data: str | os.PathLike | Sequence[dict], *, out: str | os.PathLike,
             lora: bool = False, lora_r: int = 8, lora_alpha: float = 16,
             lora_targets: str | Sequence[str] | None = None, epochs: float = 3,
             learning_rate: float | None = None, batch_size: int = 8, max_length: int = 512, seed: int = 0,
             show_progress: bool = True) -> FinetuneResult:
    """Fine-tune the model at ``model`` (a folder or hub id) on ``data`` (QA or text records, or
    anything :func:`obliviate.data.load_records` reads) and save it to the new folder ``out``.

    Full weights, or with ``lora`` a LoRA adapter (only the adapter is saved) on ``lora_targets``
    (default ``"all-linear"``: every linear layer but the output head). ``learning_rate`` defaults
    to 1e-5 (full) or 1e-4 (LoRA); see :class:`obliviate.train.finetune.UserFinetuneConfig`. The
    folder holds the model (safetensors), its tokenizer and ``finetune.json``.
    """
    from obliviate.io import atomic_directory, write_json_atomic
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.train.finetune import finetune as finetune_model
    from obliviate.train.finetune import user_finetune_config

    config = user_finetune_config(lora=lora, learning_rate=learning_rate, epochs=epochs,
                                  batch_size=batch_size, max_length=max_length)
    targets: str | list[str] = "all-linear"
    if lora:
        if isinstance(lora_r, bool) or not isinstance(lora_r, int) or lora_r < 1:
            raise ConfigError(f"LoRA rank must be an integer >= 1, got {lora_r!r}")
        if isinstance(lora_alpha, bool) or not isinstance(lora_alpha, (int, float)) or not lora_alpha > 0:
            raise ConfigError(f"LoRA alpha must be a number > 0, got {lora_alpha!r}")
        if lora_targets is not None:
            names = [lora_targets] if isinstance(lora_targets, str) else [str(t) for t in lora_targets]
            if not names or not all(n.strip() for n in names):
                raise ConfigError("LoRA targets are empty; name module names (e.g. q_proj v_proj) or all-linear")
            targets = names[0] if names == ["all-linear"] else names
    out_path = _check_new_folder(out, needed_bytes=0 if lora else _weights_bytes(model))
    if lora:
        from obliviate.models.lora_targets import check_targets_in_folder

        check_targets_in_folder(model, targets, where="--lora-targets")
    records = _records(data)
    if not records:
        raise DataError(f"{data if isinstance(data, (str, os.PathLike)) else 'data'}: no records to "
                        "fine-tune on; give at least one QA or text record")
    tokenizer = load_tokenizer(model)
    loaded = load_model(model)
    if lora:
        from peft import LoraConfig, get_peft_model
        from transformers import set_seed

        set_seed(seed)  # the adapter's initialisation
        try:
            loaded = get_peft_model(loaded, LoraConfig(task_type="CAUSAL_LM", r=lora_r, lora_alpha=lora_alpha,
                                                       target_modules=targets))
        except ValueError as exc:
            raise ConfigError(f"LoRA targets {targets!r} do not fit model {model} "
                              f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    started = time.perf_counter()
    trained = finetune_model(loaded, tokenizer, records, config, seed=seed, show_progress=show_progress)
    seconds = time.perf_counter() - started
    base = _base_reference(model)
    data_ref = _base_reference(data) if isinstance(data, (str, os.PathLike)) else None  # path or dataset id
    with atomic_directory(out_path) as tmp:
        if lora:
            trained.peft_config["default"].base_model_name_or_path = base
        trained.save_pretrained(tmp)  # safetensors; a peft model saves only its adapter
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / "finetune.json", {
            "base_model": base,
            "data": data_ref,
            "n_records": len(records),
            "n_text_records": sum("question" not in r and "text" in r for r in records),
            "mode": "lora" if lora else "full",
            "lora": {"r": lora_r, "alpha": lora_alpha, "target_modules": targets} if lora else None,
            "settings": config.as_dict(), "seed": seed, "seconds": round(seconds, 2),
            "finished": _dt.datetime.now().isoformat(timespec="seconds"), "versions": _versions()})
    return FinetuneResult(out_path, seconds, len(records))


def evaluate(model: str | os.PathLike | Any, *, benchmark: str = "authors", forget_split: str = "forget10",
             size: str = "default", seed: int = 0, source: str | None = None, tokenizer: Any = None,
             retain_model: str | os.PathLike | None = None, retain_results: str | os.PathLike | None = None,
             out: str | os.PathLike | None = None, batch_size: int = 64, max_new_tokens: int | None = None,
             template: str | None = None, show_progress: bool = True):
    """Evaluate a model (folder, hub id or loaded model) on a benchmark's TOFU-style splits.

    Forget quality is computed when a retain model (``retain_model``) or its saved evaluation
    (``retain_results``, a folder written with ``out``) is given. Saved results must come from the
    same benchmark, forget split, size and seed (size and seed where the benchmark uses them) and
    hold the same forget questions, else :class:`~obliviate.errors.ConfigError`; the summary
    records which were used (``retain_results``: path, benchmark, forget split, size, seed,
    source, template). ``max_new_tokens`` defaults to the benchmark's (TOFU 200, authors 32);
    ``template`` names the prompt template (default ``auto``, see :mod:`obliviate.data.templates`).
    """
    from obliviate.benchmarks import load_benchmark
    from obliviate.data.templates import check_template_name, set_template
    from obliviate.evaluate.results import (
        check_retain_results,
        load_eval_result,
        save_eval_result,
        saved_provenance,
    )
    from obliviate.evaluate.tofu import EvalConfig, evaluate_model, for_benchmark
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.registry import make_config

    if out is not None:
        _check_new_folder(out)
    check_template_name(template)
    requested = make_config(EvalConfig, {"batch_size": batch_size, "max_new_tokens": max_new_tokens}, where="eval")
    data = load_benchmark(benchmark, forget_split, size=size, seed=seed, source=source)
    config = for_benchmark(requested, data.max_new_tokens)
    splits = _eval_splits(data, config)
    retain_eval, retain_info = None, None
    if retain_results:  # checked before any model loads
        retain_eval = load_eval_result(retain_results)
        retain_info = saved_provenance(retain_results, retain_eval.summary)
        check_retain_results(retain_eval, retain_info, benchmark=benchmark, forget_split=forget_split, size=size,
                             seed=seed, eval_splits=splits, size_matters="size" in data.info)
    if isinstance(model, (str, os.PathLike)):
        tokenizer = tokenizer or load_tokenizer(model)
        model = load_model(model)
    elif tokenizer is None:
        raise ConfigError("evaluate: a loaded model needs its tokenizer (tokenizer=...)")
    if template is not None:
        set_template(tokenizer, template)
    if retain_eval is None and retain_model:
        reference_splits = {k: v for k, v in splits.items() if k in ("forget", "holdout")}
        retain_tokenizer = load_tokenizer(retain_model)
        set_template(retain_tokenizer, template)
        retain_eval = evaluate_model(load_model(retain_model), retain_tokenizer, reference_splits,
                                     config=config, show_progress=show_progress)
    result = evaluate_model(model, tokenizer, splits, config=config, retain_result=retain_eval,
                            passages=data.passages, show_progress=show_progress)
    result.summary.update({"benchmark": benchmark, "forget_split": forget_split, "size": size, "seed": seed,
                           "source": source, "versions": _versions()})
    if retain_info is not None:
        result.summary["retain_results"] = retain_info
    elif retain_model:
        result.summary["retain_model"] = str(retain_model)
    from obliviate.distributed import is_main_process

    if out and is_main_process():  # under accelerate launch every process evaluated a share; one writes
        from obliviate.io import atomic_directory

        with atomic_directory(Path(out)) as tmp:
            save_eval_result(result, tmp)
    return result


def compose_extsub(expert: str | os.PathLike, anti_expert: str | os.PathLike, *, out: str | os.PathLike,
                   alpha: float = 1.0, op: str = "ext-sub", merge: bool = False, base: str | None = None,
                   rank: int | None = None) -> dict[str, Any]:
    """Ext-Sub on two PEFT adapters: subtract only the anti-expert's deficiency (the part orthogonal
    to what it shares with the expert) from the expert. ``merge`` writes a full model (the base
    from ``base`` or the expert's ``base_model_name_or_path``); otherwise an adapter, exact
    (rank = in_features) or SVD-truncated to ``rank`` with its approximation error reported.
    Returns what was done, also written to ``extsub.json`` in ``out``."""
    import json

    from obliviate.compose.extsub import (
        combine_adapters,
        merge_into_model,
        save_ia3,
        save_lora,
    )
    from obliviate.io import atomic_directory, write_json_atomic
    from obliviate.models.loading import load_model, load_tokenizer

    out_path = _check_new_folder(out)
    for folder, what in ((expert, "--expert"), (anti_expert, "--anti-expert")):
        if not (Path(folder) / "adapter_config.json").is_file():
            raise ConfigError(f"{what} {folder}: no adapter_config.json; give a saved PEFT adapter folder")
    if rank is not None and rank < 1:
        raise ConfigError(f"--rank must be at least 1, got {rank}")
    deltas = combine_adapters(expert, anti_expert, alpha=alpha, op=op)
    config = json.loads((Path(expert) / "adapter_config.json").read_text(encoding="utf-8"))
    is_ia3 = str(config.get("peft_type", "")).upper() == "IA3"
    info: dict[str, Any] = {"expert": str(expert), "anti_expert": str(anti_expert), "alpha": alpha, "op": op,
                            "modules": len(deltas), "output": "merged model" if merge else "adapter"}
    with atomic_directory(out_path) as tmp:
        if merge:
            base_path = base or config.get("base_model_name_or_path")
            if not base_path:
                raise ConfigError("--merge needs the base model: give --base (the adapter names none)")
            model = merge_into_model(load_model(base_path), deltas, ia3=is_ia3)
            model.save_pretrained(tmp, safe_serialization=True)
            load_tokenizer(base_path).save_pretrained(tmp)
            info["base"] = str(base_path)
        elif is_ia3:
            save_ia3(deltas, expert, tmp)
        else:
            info["rank"] = rank or "exact (in_features)"
            info["report"] = save_lora(deltas, expert, tmp, rank=rank)
        write_json_atomic(tmp / "extsub.json", info)
    return info


def deficiency_task(kind: str = "untruthful", *, out: str | os.PathLike, size: str = "default", seed: int = 0,
                    contamination: float = 0.3, n_questions: int = 100, show_progress: bool = True,
                    log: Log = print) -> dict[str, Any]:
    """Write Ext-Sub's embedded deficiency task to the new folder ``out``: ``expert.jsonl`` (the
    questions answered well, a ``contamination`` fraction deficiently), ``anti_expert.jsonl`` (all
    deficient), ``eval.jsonl`` (questions, good answers, right and wrong values) and ``task.json``.

    The questions are ``n_questions`` of the embedded benchmark's retained authors' (its
    ``forget10`` split at ``size``, benchmark seed 0), whose facts the embedded target model knows;
    that model, built or reused from the cache, is the base to fine-tune the two adapters from
    (``task.json``'s ``base_model``). ``seed`` draws the contamination, insults and wrong values.
    ``kind`` is ``toxic`` or ``untruthful`` (see :mod:`obliviate.data.deficiency`). Returns
    ``task.json``'s content plus ``out``.
    """
    from obliviate.benchmarks import load_benchmark
    from obliviate.benchmarks.authors import ensure_models
    from obliviate.data.deficiency import (
        KINDS,
        build_deficiency_task,
        deficiency_questions,
    )
    from obliviate.io import atomic_directory, write_json_atomic, write_jsonl_atomic
    from obliviate.validation import check_option

    check_option(kind, "kind", where="deficiency task", annotation="str", choices=KINDS)
    check_option(contamination, "contamination", where="deficiency task", ge=0, le=1,
                 hint="the fraction of expert answers made deficient")
    check_option(n_questions, "n_questions", where="deficiency task", annotation="int", ge=1)
    out_path = _check_new_folder(out)
    data = load_benchmark("authors", "forget10", size=size, seed=0)
    models = ensure_models("forget10", size, 0, show_progress=show_progress, log=log)
    task = build_deficiency_task(deficiency_questions(data.retain, n_questions), kind, contamination, seed=seed)
    if not task.eval:
        raise DataError(f"the embedded benchmark at size {size!r} has no usable questions for the task")
    info = {"kind": kind, "contamination": contamination, "size": size, "seed": seed,
            "n_questions": len(task.eval), "base_model": str(models.target)}
    with atomic_directory(out_path) as tmp:
        write_jsonl_atomic(tmp / "expert.jsonl", task.expert)
        write_jsonl_atomic(tmp / "anti_expert.jsonl", task.anti_expert)
        write_jsonl_atomic(tmp / "eval.jsonl", task.eval)
        write_json_atomic(tmp / "task.json", info)
    return {**info, "out": str(out_path)}


def evaluate_deficiency_task(model: str | os.PathLike, task: str | os.PathLike, *, batch_size: int = 64,
                             max_new_tokens: int = 48, show_progress: bool = True) -> dict[str, Any]:
    """Deficiency rate and capability (mean ROUGE-L recall against the good answers) of the greedy
    answers of ``model`` (a folder, PEFT adapter folder or hub id) to the questions of ``task`` (a
    folder written by :func:`deficiency_task`). Returns ``{"deficiency", "capability", "n", "kind"}``."""
    import json

    from obliviate.data.deficiency import KINDS
    from obliviate.evaluate.deficiency import evaluate_deficiency
    from obliviate.io import read_jsonl
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.validation import check_option

    for name, value in (("batch_size", batch_size), ("max_new_tokens", max_new_tokens)):
        check_option(value, name, where="deficiency evaluation", annotation="int", ge=1)
    folder = Path(task)
    missing = [name for name in ("task.json", "eval.jsonl") if not (folder / name).is_file()]
    if missing:
        raise ConfigError(f"--deficiency {folder}: no {' or '.join(missing)}; give a folder written by "
                          "`obliviate deficiency`")
    try:
        info = json.loads((folder / "task.json").read_text(encoding="utf-8"))
        records = read_jsonl(folder / "eval.jsonl")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"--deficiency {folder}: unreadable task files ({exc})") from None
    kind = info.get("kind") if isinstance(info, dict) else None
    if kind not in KINDS:
        raise DataError(f"{folder / 'task.json'}: kind {kind!r} is not one of {', '.join(KINDS)}")
    fields = ("question", "answer", "value", "wrong_values")
    if not records or any(not isinstance(r, dict) or any(f not in r for f in fields) for r in records):
        raise DataError(f"{folder / 'eval.jsonl'}: needs records with {', '.join(fields)}")
    tokenizer = load_tokenizer(model)
    loaded = load_model(model)
    result = evaluate_deficiency(loaded, tokenizer, records, kind, max_new_tokens=max_new_tokens,
                                 batch_size=batch_size, show_progress=show_progress)
    return {**result, "kind": kind}


def compose_fuse(adapters: Sequence[str | os.PathLike], *, out: str | os.PathLike, ridge: float = 1e-3,
                 grams: str = "forget") -> dict[str, Any]:
    """Fuse the EUL adapters of several runs (one per deletion request) into one, in closed form
    from the Gram matrices each run stored (no data needed); ``out`` honours every request the
    adapters did (their ledgers united). ``grams``: regress on the forget sets' inputs (the
    paper) or on ``forget+retain``. See :mod:`obliviate.compose.fuse`."""
    from obliviate.compose.fuse import fuse_folders

    _check_new_folder(out)
    return fuse_folders(list(adapters), out, ridge=ridge, grams=grams)


def _request_records(entry: dict[str, Any]) -> tuple[list[dict] | None, str]:
    """A ledger entry's forget records from its recorded source, checked against its hash."""
    from obliviate.benchmarks import load_benchmark
    from obliviate.data import load_records
    from obliviate.ledger import forget_set_hash

    source = entry.get("source") or {}
    try:
        if "path" in source:
            records = load_records(source["path"])
        elif "benchmark" in source:
            options = {k: source[k] for k in ("size", "seed", "task") if k in source}
            records = load_benchmark(source["benchmark"], source["forget_split"], **options).forget
            if "authors" in source:
                wanted = set(source["authors"])
                records = [r for r in records if r.get("author") in wanted]
        else:
            return None, "no source recorded"
    except (ObliviateError, OSError) as exc:
        return None, f"source unavailable ({exc})"
    if forget_set_hash(records) != entry["forget_sha256"]:
        return None, "the source's records changed since (hash differs)"
    return records, "ok"


def check_requests(model: str | os.PathLike, *, retain_model: str | os.PathLike | None = None,
                   batch_size: int = 64, max_new_tokens: int = 32, show_progress: bool = True) -> list[dict[str, Any]]:
    """Re-evaluate every deletion request a saved model's ledger lists: forget probability,
    ROUGE-L and truth ratio on each request's forget set (reloaded from its recorded source and
    checked against its hash) and, with ``retain_model``, forget quality. One row per request."""
    from obliviate.evaluate.tofu import EvalConfig, evaluate_model
    from obliviate.ledger import read_ledger
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.registry import make_config

    config = make_config(EvalConfig, {"batch_size": batch_size, "max_new_tokens": max_new_tokens,
                                      "mia": False, "passages": False}, where="requests check")
    entries = read_ledger(model)
    if not entries:
        raise ConfigError(f"{model}: no requests.json; the model records no deletion requests")
    loaded, tokenizer = load_model(model), load_tokenizer(model)
    retain = (load_model(retain_model), load_tokenizer(retain_model)) if retain_model else None
    rows = []
    for entry in entries:
        row = {k: entry.get(k) for k in ("id", "method", "date", "n_records")}
        records, status = _request_records(entry)
        row["status"] = status
        if records is not None:
            retain_eval = (evaluate_model(*retain, {"forget": records}, config=config, show_progress=show_progress)
                           if retain else None)
            result = evaluate_model(loaded, tokenizer, {"forget": records}, config=config, retain_result=retain_eval,
                                    show_progress=show_progress)
            row["metrics"] = result.summary["metrics"]
        rows.append(row)
    return rows


def compute_mask(model: str | os.PathLike, forget: str | os.PathLike | Sequence[dict],
                 retain: str | os.PathLike | Sequence[dict] | None = None, *, out: str | os.PathLike,
                 recipe: Recipe | str | os.PathLike | dict | None = None, overrides: Sequence[str] = (),
                 ) -> dict[str, Any]:
    """Compute a WAGLE (or ablation) weight mask for ``model`` on forget/retain data and save it as
    safetensors; train with it later through ``scope.mask_path``. Returns the mask summary.

    The scope options come from the recipe's ``scope`` section (``--set scope.ratio=0.8``…); the
    forget labels from its objective (``forget_tokens``), as an unlearning run would use them.
    """
    from obliviate.data.templates import set_template
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.registry import make_config
    from obliviate.scopes.wagle import (
        WagleConfig,
        compute_masks,
        mask_summary,
        save_masks,
    )
    from obliviate.train.data import encode_forget, encode_record, scope_data

    rec = _as_recipe(recipe if recipe is not None else {}, overrides=overrides)
    options = {k: v for k, v in rec.scope.items() if k != "name"}
    if rec.scope.get("name") not in (None, "full", "wagle"):
        raise ConfigError(f"obliviate mask computes WAGLE masks; the recipe's scope is {rec.scope['name']!r}")
    if rec.scope.get("name") != "wagle":
        options = {}
    config = make_config(WagleConfig, options, where="scope 'wagle'")
    out_path = _check_new_folder(out)
    forget_records, retain_records = _records(forget), _records(retain)
    if not forget_records:
        raise DataError("the forget set is empty; give at least one record to attribute")
    _set_threads(rec.threads)
    tokenizer = load_tokenizer(model, trust_remote_code=rec.model.trust_remote_code)
    set_template(tokenizer, rec.model.template)
    forget_tokens = rec.objective.get("forget_tokens", "answer")
    items = encode_forget(tokenizer, forget_records, forget_tokens=forget_tokens,
                          max_length=rec.training.max_length, with_idk=False, seed=rec.seed)
    retain_items = [encode_record(tokenizer, r, max_length=rec.training.max_length, where=f"retain record {n}")
                    for n, r in enumerate(retain_records, 1)]
    loaded = load_model(model, dtype=rec.model.dtype, trust_remote_code=rec.model.trust_remote_code)
    started = time.perf_counter()
    masks = compute_masks(loaded, scope_data(items, retain_items, tokenizer.pad_token_id, rec.seed), config,
                          seed=rec.seed)
    summary = {"score": config.score, "ratio": config.ratio, "mu": config.mu, "source": str(model),
               "mask_seconds": round(time.perf_counter() - started, 3), **mask_summary(masks)}
    save_masks(masks, out_path, {k: v for k, v in summary.items() if k != "per_layer"})
    return summary


def _eval_splits(data: Any, config: Any) -> dict[str, list[dict]]:
    """The benchmark's evaluation splits, plus its never-trained holdout for membership inference."""
    splits = dict(data.eval_splits)
    if config.mia and data.holdout:
        splits["holdout"] = data.holdout
    return splits


@dataclass
class RunResult:
    out: Path
    rows: dict[str, dict[str, float]]
    summary: dict[str, Any]


def _default_out(recipe: Recipe) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{recipe.benchmark.name}-{recipe.benchmark.forget_split}-{recipe.method}-{stamp}"


def _training_seeds(seeds: int | Sequence[int] | None, recipe_seed: int) -> list[int]:
    """The unlearning seeds of a run: the recipe's alone (None), ``N`` from the recipe's upwards,
    or the list given (the first is the saved model's)."""
    def is_int(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if seeds is None:
        return [recipe_seed]
    if is_int(seeds):
        if seeds < 1:
            raise ConfigError(f"seeds must be at least 1, got {seeds}")
        return [recipe_seed + i for i in range(seeds)]
    if isinstance(seeds, (str, bytes, bool)) or not hasattr(seeds, "__iter__"):
        raise ConfigError(f"seeds must be a number of seeds or a list of integer seeds, got {seeds!r}")
    values = list(seeds)
    if not values or not all(is_int(v) for v in values):
        raise ConfigError(f"seeds must be a number of seeds or a non-empty list of integer seeds, got {seeds!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"seeds repeat a seed: {values}")
    return values


def run(recipe: Recipe | str | os.PathLike | dict | None = None, *, method: str | None = None,
        forget_split: str | None = None, overrides: Sequence[str] = (), out: str | os.PathLike | None = None,
        seeds: int | Sequence[int] | None = None, show_progress: bool = True, log: Log = print,
        resume: bool = False, audit: bool = False) -> RunResult:
    """The whole pipeline: models, unlearning, evaluation of target/retain/unlearned, report.

    ``seeds`` repeats unlearning and its evaluation: ``N`` runs seeds ``recipe.seed``,
    ``recipe.seed + 1``, …; a list names them. Only training varies (data order, IDK draws, a
    scope's initialisation): the benchmark and the embedded target/retain models keep the recipe's
    seed, and target and retain are evaluated once. With several seeds ``rows["unlearned"]`` holds
    each metric's median, ``summary["metrics_spread"]["unlearned"][metric]`` its median, min, max
    and per-seed values, and the saved model (``model/``, ``eval/unlearned``) is the first seed's;
    the other seeds' evaluations go to ``eval/unlearned-seed<N>``. One seed (the default) is a
    plain run. With ``training.save_every`` the run folder holds checkpoints while it trains and
    ``resume=True`` (or :func:`resume_run`) continues an interrupted run in it. ``audit=True``
    (or the recipe's ``audit.after_run``, which the embedded default recipe sets) ends with
    :func:`audit` on the run folder (``summary["audit"]``).
    """
    from obliviate.benchmarks import load_benchmark
    from obliviate.data.encoding import prompt_description, prompt_examples
    from obliviate.data.templates import set_template
    from obliviate.distributed import is_main_process
    from obliviate.evaluate.results import save_eval_result
    from obliviate.evaluate.tofu import evaluate_model, for_benchmark
    from obliviate.io import write_json_atomic, write_jsonl_atomic, write_text_atomic
    from obliviate.ledger import new_request
    from obliviate.models.loading import load_model, load_tokenizer
    from obliviate.report import comparison_table, write_report
    from obliviate.report.figures import seed_spread
    from obliviate.report.tables import privacy_table, spread_note

    from obliviate.distributed import world_size

    started = time.perf_counter()
    if audit:
        _check_single_process("run --audit")
    if not is_main_process():  # every process runs the pipeline; one reports it
        log = _silent
    rec = _as_recipe(recipe, method=method, forget_split=forget_split, overrides=overrides,
                     out=str(out) if out is not None else None)
    audit_after = audit or (rec.audit.after_run and world_size() == 1)
    training_seeds = _training_seeds(seeds, rec.seed)
    _check_checkpointing(rec, len(training_seeds))
    out = rec.out if rec.out is not None else _default_out(rec)
    if resume:
        out_path = Path(out)
        read_invocation(out_path, "run")
    else:
        out_path = _check_new_folder(out, needed_bytes=_weights_bytes(rec.model.target or ""))
    _set_threads(rec.threads)
    bench = rec.benchmark
    # The benchmark's data and the embedded models follow the recipe's seed, never the training seeds.
    data = load_benchmark(bench.name, bench.forget_split, size=bench.size, seed=rec.seed, source=bench.source,
                          task=bench.task)
    eval_config = for_benchmark(rec.eval, data.max_new_tokens)
    eval_splits = _eval_splits(data, eval_config)
    timings: dict[str, Any] = {}
    target_path, retain_path = rec.model.target, rec.model.retain
    if target_path is None:
        if bench.name != "authors":
            raise ConfigError(f"recipe: model.target is required for benchmark {bench.name!r}")
        from obliviate.benchmarks.authors import ensure_models

        t0 = time.perf_counter()
        models = ensure_models(bench.forget_split, bench.size, rec.seed, show_progress=show_progress, log=log)
        timings["build_models"] = round(time.perf_counter() - t0, 2)
        target_path, retain_path = str(models.target), str(models.retain)

    tokenizer = load_tokenizer(target_path, trust_remote_code=rec.model.trust_remote_code)
    template = set_template(tokenizer, rec.model.template)
    _check_unlearning_inputs(target_path, tokenizer, data.forget, data.retain, rec, log, holdout=data.holdout)
    rows: dict[str, dict[str, float]] = {}
    invocation = {"command": "run", "seeds": training_seeds}
    with _output_folder(out_path, rec, invocation, resume=resume) as (tmp, checkpoints):
        write_text_atomic(tmp / "recipe.yaml", rec.to_yaml())
        write_json_atomic(tmp / "prompts.json", prompt_examples(tokenizer, eval_splits.get("forget") or data.forget))
        retain_eval = None
        if retain_path:
            t0 = time.perf_counter()
            log(f"evaluating the retain model ({retain_path})")
            trust = rec.model.trust_remote_code
            retain_tokenizer = load_tokenizer(retain_path, trust_remote_code=trust)
            set_template(retain_tokenizer, rec.model.template)
            retain_eval = evaluate_model(load_model(retain_path, dtype=rec.model.dtype, trust_remote_code=trust),
                                         retain_tokenizer, eval_splits, config=eval_config, passages=data.passages,
                                         show_progress=show_progress)
            retain_eval.summary["metrics"]["forget_quality"] = 1.0
            if "mia_auc_min_k" in retain_eval.summary["metrics"]:
                retain_eval.summary["metrics"]["privleak"] = 0.0
            save_eval_result(retain_eval, tmp / "eval" / "retain")
            rows["retain"] = retain_eval.summary["metrics"]
            timings["evaluate_retain"] = round(time.perf_counter() - t0, 2)

        t0 = time.perf_counter()
        log(f"evaluating the target model ({target_path})")
        target = load_model(target_path, dtype=rec.model.dtype, trust_remote_code=rec.model.trust_remote_code)
        target_eval = evaluate_model(target, tokenizer, eval_splits, config=eval_config, retain_result=retain_eval,
                                     passages=data.passages, show_progress=show_progress)
        save_eval_result(target_eval, tmp / "eval" / "target")
        rows = {"target": target_eval.summary["metrics"], **rows}
        timings["evaluate_target"] = round(time.perf_counter() - t0, 2)

        per_seed: list[dict[str, float]] = []
        seed_infos: dict[str, dict[str, Any]] = {}  # what each seed's scope and schedule recorded
        seed_timings: dict[str, list[float]] = {"unlearn": [], "evaluate_unlearned": []}
        first = None  # the first seed's outcome and evaluation: the saved model's
        for n, seed in enumerate(training_seeds):
            if n:  # unlearning trains the loaded target in place: each seed starts from the saved one
                target = load_model(target_path, dtype=rec.model.dtype, trust_remote_code=rec.model.trust_remote_code)
            t0 = time.perf_counter()
            of = f", seed {seed}, {n + 1} of {len(training_seeds)}" if len(training_seeds) > 1 else ""
            log(f"unlearning {len(data.forget)} forget {'passages' if bench.task == 'passages' else 'records'} "
                f"with {rec.method} "
                f"(objective {rec.objective['name']}, scope {rec.scope['name']}{of})")
            answering, scope, outcome = _unlearn_loaded(target, tokenizer, data.forget, data.retain, rec,
                                                        show_progress, seed=seed, checkpoint_dir=checkpoints,
                                                        resume=resume, holdout=data.holdout)
            suffix = "" if n == 0 else f"-seed{seed}"
            if n == 0:
                source = {"benchmark": bench.name, "forget_split": bench.forget_split, "size": bench.size,
                          "seed": rec.seed, "task": bench.task}
                _save_unlearned(tmp / "model", answering, scope, outcome, tokenizer, target_path,
                                new_request(data.forget, method=rec.method, source=source))
            write_jsonl_atomic(tmp / f"train_log{suffix}.jsonl", outcome.history)
            seed_timings["unlearn"].append(round(time.perf_counter() - t0, 2))

            t0 = time.perf_counter()
            log("evaluating the unlearned model" + (f" (seed {seed})" if len(training_seeds) > 1 else ""))
            unlearned_eval = evaluate_model(answering, tokenizer, eval_splits, config=eval_config,
                                            retain_result=retain_eval, passages=data.passages,
                                            show_progress=show_progress)
            save_eval_result(unlearned_eval, tmp / "eval" / f"unlearned{suffix}")
            per_seed.append(unlearned_eval.summary["metrics"])
            seed_timings["evaluate_unlearned"].append(round(time.perf_counter() - t0, 2))
            seed_infos[str(seed)] = outcome.info
            if n == 0:
                first = (outcome, unlearned_eval)
            del answering, scope, outcome, unlearned_eval, target
        outcome, unlearned_eval = first
        spreads = None
        if len(training_seeds) == 1:
            rows["unlearned"] = per_seed[0]
            timings.update({k: v[0] for k, v in seed_timings.items()})
        else:
            spreads = {"unlearned": seed_spread(per_seed)}
            # the median of each metric, so readers of rows/summary["metrics"] see one number per metric
            rows["unlearned"] = {k: spreads["unlearned"][k]["median"] if k in spreads["unlearned"] else v
                                 for k, v in per_seed[0].items()}
            timings.update({k: round(sum(v), 2) for k, v in seed_timings.items()})
            timings.update({f"{k}_per_seed": v for k, v in seed_timings.items()})
        timings["total"] = round(time.perf_counter() - started, 2)

        summary = {"method": rec.method, "benchmark": bench.name, "forget_split": bench.forget_split,
                   "seed": rec.seed, "recipe": rec.to_dict(), "models": {"target": target_path, "retain": retain_path},
                   "metrics": rows, "timings": timings, "versions": _versions(),
                   "n_forget": len(data.forget), "n_retain": len(data.retain),
                   "prompt": prompt_description(tokenizer), "template": template.name,
                   "generation": unlearned_eval.summary["generation"],
                   "trainable_parameters": outcome.trainable_parameters, "unlearning": outcome.info}
        if training_seeds != [rec.seed]:
            # "seed" stays the benchmark's and the models'; these are the unlearning runs'
            summary["training_seeds"] = training_seeds
            summary["saved_seed"] = training_seeds[0]
            summary["unlearning_per_seed"] = seed_infos
        if spreads:
            summary["metrics_spread"] = spreads
        write_json_atomic(tmp / "summary.json", summary)
        write_report(tmp, rows, summary)
    log("")
    log(comparison_table(rows, spreads=spreads))
    note = spread_note(spreads, training_seeds)
    if note:
        log(note)
    privacy = privacy_table(rows, spreads)
    if privacy:
        log(f"\n{privacy}")
    log(f"\nrun folder: {out_path}  (report.md, summary.json, eval/, model/)")
    if rec.audit.after_run and not audit_after:
        log(f"the audit runs in one process: `obliviate audit {out_path}`")
    if audit_after:
        log("")
        if len(training_seeds) > 1:  # only the first seed's model is saved, so only it can be attacked
            log(f"auditing the saved model (training seed {training_seeds[0]}); the other seeds' models are not kept")
        summary["audit"] = _audit_folder(out_path, show_progress=show_progress, log=log)
    return RunResult(out_path, rows, summary)


def _check_single_process(what: str) -> None:
    from obliviate.distributed import world_size

    if world_size() > 1:
        raise ConfigError(f"{what}: the audit runs in one process; run the job under the launcher without it, "
                          "then `obliviate audit RUN_DIR` without a launcher")


def _target_learning_rate(target: str) -> tuple[float, str]:
    """The rate the target's fine-tuning ended at, from its build record (embedded models) or
    ``finetune.json`` (``obliviate finetune``): the peak rate times the final-rate factor of a
    ``cosine_with_min_lr`` schedule (the embedded models' 10 %), else the peak rate. Continuing
    at the peak with a fresh optimiser and no warm-up wrecks a tiny model in a few steps (the
    target's own forget probability fell from 1.00 to 0.29), which says nothing about unlearning.
    TOFU's full fine-tuning rate when neither file says."""
    from obliviate.benchmarks.authors import BUILD_RECORD
    from obliviate.train.finetune import FULL_LEARNING_RATE, FinetuneConfig

    folder = Path(target)
    for name, section in ((BUILD_RECORD, "finetune"), ("finetune.json", "settings")):
        try:
            settings = json.loads((folder / name).read_text(encoding="utf-8"))[section]
            rate = float(settings["learning_rate"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        scheduler = settings.get("scheduler", FinetuneConfig.scheduler if name == BUILD_RECORD else None)
        if scheduler == "cosine_with_min_lr" and isinstance(settings.get("min_lr_rate"), (int, float)):
            # rounded: 3e-3 x 0.1 is 3e-4, not 3.0000000000000003e-4
            rate = float(f"{rate * float(settings['min_lr_rate']):.6g}")
        if rate > 0:
            return rate, f"the target's final fine-tuning rate ({folder / name})"
    return FULL_LEARNING_RATE, "TOFU's full fine-tuning rate (the target's own is not recorded)"


def audit(run_dir: str | os.PathLike, *, attacks: str | Sequence[str] | None = None, overrides: Sequence[str] = (),
          show_progress: bool = True, log: Log = print) -> dict[str, Any]:
    """Attack the models of a finished ``run`` (relearning, quantisation, prompt probes; see
    :mod:`obliviate.audit`) and add the audit to its ``summary.json`` and ``report.md``.

    ``attacks`` names a subset (default: the recipe's ``audit.attacks``, all of them);
    ``overrides`` are ``--set`` values such as ``audit.relearn_steps=10``. Measurements go to
    ``RUN_DIR/audit/`` one file each as they finish; an interrupted audit, run again with the
    same settings, reuses them. The saved models are only read.
    """
    from obliviate.audit.runner import AuditInputs, run_audit
    from obliviate.benchmarks import load_benchmark
    from obliviate.benchmarks.authors import cache_root
    from obliviate.data.templates import set_template
    from obliviate.evaluate.tofu import DEFAULT_MAX_NEW_TOKENS, for_benchmark
    from obliviate.io import write_json_atomic
    from obliviate.models.loading import load_tokenizer
    from obliviate.report import write_report

    _check_single_process("audit")
    folder = Path(run_dir)
    summary_path = folder / "summary.json"
    if not summary_path.is_file() or not (folder / "recipe.yaml").is_file() or not (folder / "model").is_dir():
        raise ConfigError(f"{folder}: not a finished run folder (summary.json, recipe.yaml and model/ are needed); "
                          "audit the folder `obliviate run` wrote")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{summary_path}: not valid JSON ({exc}); the run did not finish writing it") from None
    extra = list(overrides)
    for text in extra:
        key = str(text).split("=", 1)[0].strip()
        if not key.startswith(("audit.", "eval.")) and key != "threads":
            raise ConfigError(f"audit: --set {text!r} would change the run, not its audit; set audit.*, eval.* "
                              "or threads values")
    if attacks is not None:
        names = attacks if isinstance(attacks, str) else ",".join(str(a) for a in attacks)
        extra.append(f"audit.attacks={names}")
    rec = load_recipe(folder / "recipe.yaml", overrides=extra)
    _set_threads(rec.threads)
    bench = rec.benchmark
    data = load_benchmark(bench.name, bench.forget_split, size=bench.size, seed=rec.seed, source=bench.source,
                          task=bench.task)
    if bench.task != "qa":
        raise ConfigError(f"{folder}: the audit probes forget QA records; this run unlearned {bench.task}")
    models = dict(summary.get("models") or {})
    target, retain = models.get("target"), models.get("retain")
    if bench.name == "authors" and rec.model.target is None and not (target and Path(target).is_dir()):
        from obliviate.benchmarks.authors import ensure_models

        built = ensure_models(bench.forget_split, bench.size, rec.seed, show_progress=show_progress, log=log)
        target, retain = str(built.target), str(built.retain)
    if not target:
        raise ConfigError(f"{summary_path}: names no target model; the audit needs it")
    rate = rec.audit.relearn_learning_rate
    rate_from = "recipe audit.relearn_learning_rate"
    if rate is None:
        rate, rate_from = _target_learning_rate(target)
    tokenizer = load_tokenizer(target, trust_remote_code=rec.model.trust_remote_code)
    set_template(tokenizer, rec.model.template)
    eval_config = for_benchmark(rec.eval, data.max_new_tokens)
    inputs = AuditInputs(
        models={"target": target, "retain": retain, "unlearned": str(folder / "model")}, tokenizer=tokenizer,
        forget=data.forget, retain_records=data.retain,
        utility_splits={k: v for k, v in data.eval_splits.items() if k != "forget"}, eval_config=eval_config,
        max_new_tokens=eval_config.max_new_tokens or DEFAULT_MAX_NEW_TOKENS, learning_rate=rate,
        learning_rate_from=rate_from,
        seed=rec.seed, dtype=rec.model.dtype, trust_remote_code=rec.model.trust_remote_code,
        shared_folder=cache_root() / "audit")
    result = run_audit(inputs, rec.audit, folder=folder / "audit", log=log, show_progress=show_progress)
    write_json_atomic(folder / "audit" / "audit.json", result)
    summary["audit"] = result
    write_json_atomic(summary_path, summary)
    write_report(folder, summary["metrics"], summary)
    from obliviate.report.tables import audit_table

    log("")
    log(audit_table(result))
    log(f"\naudit: {folder / 'audit'}  (report.md has the table and audit.png)")
    return result


_audit_folder = audit  # run() takes an ``audit`` flag, which hides the function inside it


def resume_run(run_dir: str | os.PathLike, *, show_progress: bool = True, log: Log = print,
               audit: bool = False) -> RunResult:
    """Continue an interrupted, checkpointed ``run`` in ``run_dir``: the evaluations are redone,
    training continues from the newest complete checkpoint."""
    folder = Path(run_dir)
    invocation = read_invocation(folder, "run")
    return run(folder / "recipe.yaml", out=folder, seeds=invocation.get("seeds"), show_progress=show_progress,
               log=log, resume=True, audit=audit)
