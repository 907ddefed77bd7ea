"""TOFU (locuslab/TOFU) from the hub or a local folder of its files."""

from __future__ import annotations

from obliviate.benchmarks.base import BenchmarkData, BenchmarkSpec, register_benchmark
from obliviate.data.tofu import TOFU_HUB_ID, holdout_config_for, load_tofu, retain_config_for
from obliviate.errors import ConfigError

# TOFU evaluates retain utility on its 400-question retain_perturbed subset.
_FORGET = ("forget01", "forget05", "forget10")
# TOFU's and open-unlearning's generation budget: 73 % of TOFU's forget answers are longer than 32
# tokens, so a smaller budget caps ROUGE-L.
MAX_NEW_TOKENS = 200


def load(forget_split: str, source: str | None = None, task: str = "qa", **_ignored) -> BenchmarkData:
    if task != "qa":
        raise ConfigError(f"benchmark tofu has only the task 'qa', not {task!r}; "
                          "the embedded 'authors' benchmark also has 'passages'")
    if forget_split not in _FORGET:
        # checked here too, for callers that skip load_benchmark: one line, before any download
        raise ConfigError(f"forget split {forget_split!r} is not one of tofu's: {', '.join(_FORGET)}")
    src = source or TOFU_HUB_ID
    eval_splits = {
        "forget": load_tofu(f"{forget_split}_perturbed", src),
        "retain": load_tofu("retain_perturbed", src),
        "real_authors": load_tofu("real_authors_perturbed", src),
        "world_facts": load_tofu("world_facts_perturbed", src),
    }
    return BenchmarkData(
        name="tofu", forget_split=forget_split, forget=load_tofu(forget_split, src),
        retain=load_tofu(retain_config_for(forget_split), src), eval_splits=eval_splits,
        holdout=load_tofu(holdout_config_for(forget_split), src), info={"source": str(src)},
        max_new_tokens=MAX_NEW_TOKENS)


register_benchmark(BenchmarkSpec(
    "tofu", "TOFU: 200 fictitious authors, forget01/05/10 (hub id locuslab/TOFU or a local folder)",
    _FORGET, load))
