"""The comparison table printed after a run and written into its report."""

from __future__ import annotations

from typing import Mapping

# (metric key, column title, what a reader should look for)
TABLE_COLUMNS: list[tuple[str, str, str]] = [
    ("forget_quality", "forget quality", "KS-test p-value vs the retain model; higher = closer to never trained"),
    ("model_utility", "model utility", "harmonic mean of the nine retain/real-authors/world-facts numbers"),
    ("forget_Truth_Ratio", "forget TR", "mean min(R, 1/R) on forget questions"),
    ("forget_Q_A_Prob", "forget prob", "length-normalised probability of forget answers"),
    ("forget_Q_A_ROUGE", "forget ROUGE-L", "recall of forget answers in greedy generations"),
    ("retain_Q_A_Prob", "retain prob", "same, retain questions"),
    ("retain_Q_A_ROUGE", "retain ROUGE-L", "same, retain questions"),
]


# Memorisation and membership inference: does the forget set still look trained on?
PRIVACY_COLUMNS: list[tuple[str, str, str]] = [
    ("forget_exact_memorization", "forget EM", "teacher-forced argmax accuracy on forget answers (EOS dropped)"),
    ("forget_extraction_strength", "forget ES", "1 − k/len for the shortest correct answer suffix"),
    ("mia_auc_min_k", "MIA AUC (Min-K)", "forget vs never-trained holdout; ≈ 0.5 for a model never trained on it"),
    ("mia_auc_loss", "MIA AUC (LOSS)", "same with the loss score"),
    ("privleak", "privleak", "Min-K AUC relative to the retain model's, ×100; 0 = like the retain model"),
    ("forget_passages_MA", "passages MA", "memorisation accuracy on the forget authors' biographies"),
    ("forget_passages_EL10", "passages EL10", "ICU's suffix extraction likelihood on those biographies"),
    ("retain_passages_ppl", "retain ppl", "perplexity on retained biographies; should stay near the target's"),
]


def format_value(key: str, value: float | None) -> str:
    if value is None:
        return "—"
    if key == "privleak":
        return f"{value:.1f}"
    if key.endswith("_ppl"):
        return f"{value:.3g}"
    if key == "forget_quality":
        return f"{value:.3g}" if value >= 1e-3 or value == 0 else f"{value:.2e}"
    return f"{value:.3f}"


def format_cell(key: str, value: float | None, spread: Mapping[str, float] | None = None) -> str:
    """A value, or with ``spread`` (its ``min`` and ``max`` over seeds) ``median [min, max]``."""
    if not spread or spread.get("min") is None or spread.get("max") is None:
        return format_value(key, value)
    return f"{format_value(key, value)} [{format_value(key, spread['min'])}, {format_value(key, spread['max'])}]"


def comparison_table(rows: Mapping[str, Mapping[str, float]],
                     columns: list[tuple[str, str, str]] | None = None, label: str = "model",
                     spreads: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None) -> str:
    """A Markdown table (also readable in a terminal) with one row per evaluated model; columns no
    model has are left out. ``spreads`` gives, per row label, each metric's ``min``/``max`` over
    seeds: those cells read ``median [min, max]`` (the row's value being the median)."""
    spreads = spreads or {}
    columns = [c for c in (columns or TABLE_COLUMNS) if any(c[0] in m for m in rows.values())] or TABLE_COLUMNS
    header = [label] + [title for _, title, _ in columns]
    lines = [header] + [[name] + [format_cell(k, metrics.get(k), (spreads.get(name) or {}).get(k))
                                  for k, _, _ in columns]
                        for name, metrics in rows.items()]
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = []
    for n, row in enumerate(lines):
        out.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def privacy_table(rows: Mapping[str, Mapping[str, float]],
                  spreads: Mapping[str, Mapping[str, Mapping[str, float]]] | None = None) -> str:
    """The memorisation / membership-inference table, or "" when no model has any of its numbers."""
    if not any(k in m for m in rows.values() for k, _, _ in PRIVACY_COLUMNS):
        return ""
    return comparison_table(rows, PRIVACY_COLUMNS, spreads=spreads)


def spread_note(spreads: Mapping[str, Mapping[str, Mapping[str, float]]] | None, seeds: list[int] | None) -> str:
    """The line under a table whose rows carry a spread over seeds, or "" without one."""
    if not spreads or not seeds or len(seeds) < 2:
        return ""
    names = ", ".join(spreads)
    return (f"{names}: median [min, max] over {len(seeds)} unlearning seeds ({', '.join(map(str, seeds))}); "
            f"the saved model and eval/unlearned are seed {seeds[0]}'s")


def requests_table(rows: list[dict]) -> str:
    """One line per deletion request of a ledger: its forget-set metrics, or why there are none."""
    keyed = {}
    for row in rows:
        label = f"{row['id']} ({row.get('method')}, {row.get('n_records')} records)"
        keyed[label] = row.get("metrics") or {}
    columns = [c for c in TABLE_COLUMNS if c[0].startswith("forget")]
    table = comparison_table(keyed, columns, label="request")
    missing = [f"{row['id']}: {row['status']}" for row in rows if row.get("status") != "ok"]
    return table + ("\n" + "\n".join(missing) if missing else "")


def _share(value: float | None) -> str:
    if value is None or value != value:  # NaN: the model never moved away from the target
        return "—"
    return f"{value:+.2f}"


def _before_after(numbers: Mapping[str, Mapping[str, float]], key: str) -> str:
    before, after = numbers.get("before", {}).get(key), numbers.get("after", {}).get(key)
    if before is None or after is None:
        return "—"
    return f"{before:.3f} → {after:.3f}"


def audit_table(audit: Mapping[str, object]) -> str:
    """One row per attack, on the measure recovery is judged on (forget-answer probability, or
    ROUGE-L recall for the probes that give part of the answer): before → after for the unlearned,
    retain and target models, the recoveries (share of the gap to the un-attacked target closed),
    and the unlearned model's utility under the attacks that change weights."""
    header = ("| attack | measure | items | unlearned | recovery | retain | retain's recovery | target "
              "| unlearned MU |")
    lines = [header, "|" + "---|" * 9]
    for name, result in (audit.get("attacks") or {}).items():  # type: ignore[union-attr]
        models, measure = result["models"], result.get("measure", "prob")
        retain = models.get("retain")
        lines.append("| " + " | ".join([
            name, "forget prob" if measure == "prob" else "ROUGE-L", str(result.get("items", "")),
            _before_after(models["unlearned"], measure), _share(result.get("recovery")),
            _before_after(retain, measure) if retain else "—", _share(result.get("retain_recovery")),
            _before_after(models["target"], measure), _before_after(models["unlearned"], "model_utility")]) + " |")
    return "\n".join(lines)
