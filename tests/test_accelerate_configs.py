"""The Accelerate launch configs in ``configs/accelerate/`` (docs/scaling.md), checked without a GPU.

Each YAML goes through the code ``accelerate launch --config_file FILE`` runs before it starts any
process: accelerate's config loader, its launch-argument validation (``_validate_launch_command``)
and the environment it hands to the processes (``prepare_multi_gpu_env`` /
``prepare_deepspeed_cmd_env``). From that environment the FSDP and DeepSpeed plugins are built the
way ``Accelerator`` builds them in each process. What needs GPUs and a process group (wrapping the
model with ``fully_shard``, ``deepspeed.initialize``, NCCL) is not done here; the two-process CPU
run of obliviate itself is ``tests/test_multiprocess.py``.

The launch helpers are accelerate internals (checked against accelerate 1.15): a failure after an
accelerate upgrade means the configs need another look, not necessarily that they are wrong.
"""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "accelerate"

# file stem -> distributed_type the file must declare
EXPECTED = {
    "ddp": "MULTI_GPU",
    "fsdp": "FSDP",
    "deepspeed_zero2": "DEEPSPEED",
    "deepspeed_zero3": "DEEPSPEED",
    "cpu_2proc": "MULTI_CPU",
}
GPU_CONFIGS = [name for name, kind in EXPECTED.items() if kind != "MULTI_CPU"]
DEEPSPEED_CONFIGS = [name for name, kind in EXPECTED.items() if kind == "DEEPSPEED"]


def _path(name: str) -> Path:
    return CONFIG_DIR / f"{name}.yaml"


def _load(name: str):
    from accelerate.commands.config.config_args import load_config_from_file

    return load_config_from_file(str(_path(name)))


def _launch_args(name: str, *flags: str):
    """``accelerate launch --config_file FILE [flags] -m obliviate unlearn``, parsed and validated as
    accelerate does before it picks a launcher; returns (args, config, mixed precision from config)."""
    from accelerate.commands.launch import (
        _validate_launch_command,
        launch_command_parser,
    )

    parsed = launch_command_parser().parse_args(["--config_file", str(_path(name)), *flags,
                                                 "-m", "obliviate", "unlearn"])
    return _validate_launch_command(parsed)


def test_every_config_file_is_checked():
    assert sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")) == sorted(EXPECTED)
    assert not list(CONFIG_DIR.glob("*.yml"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_parses_and_says_what_it_is(name):
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.utils import ComputeEnvironment, DistributedType

    config = _load(name)
    assert isinstance(config, ClusterConfig)
    assert config.compute_environment == ComputeEnvironment.LOCAL_MACHINE
    assert config.distributed_type == DistributedType[EXPECTED[name]]
    assert config.num_machines == 1
    if name in GPU_CONFIGS:
        assert config.mixed_precision == "bf16"
        assert config.num_processes == 8 and config.use_cpu is False
    else:
        assert config.mixed_precision == "no"
        assert config.num_processes == 2 and config.use_cpu is True
    # a comment header that says how to launch this very file
    text = _path(name).read_text(encoding="utf-8")
    assert text.startswith("#")
    assert f"accelerate launch --config_file configs/accelerate/{name}.yaml" in text


@pytest.mark.parametrize("name", GPU_CONFIGS)
def test_gpu_config_selects_its_launcher(name):
    args, _, _ = _launch_args(name)
    assert args.num_processes == 8 and args.mixed_precision == "bf16"
    kind = EXPECTED[name]
    assert bool(args.use_deepspeed) == (kind == "DEEPSPEED")
    assert bool(args.use_fsdp) == (kind == "FSDP")
    assert bool(args.multi_gpu) == (kind == "MULTI_GPU")


def test_cpu_config_needs_the_torchrun_launcher_for_two_processes():
    """MULTI_CPU from a config file alone goes to accelerate's simple launcher, which starts ONE
    process unless an MPI hostfile is set; ``--multi_gpu`` selects the torchrun launcher, which
    starts ``num_processes`` of them (each then runs on CPU with gloo: obliviate sets use_cpu when
    CUDA is unavailable). The header of cpu_2proc.yaml says so."""
    from accelerate.utils.launch import prepare_multi_gpu_env

    args, _, _ = _launch_args("cpu_2proc")
    assert not (args.multi_gpu or args.use_fsdp or args.use_deepspeed)  # -> simple_launcher
    assert args.mpirun_hostfile is None                                  # -> one process

    args, _, _ = _launch_args("cpu_2proc", "--multi_gpu")
    assert args.multi_gpu and args.num_processes == 2 and args.mixed_precision == "no"
    with mock.patch.dict(os.environ):
        prepare_multi_gpu_env(args)
    assert args.nproc_per_node == "2"
    assert "--multi_gpu" in _path("cpu_2proc").read_text(encoding="utf-8")


def _fsdp_plugin():
    """The FSDP plugin each process builds from the environment ``accelerate launch`` gives it."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.launch import prepare_multi_gpu_env

    args, _, _ = _launch_args("fsdp")
    with mock.patch.dict(os.environ):  # the plugin also writes to os.environ; restored on exit
        env = prepare_multi_gpu_env(args)
        os.environ.update(env)  # a copy of os.environ plus what the launcher adds
        plugin = FullyShardedDataParallelPlugin()
        # Accelerator(mixed_precision="bf16") does this in each process
        plugin.set_mixed_precision(env["ACCELERATE_MIXED_PRECISION"])
    return env, plugin


def test_fsdp_plugin_builds_from_the_launch_environment():
    # Built on CPU: the plugin itself needs no GPU. Accelerator.prepare (fully_shard) needs an
    # initialised process group and a device, so the wrap is not done here.
    import torch
    from torch.distributed.fsdp import OffloadPolicy, StateDictType
    from torch.distributed.fsdp.wrap import transformer_auto_wrap_policy

    env, plugin = _fsdp_plugin()
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_VERSION"] == "2"
    assert plugin.fsdp_version == 2
    assert plugin.reshard_after_forward is True            # full shard
    assert plugin.auto_wrap_policy is transformer_auto_wrap_policy
    assert plugin.transformer_cls_names_to_wrap is None     # -> the model's _no_split_modules
    assert plugin.state_dict_type == StateDictType.SHARDED_STATE_DICT
    assert plugin.cpu_ram_efficient_loading is False        # every process loads the real weights
    assert type(plugin.cpu_offload) is OffloadPolicy        # no CPU offload
    assert plugin.mixed_precision_policy.param_dtype == torch.bfloat16


def test_fsdp_auto_wrap_finds_the_decoder_layers():
    """TRANSFORMER_BASED_WRAP without a class name wraps what the model lists in _no_split_modules:
    for Llama, each LlamaDecoderLayer (checked on a 2-layer model built here, no download)."""
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
    from transformers import LlamaConfig, LlamaForCausalLM

    _, plugin = _fsdp_plugin()
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=2, num_attention_heads=2,
                                         num_key_value_heads=2))
    policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
    wrapped = [name for name, module in model.named_modules() if policy(module)]
    assert wrapped == ["model.layers.0", "model.layers.1"]


def _deepspeed_plugin(name: str):
    """The DeepSpeed plugin each process builds from the launch environment (no deepspeed needed)."""
    from accelerate.utils import DeepSpeedPlugin
    from accelerate.utils.launch import prepare_deepspeed_cmd_env

    args, config, mixed_from_config = _launch_args(name)
    # launch_command sets this before it calls the DeepSpeed launcher
    args.deepspeed_fields_from_accelerate_config = ",".join(
        [*config.deepspeed_config, *(["mixed_precision"] if mixed_from_config else [])])
    with mock.patch.dict(os.environ):
        _, env = prepare_deepspeed_cmd_env(args)
        os.environ.update(env)  # a copy of os.environ plus what the launcher adds
        plugin = DeepSpeedPlugin()
        plugin.set_mixed_precision(env["ACCELERATE_MIXED_PRECISION"])  # as TrainingArguments does
    return env, plugin


@pytest.mark.parametrize("name", DEEPSPEED_CONFIGS)
def test_deepspeed_plugin_builds_from_the_launch_environment(name):
    stage = int(name[-1])
    env, plugin = _deepspeed_plugin(name)
    ds = plugin.deepspeed_config
    assert env["ACCELERATE_USE_DEEPSPEED"] == "true"
    assert plugin.zero_stage == stage and ds["zero_optimization"]["stage"] == stage
    assert ds["bf16"] == {"enabled": True} and ds["fp16"] == {"enabled": False}
    # left to Trainer, which fills them from the recipe: a number here that differs from
    # training.batch_size / gradient_accumulation_steps would make Trainer refuse the run
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
        assert ds[key] == "auto", key
    if stage == 3:
        assert plugin.zero3_init_flag is True
        assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    else:
        assert plugin.zero3_init_flag is False


@pytest.mark.parametrize("name", DEEPSPEED_CONFIGS)
def test_deepspeed_config_validates_with_deepspeed(name):
    """DeepSpeed's own config class accepts the config once Trainer has filled the "auto" values
    (here for one process: DeepSpeedConfig counts the world from torch.distributed, which is not
    initialised). deepspeed is not an obliviate dependency and CI does not install it."""
    pytest.importorskip("deepspeed", reason="deepspeed is not installed")
    from deepspeed.runtime.config import DeepSpeedConfig

    _, plugin = _deepspeed_plugin(name)
    ds = dict(plugin.deepspeed_config)
    per_device, accumulation = 4, 4
    ds.update(train_micro_batch_size_per_gpu=per_device, gradient_accumulation_steps=accumulation,
              train_batch_size=per_device * accumulation * 1, gradient_clipping=1.0)
    checked = DeepSpeedConfig(ds)
    assert checked.zero_optimization_stage == int(name[-1])
    assert checked.bfloat16_config.enabled and not checked.float16_config.enabled
    assert checked.zero_config.gather_16bit_weights_on_model_save == (name == "deepspeed_zero3")


def test_obliviate_training_arguments_agree_with_the_deepspeed_config(tmp_path):
    from obliviate.train.args import training_arguments

    env, plugin = _deepspeed_plugin("deepspeed_zero3")
    ds = plugin.deepspeed_config
    with mock.patch.dict(os.environ, {"ACCELERATE_MIXED_PRECISION": env["ACCELERATE_MIXED_PRECISION"]}):
        args = training_arguments(output_dir=str(tmp_path), epochs=1, learning_rate=1e-5, batch_size=4,
                                  gradient_accumulation_steps=4, seed=0, show_progress=False)
    # What transformers' HfTrainerDeepSpeedConfig.trainer_config_process compares (fill_match on
    # bf16.enabled / fp16.enabled, which the launch config sets to numbers, not "auto"); a difference
    # is a mismatch that Trainer raises when train() initialises DeepSpeed.
    assert (args.bf16 or args.bf16_full_eval) == ds["bf16"]["enabled"]
    assert (args.fp16 or args.fp16_full_eval) == ds["fp16"]["enabled"]
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        return
    # with deepspeed installed, the comparison itself
    from transformers.integrations.deepspeed import (
        HfTrainerDeepSpeedConfig,
        unset_hf_deepspeed_config,
    )

    config = HfTrainerDeepSpeedConfig(dict(ds))
    try:
        config.trainer_config_process(args)
    finally:
        unset_hf_deepspeed_config()
    assert config.mismatches == []
