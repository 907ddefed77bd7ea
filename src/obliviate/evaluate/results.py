"""Evaluation results on disk: ``summary.json`` plus ``items/<split>.jsonl`` per split."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from obliviate.errors import ConfigError, DataError
from obliviate.evaluate.tofu import EvalResult, SplitResult
from obliviate.io import write_json_atomic, write_jsonl_atomic


def save_eval_result(result: EvalResult, folder: str | Path) -> Path:
    folder = Path(folder)
    for split, res in result.splits.items():
        write_jsonl_atomic(folder / "items" / f"{split}.jsonl", res.items)
    write_json_atomic(folder / "summary.json", result.summary)
    return folder


RERUN = "re-run that evaluation (obliviate eval --out)"
#: summary metrics a later evaluation reads from saved retain results: a NaN there poisons them
_USED_METRICS = ("mia_auc_min_k",)


def _read_items(path: Path) -> list[dict[str, Any]]:
    """One split's saved items; a truncated or damaged file is refused naming the line."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (bad byte at offset {exc.start}); the file is damaged, "
                        f"{RERUN}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc}); check that it exists and is "
                        "readable") from None
    items = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {n}: not valid JSON ({exc.msg}); the file is truncated or damaged, "
                            f"{RERUN}") from None
        if not isinstance(item, dict):
            raise DataError(f"{path}: line {n}: not a JSON object; the file is damaged, {RERUN}")
        items.append(item)
    return items


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _check_item_numbers(path: Path, items: Sequence[Mapping[str, Any]]) -> None:
    """Refuse NaN truth ratios and losses in scored items: forget quality and the Reference MIA
    score compare them item by item, and a NaN gives a meaningless number, not an error."""
    for n, item in enumerate(items, 1):
        if "excluded" in item:
            continue  # no answer tokens: no numbers, by design
        bad = next((key for key in ("truth_ratio", "avg_nll") if _is_nan(item.get(key))), None)
        if bad:
            raise DataError(f"{path}: item {n} has {bad} NaN; the model it scored diverged or the file is "
                            f"damaged: {RERUN} with a working model")


def _read_summary(path: Path) -> dict[str, Any]:
    """A saved summary.json ({} when absent), refusing damage and NaN in the numbers reused."""
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        where = f" at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise DataError(f"{path}: not valid JSON{where}; the file is truncated or damaged, {RERUN}") from None
    if not isinstance(summary, dict):
        raise DataError(f"{path}: holds a JSON {type(summary).__name__}, not an object; {RERUN}")
    metrics = summary.get("metrics")
    if isinstance(metrics, dict):
        bad = sorted(k for k, v in metrics.items()
                     if _is_nan(v) and ("truth_ratio" in str(k).lower() or k in _USED_METRICS))
        if bad:
            raise DataError(f"{path}: metric {bad[0]} is NaN; the model it scored diverged or the file is "
                            f"damaged: {RERUN} with a working model")
    return summary


def load_forget_truth_ratios(folder: str | Path) -> list[float]:
    """Per-item forget truth ratios from a saved evaluation (e.g. of a retain model)."""
    path = Path(folder) / "items" / "forget.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the folder of a saved evaluation "
                        "(it holds items/forget.jsonl)")
    items = _read_items(path)
    _check_item_numbers(path, items)
    ratios = []
    for n, item in enumerate(items, 1):
        if "excluded" in item:
            continue  # no answer tokens after truncation: no truth ratio
        try:
            ratios.append(float(item["truth_ratio"]))
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{path}: item {n}: no numeric 'truth_ratio'; was this split "
                            "evaluated with perturbed answers?") from None
    if not ratios:
        raise DataError(f"{path}: no items; the evaluation scored nothing, {RERUN}")
    return ratios


def load_eval_result(folder: str | Path) -> EvalResult:
    """A saved evaluation (e.g. of a retain model) read back: per-item numbers of every split and
    the summary, so forget quality, the Reference MIA score and privleak can be computed against it.
    Damaged files and NaN numbers are refused here, in one line naming the file, before any model
    is evaluated against them."""
    folder = Path(folder)
    if folder.is_file():
        raise DataError(f"{folder}: this is a file; give the folder of a saved evaluation (it holds "
                        "summary.json and items/forget.jsonl)")
    load_forget_truth_ratios(folder)  # the one file every use needs; clear error if missing
    splits = {}
    for path in sorted((folder / "items").glob("*.jsonl")):
        items = _read_items(path)
        _check_item_numbers(path, items)
        splits[path.stem] = SplitResult(items, {})
    return EvalResult(splits, _read_summary(folder / "summary.json"))


#: what a saved evaluation records about the data it scored (``obliviate eval`` writes them)
PROVENANCE_KEYS = ("benchmark", "forget_split", "size", "seed", "source", "template")


def saved_provenance(folder: str | Path, summary: Mapping[str, Any]) -> dict[str, Any]:
    """Where a saved evaluation's numbers come from: ``path`` plus its benchmark, forget split,
    size, seed, source and template as its ``summary.json`` records them (None when not recorded).

    A run folder's ``eval/<model>/summary.json`` does not repeat the benchmark; it is then read
    from the run's own ``summary.json`` (two folders up) and its recipe.
    """
    folder = Path(folder)
    out: dict[str, Any] = {"path": str(folder)}
    out.update({k: summary.get(k) for k in PROVENANCE_KEYS})
    run_summary = folder.parent.parent / "summary.json"
    if out["benchmark"] is None and folder.parent.name == "eval" and run_summary.is_file():
        try:
            run = json.loads(run_summary.read_text(encoding="utf-8"))
        except ValueError:
            run = {}
        bench = (run.get("recipe") or {}).get("benchmark") or {} if isinstance(run, dict) else {}
        if isinstance(run, dict) and run.get("benchmark"):
            out.update(benchmark=run.get("benchmark"), forget_split=run.get("forget_split"),
                       seed=run.get("seed"), size=bench.get("size"), source=bench.get("source"),
                       template=out["template"] or run.get("template"))
    return out


def _questions(items: Sequence[Mapping]) -> list[Any]:
    return [item.get("question") for item in items]


def check_retain_results(retain: EvalResult, provenance: Mapping[str, Any], *, benchmark: str, forget_split: str,
                         size: Any, seed: Any, eval_splits: Mapping[str, Sequence[Mapping]],
                         size_matters: bool = True) -> None:
    """Refuse (:class:`ConfigError`, one line) saved retain results that scored other data than the
    evaluation about to use them: another benchmark, forget split, size or seed (as recorded; size
    and seed only where the benchmark depends on them, ``size_matters``), or other questions in
    ``forget`` (and ``holdout``, whose items the Reference MIA score pairs up) than ``eval_splits``;
    :class:`DataError` for NaN truth ratios or losses in those splits. Forget quality compares the
    two models' truth ratios question by question set, so a mismatch would give a meaningless p-value."""
    where = f"--retain-results {provenance.get('path')}"
    for split in ("forget", "holdout"):
        if split in retain.splits:  # also for results not read by load_eval_result
            items_file = Path(str(provenance.get("path"))) / "items" / f"{split}.jsonl"
            _check_item_numbers(items_file, retain.splits[split].items)
    wanted = {"benchmark": benchmark, "forget_split": forget_split}
    if size_matters:
        wanted.update(size=size, seed=seed)
    for key, value in wanted.items():
        saved = provenance.get(key)
        if saved is not None and str(saved) != str(value):
            raise ConfigError(f"{where}: evaluated with {key} {saved!r}, this evaluation uses {value!r}; "
                              "forget quality needs the retain model scored on the same forget questions")
    for split in ("forget", "holdout"):
        if split not in eval_splits or split not in retain.splits:
            continue
        saved_q, ours = _questions(retain.splits[split].items), _questions(eval_splits[split])
        if saved_q != ours:
            differ = (f"{len(saved_q)} questions, this evaluation has {len(ours)}" if len(saved_q) != len(ours)
                      else f"question {next(i for i, (a, b) in enumerate(zip(saved_q, ours)) if a != b) + 1} differs")
            raise ConfigError(f"{where}: its {split} split is not this evaluation's ({differ}); evaluate the "
                              "retain model on the same benchmark, split, size and seed")
