"""The human report of a run: Markdown with the comparison table and a forget-quality vs
model-utility plot (PNG). Generated text is not embedded, so no escaping is needed here."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from obliviate.io import write_text_atomic
from obliviate.report.figures import plot_recovery, save_figure
from obliviate.report.tables import (
    PRIVACY_COLUMNS,
    TABLE_COLUMNS,
    audit_table,
    comparison_table,
    privacy_table,
    spread_note,
)


def plot_quality_utility(rows: Mapping[str, Mapping[str, float]], path: Path,
                         spreads: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None) -> Path | None:
    """Forget quality (log scale) against model utility: up and right is better. A row with a
    spread over seeds is drawn at its medians with bars from min to max."""
    points = {k: v for k, v in rows.items() if v.get("forget_quality") is not None and "model_utility" in v}
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=120)
    floor = 1e-300
    lows = []
    for i, (label, m) in enumerate(points.items()):
        fq = max(m["forget_quality"], floor)
        lows.append(fq)
        spread = (spreads or {}).get(label) or {}
        fq_range, mu_range = spread.get("forget_quality"), spread.get("model_utility")
        if fq_range and mu_range:
            low, high = max(fq_range["min"], floor), max(fq_range["max"], floor)
            lows.append(low)
            ax.errorbar(fq, m["model_utility"], xerr=[[max(fq - low, 0)], [max(high - fq, 0)]],
                        yerr=[[max(m["model_utility"] - mu_range["min"], 0)], [max(mu_range["max"] - m["model_utility"], 0)]],
                        fmt="o", markersize=7, capsize=3, color=f"C{i}")
        else:
            ax.scatter(fq, m["model_utility"], s=60, color=f"C{i}")
        ax.annotate(label, (fq, m["model_utility"]), textcoords="offset points", xytext=(6, 4))
    ax.set_xscale("log")
    ax.set_xlim(10 ** (math.floor(math.log10(min(lows))) - 1), 10)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("forget quality (KS p-value vs retain model, log)")
    ax.set_ylabel("model utility")
    ax.set_title("Forget quality vs model utility")
    ax.grid(True, alpha=0.3)
    return save_figure(fig, path)


def write_report(folder: Path, rows: Mapping[str, Mapping[str, float]], info: Mapping[str, Any]) -> Path:
    folder = Path(folder)
    spreads = info.get("metrics_spread") or None
    plot = plot_quality_utility(rows, folder / "fq_vs_mu.png", spreads)
    legend = "\n".join(f"- **{title}**: {meaning}" for _, title, meaning in TABLE_COLUMNS)
    note = spread_note(spreads, info.get("training_seeds"))
    parts = [
        f"# obliviate run: {info.get('method', '?')} on {info.get('benchmark', '?')} / {info.get('forget_split', '?')}",
        "",
        comparison_table(rows, spreads=spreads),
        *(["", note + (" (per-seed values: `summary.json`, `metrics_spread`; per-seed evaluations: "
                       "`eval/unlearned-seed<N>/`).")] if note else []),
        "",
        legend,
        "",
        "A successful unlearning run moves forget quality towards the retain model's (1.0) while "
        "keeping model utility close to the target's.",
    ]
    privacy = privacy_table(rows, spreads)
    if privacy:
        parts += ["", "## Memorisation and membership inference", "", privacy, "",
                  "\n".join(f"- **{title}**: {meaning}" for k, title, meaning in PRIVACY_COLUMNS
                            if any(k in m for m in rows.values()))]
    parts += _unlearning_section(info.get("unlearning") or {})
    if plot:
        parts += ["", f"![forget quality vs model utility]({plot.name})"]
    if info.get("audit"):
        parts += _audit_section(info["audit"], folder)
    if info.get("timings"):
        parts += ["", "## Timings (s)", ""] + [f"- {k}: {v}" for k, v in info["timings"].items()]
    parts += ["", "Files: `recipe.yaml` (resolved recipe), `summary.json`, `eval/<model>/items/<split>.jsonl` "
              "(per-item numbers), `model/` (the unlearned model or adapter)."]
    return write_text_atomic(folder / "report.md", "\n".join(parts) + "\n")


def _unlearning_section(info: Mapping[str, Any]) -> list[str]:
    """What the scope and schedule did: the WAGLE mask, ICU's epochs and stopping reason."""
    lines: list[str] = []
    scope, schedule = info.get("scope") or {}, info.get("schedule") or {}
    if scope.get("selected") is not None:
        lines.append(f"- scope: {scope.get('score')} mask, {scope['selected']:,} of {scope['total']:,} weights "
                     f"trainable ({scope['fraction']:.4f}), computed in {scope.get('mask_seconds', 0):.2f} s; "
                     "per layer: " + ", ".join(f"{k} {v:.3f}" for k, v in (scope.get("per_layer") or {}).items()))
    if scope.get("targets_from"):
        why = {"peft-default": f"peft's default for {scope.get('model_type') or 'this model type'}",
               "all-linear": "all-linear: every linear layer but the output head",
               "recipe": "named in the recipe"}.get(scope["targets_from"], scope["targets_from"])
        lines.append(f"- scope: LoRA r {scope.get('r')} on {', '.join(scope.get('target_modules') or [])} "
                     f"({why}), {scope.get('adapted_layers', 0)} layers")
    assistant = scope.get("assistant") or {}
    if assistant.get("layers") is not None or assistant.get("path"):
        made = (f"the target's first {assistant['layers']} of {assistant.get('base_layers', '?')} layers"
                if assistant.get("layers") is not None else assistant["path"])
        lines.append(f"- scope: an assistant made from {made}, {scope.get('assistant_parameters', 0):,} parameters"
                     + (f", offset weight {scope['weight']}" if "weight" in scope else ""))
    if info.get("augmented"):
        lines.append(f"- data augmented to {info['augmented']['forget']} forget and {info['augmented']['retain']} "
                     "retain records (paraphrases; wrong answers to forget questions)")
    if schedule.get("epochs") is not None:
        cap = " — **the epoch cap ended training**" if schedule.get("cap_hit") else ""
        how = (f"; similarity: {schedule['similarity']}" if schedule.get("similarity") else
               f"; forget vs {schedule['n_holdout']} holdout records by {schedule['statistic']}"
               if schedule.get("statistic") else "")
        lines.append(f"- schedule: {schedule['epochs']:g} epochs, stopped because {schedule.get('stop_reason')}{cap}"
                     f"{how}")
        for check in schedule.get("checks", []):
            if "ma" in check:  # ICU: memorisation of the targets
                el = "—" if check.get("el") is None else f"{check['el']:.3f}"
                lines.append(f"  - epoch {check['epoch']}: MA {check['ma']:.3f}, EL {el}, "
                             f"{check['active']} targets left, {check['re_entered']} re-entered")
            else:  # until_unseen: forget vs holdout
                training = f"; {check['n_training']} records to train" if "n_training" in check else ""
                lines.append(f"  - epoch {check['epoch']}: KS p {check['p']:.3g} (median forget "
                             f"{check['forget_median']:.3g}, holdout {check['holdout_median']:.3g}{training})")
    if info.get("neighbours"):
        lines.append(f"- neighbours paired by {info['neighbours'].get('embedder')}")
    return ["", "## Unlearning", "", *lines] if lines else []


def _audit_section(audit: Mapping[str, Any], folder: Path) -> list[str]:
    """The robustness audit: recovery per attack, beside the retain model's own."""
    plot = plot_recovery(audit, folder / "audit.png")
    relearn = audit.get("relearn") or {}
    lines = ["", "## Robustness audit", "",
             "How much of the forgotten knowledge each attack brings back. **recovery** = (attacked − "
             "un-attacked) / (target − un-attacked) on the same items, in forget-answer probability (ROUGE-L "
             "recall of the withheld part for the probes that give part of the answer): 0 = nothing "
             "comes back, 1 = the model answers like the target again, below 0 = the attack lowers it "
             "(a prompt format can lower every model's numbers; the target column shows by how much). "
             "The retain model never saw the forget "
             "set; its recovery under the same attack is the honest floor (a prompt that leaks the answer, or "
             "fine-tuning on the very facts, raises it too). A method is robust when its recovery stays near "
             "the retain model's.", "", audit_table(audit), ""]
    lines += [f"- **{name}**: {result['description']}" for name, result in (audit.get("attacks") or {}).items()]
    if relearn and any(name.startswith("relearn") for name in audit.get("attacks") or {}):
        lines.append(f"- relearning: learning rate {relearn.get('learning_rate'):.3g} "
                     f"(from {relearn.get('learning_rate_from')}), judged on {relearn.get('held_out')} held-out "
                     "forget items")
    if plot:
        lines += ["", f"![recovery per attack]({plot.name})"]
    lines += ["", "Per-item numbers: `audit/<model>-<attack>.json`."]
    return lines
