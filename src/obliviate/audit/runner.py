"""Run the audit's attacks on the target, retain and unlearned models and judge recovery.

Every attack is measured on every model against that model's own un-attacked numbers on the same
items, and summarised as :func:`obliviate.metrics.recovery`: the share of the unlearned model's
gap to the target that the attack closes, with the retain model's own share beside it (the
honest floor: a model that never saw the forget set also "recovers" under a prompt that leaks the
answer, or a fine-tuning step on the very facts). Saved models are never modified: each weight
attack loads a fresh copy. With a ``folder``, each (model, measurement) is written as it
finishes and reused by the next audit with the same settings, so an interrupted audit resumes.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from obliviate import metrics
from obliviate.audit import probes
from obliviate.audit.config import ATTACKS, WEIGHT_ATTACKS, AuditConfig
from obliviate.audit.measure import measure_forget, model_utility, summarise
from obliviate.audit.quantize import QuantScheme, quantize_model
from obliviate.audit.relearn import halves, relearn
from obliviate.data.templates import template_of
from obliviate.errors import ConfigError, DataError
from obliviate.evaluate.tofu import EvalConfig

ROLES = ("target", "retain", "unlearned")
#: the layout of a saved measurement; a file of another layout is measured again
FORMAT = 2
DESCRIPTIONS = {
    "relearn": "fine-tuned on half of the forget set, judged on the other half",
    "relearn-benign": "fine-tuned on retain records only, judged on the held-out forget half",
    "quant8": "weights rounded to 8 bits",
    "quant4": "weights rounded to 4 bits",
    "paraphrase": "the benchmark's paraphrased questions",
    "fewshot": "retain question/answer examples before each forget question",
    "prefix": "the answer's first tokens given in the prompt; the rest scored",
    "cloze": "fill in the blank from the answer's first words; the rest scored",
}
#: what recovery is judged on. A prompt that hands the model part of the answer changes which
#: tokens are scored (and teacher-forced scoring already conditions on the true first tokens), so
#: ``prefix`` and ``cloze`` are judged on generation: ROUGE-L recall of the part the model must
#: produce, against the same recall in the model's answer to the plain question.
MEASURES = {"prefix": "rougeL", "cloze": "rougeL"}
#: a model closer than this to the target (in probability or ROUGE-L, both in [0, 1]) forgot
#: nothing measurable: its recovery is not defined
MIN_GAP = 0.05
Log = Callable[[str], None]


@dataclass
class AuditInputs:
    """What the attacks need. ``models``: role -> folder (``target`` and ``unlearned`` required).
    ``retain_records``: the training retain set (benign relearning and few-shot examples);
    ``utility_splits``: the evaluation splits model utility reads; ``shared_folder``: where the
    target's and retain model's measurements are kept for the next audit against them."""

    models: Mapping[str, str]
    tokenizer: Any
    forget: Sequence[Mapping]
    retain_records: Sequence[Mapping]
    utility_splits: Mapping[str, Sequence[Mapping]]
    eval_config: EvalConfig
    max_new_tokens: int
    learning_rate: float
    learning_rate_from: str
    seed: int = 0
    dtype: str = "float32"
    trust_remote_code: bool = False
    #: where the target's and retain model's measurements are shared between audits (None: not)
    shared_folder: Path | None = None


def load_plain(path: str, *, dtype: str, trust_remote_code: bool) -> Any:
    """A model as an attacker holding its files would use it: a LoRA adapter merged into its base
    (peft's ``merge_and_unload``), anything else as :func:`~obliviate.models.loading.load_model`
    builds it (composed ULD/Offset models, EUL adapters)."""
    from obliviate.models.loading import load_model

    folder = Path(path)
    if (folder / "adapter_config.json").is_file() and not (folder / "config.json").is_file():
        from peft import PeftModel

        base = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))["base_model_name_or_path"]
        base_model = load_model(base, dtype=dtype, trust_remote_code=trust_remote_code)
        return PeftModel.from_pretrained(base_model, str(folder)).merge_and_unload()
    return load_model(path, dtype=dtype, trust_remote_code=trust_remote_code)


def _fingerprints(inputs: AuditInputs, config: AuditConfig) -> dict[str, dict[str, Any]]:
    """What each saved measurement depends on (the common inputs, plus its attack's settings):
    a file is reused only when all of it is equal."""
    def digest(records: Sequence[Mapping]) -> str:
        pairs = [[r.get("question"), r.get("answer"), r.get("text")] for r in records]
        return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16]

    common = {"format": FORMAT, "forget_sha256": digest(inputs.forget),
              "retain_sha256": digest(inputs.retain_records), "seed": inputs.seed, "dtype": inputs.dtype,
              "max_new_tokens": inputs.max_new_tokens, "max_length": inputs.eval_config.max_length,
              "template": template_of(inputs.tokenizer).name}
    relearning = {"steps": config.relearn_steps, "batch_size": config.relearn_batch_size,
                  "learning_rate": inputs.learning_rate}
    own = {"relearn": relearning, "relearn-benign": {**relearning, "retain_records": len(inputs.retain_records)},
           "quant8": {"group_size": config.quant8_group_size}, "quant4": {"group_size": config.quant4_group_size},
           "fewshot": {"k": config.fewshot_k, "retain_records": len(inputs.retain_records)},
           "prefix": {"fraction": config.prefix_fraction}, "cloze": {"fraction": config.prefix_fraction}}
    names = ("standard", "utility", *ATTACKS)
    return {name: {**common, **({"attack": own[name]} if name in own else {})} for name in names}


def model_identity(path: str) -> Any:
    """What tells two saves at one path apart: name, size and modification time of each weight and
    config file of a folder (a hub id stands for itself)."""
    folder = Path(path)
    if not folder.is_dir():
        return str(path)
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in sorted(folder.iterdir())
            if f.is_file() and f.suffix in (".safetensors", ".json")]


class _Parts:
    """Measurements saved one file each (``<role>-<name>.json``), reused when their fingerprint
    matches. The target's and retain model's are also kept in ``shared`` (the model cache), keyed
    by their fingerprint, so every run audited against the same two models measures them once."""

    SHARED_ROLES = ("target", "retain")

    def __init__(self, folder: Path | None, fingerprints: dict[str, dict[str, Any]], log: Log,
                 identities: dict[str, Any], shared: Path | None = None):
        self.folder, self.fingerprints, self.log = folder, fingerprints, log
        self.identities, self.shared = identities, shared

    def _wanted(self, role: str, name: str) -> dict[str, Any]:
        fingerprint = {**self.fingerprints[name], "role": role, "model": self.identities[role]}
        return json.loads(json.dumps(fingerprint))  # as it reads back from a file

    @staticmethod
    def _read(path: Path, wanted: dict[str, Any]) -> dict[str, Any] | None:
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if isinstance(saved, dict) and saved.get("fingerprint") == wanted and "result" in saved:
            return saved["result"]
        return None

    def get(self, role: str, name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        from obliviate.io import write_json_atomic

        wanted = self._wanted(role, name)
        places = []
        if self.folder is not None:
            places.append(self.folder / f"{role}-{name}.json")
        if self.shared is not None and role in self.SHARED_ROLES:
            key = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:24]
            places.append(self.shared / f"{role}-{name}-{key}.json")
        for path in places:
            result = self._read(path, wanted) if path.is_file() else None
            if result is not None:
                self.log(f"  {role} / {name}: reusing {path}")
                for other in places:
                    if other != path and self._read(other, wanted) is None:
                        write_json_atomic(other, {"fingerprint": wanted, "result": result})
                return result
        result = compute()
        for path in places:
            write_json_atomic(path, {"fingerprint": wanted, "result": result})
        return result


def run_audit(inputs: AuditInputs, config: AuditConfig, *, folder: Path | None = None, log: Log = print,
              show_progress: bool = True) -> dict[str, Any]:
    """Every attack of ``config`` on every model of ``inputs``; returns the audit's summary."""
    started = time.perf_counter()
    missing = [r for r in ("target", "unlearned") if not inputs.models.get(r)]
    if missing:
        raise ConfigError(f"audit: the audit needs a {missing[0]} model")
    roles = [r for r in ROLES if inputs.models.get(r)]
    attacks = list(config.attacks)
    identities = {role: model_identity(inputs.models[role]) for role in roles}
    parts = _Parts(folder, _fingerprints(inputs, config), log, identities, inputs.shared_folder)
    ev, tok = inputs.eval_config, inputs.tokenizer
    train_half, held_half = halves(len(inputs.forget), inputs.seed)
    probe_items = _probe_items(inputs, config, attacks)
    timings: dict[str, float] = {}

    def load(role: str) -> Any:
        return load_plain(inputs.models[role], dtype=inputs.dtype, trust_remote_code=inputs.trust_remote_code)

    def forget(model: Any, items: Sequence[probes.ProbeItem], desc: str) -> dict[str, Any]:
        return measure_forget(model, tok, items, ev, max_new_tokens=inputs.max_new_tokens, desc=desc,
                              show_progress=show_progress)

    def weighted(model: Any, items: Sequence[probes.ProbeItem], desc: str, **info: Any) -> dict[str, Any]:
        out = forget(model, items, desc)
        out["model_utility"] = model_utility(model, tok, inputs.utility_splits, ev, show_progress=show_progress)
        return {**out, **info}

    standard_items = probes.standard(inputs.forget)
    held_items = [standard_items[i] for i in held_half]

    def attacked(role: str, attack: str) -> dict[str, Any]:
        """A fresh copy of the model, attacked and measured (the saved files are only read)."""
        model = load(role)
        if attack in ("quant8", "quant4"):
            done = quantize_model(model, quant_scheme(attack, config))
            return weighted(model, standard_items, attack, quantised=done)
        source = [inputs.forget[i] for i in train_half] if attack == "relearn" else list(inputs.retain_records)
        model = relearn(model, tok, source, steps=config.relearn_steps, batch_size=config.relearn_batch_size,
                        learning_rate=inputs.learning_rate, max_length=ev.max_length, seed=inputs.seed,
                        show_progress=show_progress)
        return weighted(model, held_items, attack, trained_on=len(source))

    measured: dict[str, dict[str, Any]] = {role: {} for role in roles}
    for role in roles:
        clock = time.perf_counter()
        log(f"auditing the {role} model ({inputs.models[role]})")
        cache: dict[str, Any] = {}

        def loaded() -> Any:
            if "model" not in cache:
                cache["model"] = load(role)
            return cache["model"]

        measured[role]["standard"] = parts.get(role, "standard", lambda: forget(loaded(), standard_items, "forget"))
        if any(a in WEIGHT_ATTACKS for a in attacks):
            measured[role]["utility"] = parts.get(role, "utility", lambda: {
                "model_utility": model_utility(loaded(), tok, inputs.utility_splits, ev, show_progress=show_progress)})
        for attack in attacks:
            if attack in probes.PROBES:
                measured[role][attack] = parts.get(role, attack, lambda a=attack: forget(loaded(), probe_items[a], a))
        cache.clear()
        for attack in attacks:
            if attack in WEIGHT_ATTACKS:
                measured[role][attack] = parts.get(role, attack, lambda a=attack: attacked(role, a))
        timings[role] = round(time.perf_counter() - clock, 2)

    results = {attack: _judge(attack, measured, roles, held_half, config, inputs) for attack in attacks}
    return {"attacks": results, "config": asdict(config), "roles": roles,
            "relearn": {"learning_rate": inputs.learning_rate, "learning_rate_from": inputs.learning_rate_from,
                        "held_out": len(held_half), "trained_on": len(train_half)},
            "timings": {**timings, "total": round(time.perf_counter() - started, 2)}}


def quant_scheme(attack: str, config: AuditConfig) -> QuantScheme:
    """``quant8``: symmetric, per output channel by default; ``quant4``: asymmetric, groups of 128."""
    if attack == "quant8":
        return QuantScheme(8, config.quant8_group_size, symmetric=True)
    return QuantScheme(4, config.quant4_group_size, symmetric=False)


def _probe_items(inputs: AuditInputs, config: AuditConfig, attacks: Sequence[str]) -> dict[str, list]:
    items: dict[str, list] = {}
    if "paraphrase" in attacks:
        items["paraphrase"] = probes.paraphrase(inputs.forget)
    if "fewshot" in attacks:
        try:
            items["fewshot"] = probes.fewshot(inputs.forget, inputs.retain_records, k=config.fewshot_k,
                                              seed=inputs.seed)
        except ValueError as exc:
            raise DataError(f"audit: {exc}; lower audit.fewshot_k") from None
    if "prefix" in attacks:
        items["prefix"] = probes.prefix(inputs.forget, inputs.tokenizer, fraction=config.prefix_fraction,
                                        max_length=inputs.eval_config.max_length)
    if "cloze" in attacks:
        items["cloze"] = probes.cloze(inputs.forget, fraction=config.prefix_fraction)
    empty = [name for name, found in items.items() if not found]
    if empty:
        raise DataError(f"audit: the {empty[0]} probe found no usable forget record"
                        + (" (none has a paraphrased_question)" if empty[0] == "paraphrase" else "")
                        + "; leave it out of --attacks")
    return items


def recovery_of(result: Mapping[str, Any], role: str) -> float | None:
    """``role``'s recovery in one attack's result (its ``measure``, before and after, against the
    un-attacked target's value); None when the audit had no such model."""
    measure, models = result.get("measure", "prob"), result["models"]
    if role not in models:
        return None
    nan = float("nan")
    return metrics.recovery(models[role]["after"].get(measure, nan), models[role]["before"].get(measure, nan),
                            models["target"]["before"].get(measure, nan), min_gap=MIN_GAP)


def _numbers(summary: Mapping[str, Any], utility: float | None = None) -> dict[str, Any]:
    out = {k: summary[k] for k in ("n", "prob", "rougeL", "truth_ratio") if k in summary}
    if utility is not None:
        out["model_utility"] = utility
    return out


def _judge(attack: str, measured: Mapping[str, Mapping[str, Any]], roles: Sequence[str], held: Sequence[int],
           config: AuditConfig, inputs: AuditInputs) -> dict[str, Any]:
    """Before and after for each model on the attack's items, and the recoveries."""
    measure = MEASURES.get(attack, "prob")
    per_model = {}
    for role in roles:
        after = measured[role][attack]
        standard = {row["index"]: row for row in measured[role]["standard"]["items"]}
        before_rows = [standard[row["index"]] for row in after["items"] if row["index"] in standard]
        if measure == "rougeL":  # the standard answer's recall of the same reference part
            references = {row["index"]: row["reference"] for row in after["items"]}
            recalls = metrics.rouge_l_recall([r["generation"] for r in before_rows],
                                             [references[r["index"]] for r in before_rows])
            before_rows = [{**r, "rougeL": float(x)} for r, x in zip(before_rows, recalls)]
        utility = measured[role].get("utility", {}).get("model_utility") if attack in WEIGHT_ATTACKS else None
        per_model[role] = {"before": _numbers(summarise(before_rows), utility),
                           "after": _numbers(after, after.get("model_utility"))}
    out = {"description": DESCRIPTIONS[attack], "measure": measure,
           "items": per_model["unlearned"]["after"].get("n", 0), "models": per_model}
    out["recovery"], out["retain_recovery"] = recovery_of(out, "unlearned"), recovery_of(out, "retain")
    after = measured["unlearned"][attack]
    if "quantised" in after:
        out["quantised"] = after["quantised"]
    if attack.startswith("relearn"):
        out["relearning"] = {"steps": config.relearn_steps, "batch_size": config.relearn_batch_size,
                             "learning_rate": inputs.learning_rate, "trained_on": after.get("trained_on"),
                             "judged_on": len(held)}
    return out


__all__ = ["ATTACKS", "AuditInputs", "DESCRIPTIONS", "ROLES", "load_plain", "recovery_of", "run_audit"]
