"""Shared test setup: CPU, one thread, no hub, no progress bars, a per-session model cache.

The tiny test-size target and retain models are trained once per session (about 40 s on one
thread) and shared by every integration test.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["OBLIVIATE_PROGRESS"] = "0"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402

TEST_OVERRIDES = [
    "benchmark.size=test",
    # The test-size forget set has 20 records (2 steps per epoch at batch 16): smaller batches and
    # a higher rate give the same effect as the default recipe in a couple of seconds. A fixed
    # number of epochs: at test size the default recipe's until_unseen schedule would run to its
    # cap, checking every epoch (test_until_unseen.py runs it).
    "schedule=epochs", "schedule.epochs=20", "training.learning_rate=5e-4", "training.batch_size=8",
    # the audit has its own tests (test_audit.py); other pipeline tests skip it
    "audit.after_run=false",
]


@pytest.fixture(scope="session", autouse=True)
def _session_env(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    os.environ["OBLIVIATE_CACHE"] = str(tmp_path_factory.mktemp("obliviate-cache"))
    yield


@pytest.fixture(scope="session")
def tiny_models(_session_env):
    from obliviate.benchmarks.authors import ensure_models

    return ensure_models("forget10", "test", show_progress=False, log=lambda *_: None)


@pytest.fixture(scope="session")
def tiny_data():
    from obliviate.benchmarks.authors import load

    return load("forget10", "test")


@pytest.fixture(scope="session")
def tokenizer(tiny_models):
    from obliviate.models.loading import load_tokenizer

    return load_tokenizer(tiny_models.target)


@pytest.fixture(scope="session")
def retain_eval(tiny_models, tiny_data):
    from obliviate.evaluate.tofu import EvalConfig, evaluate_model
    from obliviate.models.loading import load_model, load_tokenizer

    return evaluate_model(load_model(tiny_models.retain), load_tokenizer(tiny_models.retain),
                          tiny_data.eval_splits, config=EvalConfig(max_new_tokens=tiny_data.max_new_tokens),
                          show_progress=False)


@pytest.fixture(scope="session")
def target_eval(tiny_models, tiny_data, tokenizer, retain_eval):
    from obliviate.evaluate.tofu import EvalConfig, evaluate_model
    from obliviate.models.loading import load_model

    return evaluate_model(load_model(tiny_models.target), tokenizer, tiny_data.eval_splits,
                          config=EvalConfig(max_new_tokens=tiny_data.max_new_tokens), retain_truth_ratios=retain_eval.splits["forget"].truth_ratios, show_progress=False)
