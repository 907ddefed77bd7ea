"""Evaluation results on disk: ``summary.json`` plus ``items/<split>.jsonl`` per split."""

from __future__ import annotations

import json
from pathlib import Path

from obliviate.errors import DataError
from obliviate.evaluate.tofu import EvalResult
from obliviate.io import write_json_atomic, write_jsonl_atomic


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
                ratios.append(float(json.loads(line)["truth_ratio"]))
            except (ValueError, KeyError, TypeError):
                raise DataError(f"{path}: line {n}: no numeric 'truth_ratio'; was this split "
                                "evaluated with perturbed answers?") from None
    if not ratios:
        raise DataError(f"{path}: no items")
    return ratios
