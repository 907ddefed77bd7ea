"""Ext-Sub (Extraction-before-Subtraction, arXiv 2308.08090) on two PEFT adapters.

An expert adapter (trained on good data) and an anti-expert (same PEFT config, deficient data, e.g.
untruthful or toxic) are merged into full deltas; per output row the anti-expert is split into the part
it shares with the expert (its projection on the bisector of the two rows) and an orthogonal
"deficiency" remainder, and only the remainder is subtracted. See
the project's method spec (``spec/methods-extsub-eul-icu.md`` §1.2) for the reference operation and the deviations
documented below (eps in the norms, vectorised rows, LoRA scaling folded in, rank handling, IA3 α).

Orientation: every LoRA delta here is ``scaling · B @ A`` of shape (out, in), one row per output neuron,
as the spec's row-wise rule requires, also for GPT-2 ``Conv1D`` (``fan_in_fan_out``) modules, whose base
weight is stored (in, out): :func:`merge_into_model` transposes there, and a LoRA written back needs
(out, in) anyway (peft keeps ``lora_B`` out×r, ``lora_A`` r×in for Conv1D too).
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from obliviate.errors import ConfigError

OPS = ("ext-sub", "subtraction", "addition")
_PREFIX = "base_model.model."


def _unit(x: torch.Tensor, eps: float) -> torch.Tensor:
    return x / (x.norm(dim=-1, keepdim=True) + eps)


def extract_subtract(w_plus: torch.Tensor, w_minus: torch.Tensor, alpha: float, eps: float = 1e-8) -> torch.Tensor:
    """Row-wise Ext-Sub: ``W+ − α·(W- − P)`` with ``P = ⟨W-, E⟩E`` and ``E`` the per-row bisector
    ``normalize(normalize(W+) + normalize(W-))`` (spec §1.2 step 2). ``eps`` in the norms makes zero rows
    and opposite rows (``u+ = −u-``) give ``E = 0``, i.e. plain subtraction, instead of NaN."""
    wp, wm = w_plus.float(), w_minus.float()
    e = _unit(_unit(wp, eps) + _unit(wm, eps), eps)
    p = (wm * e).sum(-1, keepdim=True) * e
    return wp - alpha * (wm - p)


def subtract(w_plus: torch.Tensor, w_minus: torch.Tensor, alpha: float) -> torch.Tensor:
    """Plain negation of the anti-expert: ``W+ − αW-``."""
    return w_plus.float() - alpha * w_minus.float()


def add(w_plus: torch.Tensor, w_minus: torch.Tensor, alpha: float) -> torch.Tensor:
    """``W+ + αW-``."""
    return w_plus.float() + alpha * w_minus.float()


_OPS = {"ext-sub": extract_subtract, "subtraction": subtract, "addition": add}


def _load(adapter_dir) -> tuple[dict, dict[str, torch.Tensor]]:
    d = Path(adapter_dir)
    cfg_p, w_p = d / "adapter_config.json", d / "adapter_model.safetensors"
    if not cfg_p.is_file() or not w_p.is_file():
        raise ConfigError(f"{d}: expected adapter_config.json and adapter_model.safetensors (a PEFT save_pretrained folder)")
    return json.loads(cfg_p.read_text()), load_file(str(w_p))


def lora_deltas(adapter_dir) -> tuple[dict[str, torch.Tensor], dict]:
    """``{module prefix: scaling · B @ A}`` in fp32, shape (out, in), plus the adapter config dict.

    ``scaling = lora_alpha / r`` (``/ sqrt(r)`` with ``use_rslora``), per-module ``rank_pattern`` /
    ``alpha_pattern`` honoured. The reference leaves the scaling in the config; folding it in lets
    adapters with different alphas combine correctly and changes nothing when they share it."""
    cfg, sd = _load(adapter_dir)
    if cfg.get("peft_type") != "LORA":
        raise ConfigError(f"{adapter_dir}: peft_type {cfg.get('peft_type')!r} is not LORA")
    if cfg.get("use_dora"):
        raise ConfigError(f"{adapter_dir}: DoRA adapters are not supported by Ext-Sub (magnitude vectors are not linear)")
    out = {}
    for key in sorted(sd):
        if not key.endswith(".lora_A.weight"):
            continue
        prefix = key[: -len(".lora_A.weight")]
        path = prefix.removeprefix(_PREFIX)
        r = _pattern(cfg.get("rank_pattern") or {}, path, cfg["r"])
        a = _pattern(cfg.get("alpha_pattern") or {}, path, cfg["lora_alpha"])
        s = a / math.sqrt(r) if cfg.get("use_rslora") else a / r
        out[prefix] = s * (sd[prefix + ".lora_B.weight"].float() @ sd[key].float())
    return out, cfg


def _pattern(patterns: dict, path: str, default):
    for k, v in patterns.items():
        if re.match(rf"(.*\.)?({k})$", path):
            return v
    return default


def ia3_vectors(adapter_dir) -> tuple[dict[str, torch.Tensor], dict]:
    """``{module prefix: l}`` (stored shape, fp32) and the config of an IA3 adapter."""
    cfg, sd = _load(adapter_dir)
    if cfg.get("peft_type") != "IA3":
        raise ConfigError(f"{adapter_dir}: peft_type {cfg.get('peft_type')!r} is not IA3")
    return {k[: -len(".ia3_l")]: v.float() for k, v in sd.items() if k.endswith(".ia3_l")}, cfg


def ia3_combine(l_plus: torch.Tensor, l_minus: torch.Tensor, alpha: float, op: str = "ext-sub", eps: float = 1e-8) -> torch.Tensor:
    """IA3 with the LoRA rule on ``δ = l − 1`` over the whole vector: ext-sub ``1 + δ+ − α(δ- − ⟨δ-,e⟩e)``,
    subtraction ``1 + δ+ − αδ-``, addition ``1 + δ+ + αδ-``. The reference branch is inconsistent (its
    ext-sub puts α on the projection only, its subtraction is centred at 2, its addition ignores α;
    spec §1.2): we use one α, as for LoRA."""
    dp, dm = (l_plus.float() - 1).reshape(1, -1), (l_minus.float() - 1).reshape(1, -1)
    fn = _OPS[op]
    res = fn(dp, dm, alpha, eps) if op == "ext-sub" else fn(dp, dm, alpha)
    return (1 + res).reshape(l_plus.shape)


def _norm(t):
    return tuple(sorted(t)) if isinstance(t, (list, tuple)) else t


def combine_adapters(expert_dir, anti_dir, *, alpha: float = 1.0, op: str = "ext-sub",
                     allow_base_mismatch: bool = False, eps: float = 1e-8) -> dict[str, torch.Tensor]:
    """Combine an expert and an anti-expert adapter module by module (LoRA deltas or IA3 vectors).

    The reference asserts the two share one PEFT config (spec §1.1); we refuse, with a one-line
    ConfigError, different types, targets, module sets, shapes, ``fan_in_fan_out``, or base models
    (when both name one; ``allow_base_mismatch=True`` skips that check)."""
    if op not in OPS:
        raise ConfigError(f"Ext-Sub op {op!r} unknown; use one of {', '.join(OPS)}")
    cp, cm = _load(expert_dir)[0], _load(anti_dir)[0]
    kind = cp.get("peft_type")
    if kind != cm.get("peft_type") or kind not in ("LORA", "IA3"):
        raise ConfigError(f"Ext-Sub needs two LORA or two IA3 adapters, got {kind} and {cm.get('peft_type')}")
    for field in ("target_modules", "feedforward_modules", "fan_in_fan_out"):
        a, b = _norm(cp.get(field)), _norm(cm.get(field))
        if a != b:
            raise ConfigError(f"Ext-Sub adapters differ in {field}: {a} vs {b}; train both with one PEFT config")
    bp, bm = cp.get("base_model_name_or_path"), cm.get("base_model_name_or_path")
    if bp and bm and bp != bm and not allow_base_mismatch:
        raise ConfigError(f"Ext-Sub adapters have different base models ({bp} vs {bm}); pass allow_base_mismatch=True if intended")
    (xp, _), (xm, _) = (lora_deltas(expert_dir), lora_deltas(anti_dir)) if kind == "LORA" else (ia3_vectors(expert_dir), ia3_vectors(anti_dir))
    if set(xp) != set(xm):
        raise ConfigError(f"Ext-Sub adapters adapt different modules: {sorted(set(xp) ^ set(xm))[:3]} ...")
    for k in xp:
        if xp[k].shape != xm[k].shape:
            raise ConfigError(f"Ext-Sub module {k}: shapes {tuple(xp[k].shape)} vs {tuple(xm[k].shape)}")
    if kind == "IA3":
        return {k: ia3_combine(xp[k], xm[k], alpha, op, eps) for k in xp}
    fn = _OPS[op]
    return {k: fn(xp[k], xm[k], alpha, eps) if op == "ext-sub" else fn(xp[k], xm[k], alpha) for k in xp}


def _is_conv1d(module) -> bool:
    return type(module).__name__ == "Conv1D"  # transformers.pytorch_utils.Conv1D stores (in, out)


@torch.no_grad()
def merge_into_model(model, deltas: dict[str, torch.Tensor], *, ia3: bool = False):
    """Fold the combined result into the base model in place and return it (``save_pretrained`` it as a
    full model). LoRA: ``W += ΔW`` in fp32, cast back; IA3 (``ia3=True``): ``W *= l`` (stored shape
    (out, 1) scales rows, (1, in) columns). Keys ``base_model.model.<path>`` map to ``get_submodule(<path>)``."""
    for key, d in deltas.items():
        mod = model.get_submodule(key.removeprefix(_PREFIX))
        w = mod.weight
        d = d.float().T if _is_conv1d(mod) else d.float()
        new = w.float() * d if ia3 else w.float() + d
        if new.shape != w.shape:
            raise ConfigError(f"Ext-Sub module {key}: result {tuple(new.shape)} does not fit weight {tuple(w.shape)}")
        w.copy_(new.to(w.dtype))
    return model


def deltas_to_lora(deltas: dict[str, torch.Tensor], rank: int | None = None) -> tuple[dict, dict, dict]:
    """LoRA weights reproducing the deltas, with scaling 1 (``lora_alpha = r`` per module).

    ``rank=None``: exact, ``A = I_in``, ``B = ΔW``, ``r = in_features``. The reference sets ``r =
    out_features`` and so silently assumes square modules (spec §1.2 step 3); per-module ranks go into
    ``rank_pattern`` / ``alpha_pattern``. With a rank: SVD truncation ``B = U_r S_r``, ``A = V_rᵀ`` (a
    deviation), with the relative Frobenius error per module and overall in the report."""
    sd, ranks, errs, num, den = {}, {}, {}, 0.0, 0.0
    for key, d in deltas.items():
        d = d.float()
        if rank is None:
            a, b = torch.eye(d.shape[1]), d.clone()
        else:
            u, s, vh = torch.linalg.svd(d, full_matrices=False)
            k = max(1, min(rank, s.numel()))
            b, a = u[:, :k] * s[:k], vh[:k].contiguous()
        sq = float((d - b @ a).pow(2).sum())
        num, den = num + sq, den + float(d.pow(2).sum())
        errs[key] = math.sqrt(sq / max(float(d.pow(2).sum()), 1e-30))
        sd[f"{key}.lora_A.weight"], sd[f"{key}.lora_B.weight"] = a.contiguous(), b.contiguous()
        ranks[re.escape(key.removeprefix(_PREFIX))] = a.shape[0]
    r0 = max(ranks.values()) if ranks else 1
    updates = {"r": r0, "lora_alpha": r0, "rank_pattern": ranks, "alpha_pattern": dict(ranks),
               "use_rslora": False, "use_dora": False}
    report = {"rank": rank, "module_rel_error": errs, "rel_error": math.sqrt(num / max(den, 1e-30))}
    return sd, updates, report


def save_lora(deltas: dict[str, torch.Tensor], expert_dir, out_dir, rank: int | None = None) -> dict:
    """Write a LoRA adapter (expert's config and targets, updated r / alpha / patterns) that
    ``PeftModel.from_pretrained(base, out_dir)`` loads; returns the :func:`deltas_to_lora` report."""
    cfg, _ = _load(expert_dir)
    sd, updates, report = deltas_to_lora(deltas, rank)
    if not cfg.get("target_modules"):
        cfg["target_modules"] = sorted({k.rsplit(".", 1)[-1] for k in deltas})
    cfg.update(updates)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
    save_file(sd, str(out / "adapter_model.safetensors"))
    return report


def save_ia3(vectors: dict[str, torch.Tensor], expert_dir, out_dir) -> None:
    """Write combined IA3 vectors as an adapter with the expert's config and key names."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(expert_dir) / "adapter_config.json", out / "adapter_config.json")
    save_file({f"{k}.ia3_l": v.contiguous() for k, v in vectors.items()}, str(out / "adapter_model.safetensors"))
