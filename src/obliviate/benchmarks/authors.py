"""The embedded ``authors`` benchmark: data, and the tiny target and retain models, cached.

The target model is trained on every trained author's QA and biography plus the general-knowledge
splits (never on the holdout authors); the retain model on the same minus the forget authors' QA
and biographies: the gold standard an unlearned model is compared with.

Two tasks: ``qa`` forgets the forget authors' QA records (TOFU's setting); ``passages`` forgets
their biographies as text records (verbatim memorisation, ICU's setting). Either way
:attr:`BenchmarkData.passages` carries the forget, retain and holdout biographies for text metrics.

Both models are cached under a hash of everything that determines them, so a second run (or a test
session) reuses them; concurrent runs build each missing model once (a file lock per entry).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from obliviate.benchmarks.base import BenchmarkData, BenchmarkSpec, register_benchmark
from obliviate.data.authors import SIZES, AuthorsConfig, build_authors, forget_retain_split
from obliviate.errors import ConfigError
from obliviate.io import atomic_directory, write_json_atomic
from obliviate.locks import file_lock
from obliviate.models.loading import quiet_transformers
from obliviate.models.tiny import TinyModelConfig, build_tiny_llama, train_tokenizer
from obliviate.train.finetune import FinetuneConfig, finetune

# Bump when the generator, tokenizer or training code changes what a cached model would be.
# 3: prompt and answer tokenised jointly (the answer's first word keeps its leading space).
CACHE_VERSION = 3
_FORGET = ("forget01", "forget05", "forget10")
TASKS = ("qa", "passages")
EVAL_RETAIN_MAX = 200  # like TOFU's retain_perturbed: a fixed subset keeps evaluation cheap
EVAL_RETAIN_PASSAGES_MAX = 50  # retain biographies scored by text metrics, evenly spaced
# Greedy generation budget: every answer of the generator is at most 15 tokens (11 at the default
# size) with the embedded tokenizer, so 32 never caps ROUGE-L and keeps evaluation cheap.
MAX_NEW_TOKENS = 32
# A cache entry's build record: written last inside the entry, its presence (matching the entry's
# settings) is what makes the entry trusted.
BUILD_RECORD = "obliviate_build.json"


# Model and training settings per size; "test" trades capacity for seconds (measured on 1 thread:
# ~19 s for the target, ~16 s for the retain model; "default": ~81 s and ~72 s).
MODEL_SETTINGS: dict[str, tuple[TinyModelConfig, FinetuneConfig]] = {
    "default": (TinyModelConfig(), FinetuneConfig()),
    "small": (TinyModelConfig(), FinetuneConfig()),
    "test": (TinyModelConfig(hidden_size=64, intermediate_size=192, vocab_size=1024),
             FinetuneConfig(epochs=60, learning_rate=1e-2, batch_size=32)),
}


def authors_config(size: str | AuthorsConfig, seed: int = 0) -> AuthorsConfig:
    if isinstance(size, AuthorsConfig):
        return size
    if size not in SIZES:
        raise ConfigError(f"benchmark size {size!r} is unknown; use one of {', '.join(SIZES)}")
    base = SIZES[size]
    return AuthorsConfig(**{**base.as_dict(), "seed": seed})


def _evenly_spaced(records: list[dict], k: int) -> list[dict]:
    n = len(records)
    return list(records) if n <= k else [records[i * n // k] for i in range(k)]


def _biographies(splits: dict[str, list[dict]], forget_qa: list[dict]) -> tuple[list, list, list]:
    """(forget, retain, holdout) biographies, each in author order."""
    forget_authors = {r["author"] for r in forget_qa}
    trained = [b for b in splits["biographies"] if b["split"] == "trained"]
    return ([b for b in trained if b["author"] in forget_authors],
            [b for b in trained if b["author"] not in forget_authors],
            [b for b in splits["biographies"] if b["split"] == "holdout"])


def load(forget_split: str, size: str | AuthorsConfig = "default", seed: int = 0, task: str = "qa",
         **_ignored) -> BenchmarkData:
    if task not in TASKS:
        raise ConfigError(f"task {task!r} is unknown for benchmark authors; use one of {', '.join(TASKS)}")
    config = authors_config(size, seed)
    splits = build_authors(config)
    forget_qa, retain_qa = forget_retain_split(splits["author_qa"], config, forget_split)
    forget_bios, retain_bios, holdout_bios = _biographies(splits, forget_qa)
    eval_retain = retain_qa[:: max(1, len(retain_qa) // EVAL_RETAIN_MAX)][:EVAL_RETAIN_MAX]
    forget, retain = (forget_qa, retain_qa) if task == "qa" else (forget_bios, retain_bios)
    return BenchmarkData(
        name="authors", forget_split=forget_split, forget=forget, retain=retain,
        eval_splits={"forget": forget_qa, "retain": eval_retain, "real_authors": splits["real_authors"],
                     "world_facts": splits["world_facts"]},
        holdout=splits["holdout"], info={"generator": config.as_dict(), "size": str(size), "task": task},
        passages={"forget": forget_bios, "retain": _evenly_spaced(retain_bios, EVAL_RETAIN_PASSAGES_MAX),
                  "holdout": holdout_bios},
        max_new_tokens=MAX_NEW_TOKENS)


register_benchmark(BenchmarkSpec(
    "authors", "embedded TOFU miniature: seeded fictitious authors, trains its own tiny models on CPU",
    _FORGET, load))


def cache_root() -> Path:
    """``$OBLIVIATE_CACHE``, else ``$XDG_CACHE_HOME/obliviate``, else ``~/.cache/obliviate``."""
    if os.environ.get("OBLIVIATE_CACHE"):
        return Path(os.environ["OBLIVIATE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "obliviate"


@dataclass(frozen=True)
class EmbeddedModels:
    target: Path
    retain: Path
    built: dict[str, float]  # seconds spent building each model this call (empty when cached)


def _key(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _tokenizer_corpus(splits: dict[str, list[dict]]) -> list[str]:
    texts = []
    for name in ("author_qa", "holdout", "real_authors", "world_facts"):
        for r in splits[name]:
            texts.append(f"Question: {r['question']}\nAnswer: ")
            texts.extend([r["answer"], r.get("paraphrased_answer", ""), *r.get("perturbed_answer", [])])
    texts.extend(b["text"] for b in splits["biographies"])
    return [t for t in texts if t]


def _lock_path(folder: Path) -> Path:
    """The lock file of a cache entry: a sibling ``<entry>.lock`` (kept; see :mod:`obliviate.locks`)."""
    return folder.with_name(f"{folder.name}.lock")


def read_build_record(folder: str | os.PathLike) -> dict | None:
    """A cache entry's build record, or None when it has none (or an unreadable one)."""
    try:
        record = json.loads((Path(folder) / BUILD_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _is_complete(folder: Path, expected: dict) -> bool:
    """Trust a cache entry only when its build record, written last, is there and matches ``expected``.

    Entries appear by an atomic rename, so a crash never leaves a half-written one under its own
    name; the record guards against anything else found there (a folder copied in part, or written
    by an older version that did not rename atomically).
    """
    record = read_build_record(folder)
    if record is None:
        return False
    expected = json.loads(json.dumps(expected))  # tuples become lists, as in the record
    return all(record.get(k) == v for k, v in expected.items())


def _remove_leftovers(folder: Path, log) -> None:
    """Remove temporary folders a crashed build of ``folder`` left (``.<entry>.*.tmp``).

    Called with the entry's lock held, so no live build of this entry owns them.
    """
    for tmp in folder.parent.glob(f".{folder.name}.*.tmp"):
        if tmp.is_dir():
            log(f"removing {tmp}, left by an interrupted build")
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def ensure_models(forget_split: str, size: str | AuthorsConfig = "default", seed: int = 0, *,
                  model_config: TinyModelConfig | None = None, finetune_config: FinetuneConfig | None = None,
                  retain_seed: int | None = None, show_progress: bool = True, log=print) -> EmbeddedModels:
    """Return folders of the target and retain models, training whichever is not cached.

    ``retain_seed`` trains the retain model with another initialisation and data-order seed (by
    default both models use the benchmark ``seed``): an independent retrain without the forget set,
    i.e. exact unlearning, whose forget quality against the default retain model is the most an
    unlearning method can be expected to reach on the instance (``bench/fq_ceiling.py``).

    Safe under concurrency: each entry is built under a file lock (``<entry>.lock``), so when
    several processes need the same missing model one trains it and the others wait (logging
    ``waiting for another process building <entry>``), then reuse it. An entry counts as cached
    only when its build record (``obliviate_build.json``, written last, carrying the builder's pid)
    is present and matches; anything else under its name is rebuilt.
    """
    config = authors_config(size, seed)
    default_model, default_finetune = MODEL_SETTINGS.get(str(size), MODEL_SETTINGS["default"])
    model_config = model_config or default_model
    finetune_config = finetune_config or default_finetune
    common = {"version": CACHE_VERSION, "generator": config.as_dict(), "model": model_config.as_dict(),
              "finetune": finetune_config.as_dict()}
    target_dir = cache_root() / "models" / f"authors-target-{_key(common)}"
    retain_common = {**common, "forget": forget_split}
    if retain_seed is not None and retain_seed != seed:  # the default retain model keeps its cache key
        retain_common["retain_seed"] = retain_seed
    retain_dir = cache_root() / "models" / f"authors-retain-{forget_split}-{_key(retain_common)}"
    built: dict[str, float] = {}
    expected = {"target": {**common, "role": "target"},
                "retain": {**common, "role": "retain", "forget_split": forget_split}}
    if "retain_seed" in retain_common:
        expected["retain"]["retain_seed"] = retain_seed
    model_seeds = {"target": seed, "retain": retain_common.get("retain_seed", seed)}
    if _is_complete(target_dir, expected["target"]) and _is_complete(retain_dir, expected["retain"]):
        return EmbeddedModels(target_dir, retain_dir, built)

    splits = build_authors(config)
    general = splits["real_authors"] + splits["world_facts"]
    forget_qa, retain_qa = forget_retain_split(splits["author_qa"], config, forget_split)
    _, retain_bios, _ = _biographies(splits, forget_qa)
    trained_bios = [b for b in splits["biographies"] if b["split"] == "trained"]
    tokenizer = None  # trained once, and only when a model has to be built (it is deterministic)
    for name, folder, records in (("target", target_dir, splits["author_qa"] + general + trained_bios),
                                  ("retain", retain_dir, retain_qa + general + retain_bios)):
        if _is_complete(folder, expected[name]):
            continue
        with file_lock(_lock_path(folder), log=log, waiting=f"waiting for another process building {folder}"):
            if _is_complete(folder, expected[name]):  # another process built it while we waited
                builder = (read_build_record(folder) or {}).get("builder") or {}
                log(f"reusing the embedded {name} model another process built "
                    f"(pid {builder.get('pid', '?')}, cached in {folder})")
                continue
            _remove_leftovers(folder, log)
            log(f"building the embedded {name} model ({len(records)} records: QA pairs and biographies, "
                f"cached in {folder})")
            started = time.perf_counter()
            if tokenizer is None:
                quiet_transformers()  # its per-file bars ("Writing model shards"), as when loading
                tokenizer = train_tokenizer(_tokenizer_corpus(splits), vocab_size=model_config.vocab_size)
            model = build_tiny_llama(tokenizer, model_config, seed=model_seeds[name])
            model = finetune(model, tokenizer, records, finetune_config, seed=model_seeds[name],
                             show_progress=show_progress)
            seconds = round(time.perf_counter() - started, 2)
            # Anything found under the entry's name was not trusted above, so it is replaced. The
            # build record is written last: inside the temporary folder, then the folder is renamed.
            with atomic_directory(folder, overwrite=True) as tmp:
                model.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
                write_json_atomic(tmp / BUILD_RECORD, {
                    **expected[name], "forget_split": forget_split, "n_train_records": len(records),
                    "builder": {"pid": os.getpid(), "host": socket.gethostname(), "seconds": seconds}})
            built[name] = round(time.perf_counter() - started, 2)
    return EmbeddedModels(target_dir, retain_dir, built)


__all__ = ["BUILD_RECORD", "EmbeddedModels", "authors_config", "cache_root", "ensure_models", "load",
           "read_build_record"]
