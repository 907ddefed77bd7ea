"""Evaluation results on disk: ``summary.json`` plus ``items/<split>.jsonl`` per split."""

from __future__ import annotations

import json
from pathlib import Path

from obliviate.errors import DataError
from obliviate.evaluate.tofu import EvalResult, SplitResult
from obliviate.io import read_jsonl, write_json_atomic, write_jsonl_atomic


def save_eval_result(result: EvalResult, folder: str | Path) -> Path:
    folder = Path(folder)
    for split, res in result.splits.items():
        write_jsonl_atomic(folder / "items" / f"{split}.jsonl", res.items)
    write_json_atomic(folder / "summary.json", result.summary)
    return folder


def load_forget_truth_ratios(folder: str | Path) -> list[float]:
    """Per-item forget truth ratios from a saved evaluation (e.g. of a retain model)."""
    path = Path(folder) / "items" / "forget.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: no such file; give the folder of a saved evaluation "
                        "(it holds items/forget.jsonl)")
    ratios = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                if isinstance(item, dict) and "excluded" in item:
                    continue  # no answer tokens after truncation: no truth ratio
                ratios.append(float(item["truth_ratio"]))
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{path}: line {n}: no numeric 'truth_ratio'; was this split "
                                "evaluated with perturbed answers?") from None
    if not ratios:
        raise DataError(f"{path}: no items")
    return ratios


def load_eval_result(folder: str | Path) -> EvalResult:
    """A saved evaluation (e.g. of a retain model) read back: per-item numbers of every split and
    the summary, so forget quality, the Reference MIA score and privleak can be computed against it."""
    folder = Path(folder)
    load_forget_truth_ratios(folder)  # the one file every use needs; clear error if missing
    splits = {path.stem: SplitResult(read_jsonl(path), {}) for path in sorted((folder / "items").glob("*.jsonl"))}
    summary = {}
    if (folder / "summary.json").is_file():
        try:
            summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        except ValueError:
            raise DataError(f"{folder / 'summary.json'}: not valid JSON") from None
    return EvalResult(splits, summary)
