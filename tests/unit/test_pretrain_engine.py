"""The engine under the trainer: DeepSpeed configs (parsed, filled, refused), the launcher's commands, and real
multi-process runs on CPU: two DDP ranks over gloo and a DeepSpeed ZeRO-2 engine end with the weights of the
single-process run, bit for bit; ZeRO-3 runs and gathers its shards into one model."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from abacus_repro.errors import InputError
from abacus_repro.pretrain.engine import load_deepspeed_config, world_from_env
from abacus_repro.pretrain.launch import (
    LaunchPlan,
    gpus_per_node,
    head_node,
    launch_command,
    plan_from_resources,
    run_phase,
)
from abacus_repro.pretrain.step import rank_micro_batches
from abacus_repro.pretrain.trainer import train_phase
from abacus_repro.settings import LaunchSettings
from abacus_repro.tokenization import tokenize_and_pack, write_packed

from .pretrain_fixtures import (
    CODE_SNIPPETS,
    TEXT_SNIPPETS,
    build_model_dir,
    build_tokenizer,
    phase_paths,
    read_metrics,
    synthetic_corpus,
    training_settings,
)

REPO = Path(__file__).resolve().parents[2]
DEEPSPEED_CONFIGS = sorted((REPO / "config" / "deepspeed").glob("*.json"))
TRAIN = training_settings(grad_clip=1.0, precision="bf16").train
# train.launch as a config that sets only the given keys gives it.
LAUNCH = LaunchSettings()


def launch(**overrides) -> LaunchSettings:
    return LaunchSettings(**overrides)


def test_repository_has_zero2_and_zero3_configs_that_fill_from_train():
    assert [path.name for path in DEEPSPEED_CONFIGS] == ["zero2.json", "zero3.json"]
    for path, stage in zip(DEEPSPEED_CONFIGS, (2, 3), strict=True):
        raw = json.loads(path.read_text())
        assert raw["gradient_clipping"] == 1.0  # explicit: DeepSpeed's silent default is never relied on
        config = load_deepspeed_config(path, TRAIN, micro_batch_size=4, grad_accum=9, world_size=64)
        assert config["zero_optimization"]["stage"] == stage
        assert config["train_micro_batch_size_per_gpu"] == 4 and config["gradient_accumulation_steps"] == 9
        assert config["train_batch_size"] == 4 * 9 * 64
        assert config["bf16"]["enabled"] is True and config["fp16"]["enabled"] is False
        fp32 = load_deepspeed_config(path, TRAIN.model_copy(update={"precision": "fp32"}), 2, 1, 1)
        assert fp32["bf16"]["enabled"] is False


def test_deepspeed_parses_the_filled_configs():
    pytest.importorskip("deepspeed")
    from deepspeed.runtime.config import DeepSpeedConfig

    for path in DEEPSPEED_CONFIGS:
        parsed = DeepSpeedConfig(load_deepspeed_config(path, TRAIN, 4, 9, 1))
        assert parsed.gradient_clipping == 1.0 and parsed.bfloat16_config.enabled
        assert parsed.train_batch_size == 36 and parsed.gradient_accumulation_steps == 9
        assert parsed.zero_optimization_stage == int(path.stem[-1])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"gradient_clipping": None}, "gradient_clipping must be set explicitly"),
        ({"gradient_clipping": "auto"}, "gradient_clipping must be set explicitly"),
        ({"gradient_clipping": 0.5}, "differs from train.grad_clip"),
        ({"train_micro_batch_size_per_gpu": 8}, "train_micro_batch_size_per_gpu is 8"),
        ({"bf16": {"enabled": False}}, "bf16.enabled is False"),
        ({"fp16": {"enabled": True}}, "fp16 is not supported"),
        ({"zero_optimization": {"stage": 4}}, "stage must be one of"),
        ({"optimizer": {"params": {"lr": "auto"}}}, "optimizer.params.lr"),
    ],
)
def test_inconsistent_deepspeed_configs_are_refused(tmp_path, change, message):
    config = json.loads(DEEPSPEED_CONFIGS[0].read_text())
    for key, value in change.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(config))
    with pytest.raises(InputError, match=message):
        load_deepspeed_config(path, TRAIN, 4, 1, 1)
    path.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_deepspeed_config(path, TRAIN, 4, 1, 1)


def test_resources_pick_the_launch(monkeypatch, tmp_path):
    assert gpus_per_node({"gres": "gpu:a100:8"}, 4) == 8
    assert gpus_per_node({"gres": "gpu:4"}, 1) == 4
    assert gpus_per_node({"gpu": 16}, 2) == 8 and gpus_per_node({"gpus": 0}, 1) == 0
    with pytest.raises(ValueError, match="evenly"):
        gpus_per_node({"gpu": 6}, 4)
    cpu = plan_from_resources({"nodes": 1, "gpus": 0, "gres": ""}, LAUNCH)
    assert cpu == LaunchPlan(1, 1) and cpu.in_process() and not cpu.in_process(deepspeed=True)
    assert launch_command(cpu, "spec.json") is None
    # CPU ranks (gloo) are asked for in train.launch; GPUs, when there are any, decide instead.
    two_cpu_ranks = plan_from_resources({"nodes": 1, "gres": ""}, launch(cpu_procs_per_node=2))
    assert two_cpu_ranks == LaunchPlan(1, 2) and not two_cpu_ranks.in_process()
    assert "--nproc-per-node=2" in launch_command(two_cpu_ranks, "spec.json")
    assert plan_from_resources({"nodes": 1, "gres": "gpu:4"}, launch(cpu_procs_per_node=2)).procs_per_node == 4

    one_node = launch_command(plan_from_resources({"nodes": 1, "gres": "gpu:8"}, LAUNCH), "spec.json")
    assert one_node[1:] == [
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        "--nproc-per-node=8",
        "-m",
        "abacus_repro.pretrain.worker",
        "spec.json",
    ]

    # Several nodes: srun starts one torchrun per node; they meet on the allocation's first node.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text('#!/bin/sh\n[ "$1 $2 $3" = "show hostnames gpu[07-10]" ] && printf "gpu07\\ngpu08\\n"\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    env = {"SLURM_JOB_NODELIST": "gpu[07-10]", "SLURM_JOB_ID": "4242"}
    plan = plan_from_resources({"nodes": 4, "gres": "gpu:8", "mpi": "srun"}, launch(port=29600))
    command = launch_command(plan, "spec.json", env=env)
    assert command[:5] == ["srun", "--nodes=4", "--ntasks=4", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    assert "--nnodes=4" in command and "--nproc-per-node=8" in command
    assert "--rdzv-backend=c10d" in command and "--rdzv-endpoint=gpu07:29600" in command
    assert "--rdzv-id=4242" in command and command[-3:] == ["-m", "abacus_repro.pretrain.worker", "spec.json"]
    assert plan.world_size == 32
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no scontrol: a plain list still names its head
    assert head_node({"SLURM_JOB_NODELIST": "n1,n2"}) == "n1"
    with pytest.raises(RuntimeError, match="scontrol"):
        head_node({"SLURM_JOB_NODELIST": "n[1-2]"})
    with pytest.raises(RuntimeError, match="SLURM allocation"):
        head_node({})


def test_rank_micro_batches_split_a_step_without_overlap():
    import numpy as np

    from abacus_repro.pretrain.engine import World

    rows = np.arange(10)
    alone = rank_micro_batches(rows, micro=2, accum=3, world=World())
    assert [r.tolist() for r in alone] == [[0, 1], [2, 3], [4, 5]]
    ranks = [rank_micro_batches(np.arange(7), 2, 2, World(rank=r, local_rank=r, size=2)) for r in range(2)]
    assert [[r.tolist() for r in slots] for slots in ranks] == [[[0, 1], [4, 5]], [[2, 3], [6]]]
    # A short last step leaves a rank an empty slot (filled with a zero-weight dummy), never fewer slots.
    short = rank_micro_batches(np.arange(3), 2, 1, World(rank=1, local_rank=1, size=2))
    assert [r.tolist() for r in short] == [[2]]
    assert [r.tolist() for r in rank_micro_batches(np.arange(2), 2, 1, World(1, 1, 2))] == [[]]
    assert world_from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "8"}) == World(3, 1, 8)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A single-process run: micro batch 2 x accumulation 2 (global batch 4)."""
    root = tmp_path_factory.mktemp("engine")
    tokenizer = build_tokenizer(root / "tokenizer")
    init = build_model_dir(root / "init", root / "tokenizer")
    packed = tokenize_and_pack(synthetic_corpus(30, CODE_SNIPPETS + TEXT_SNIPPETS, "mixed"), tokenizer, 64, False)
    data = root / "tok"
    write_packed(packed, data / "tokens.npy", data / "segments.npy", data / "loss_mask.npy", data / "meta.json")
    spec = make_spec(root, init, data, "reference", micro_batch_size=2, grad_accum=2)
    state = train_phase(**spec)
    return {"root": root, "init": init, "data": data, "spec": spec, "state": state}


def make_spec(root, init, data, name, **train) -> dict:
    """train_phase's arguments (``train_phase(**spec)``): a cosine phase written under root/name."""
    job = training_settings(3, **train)
    return {"settings": job, "paths": phase_paths(root / name, "cosine", init, data, job)}


def out_dir(spec: dict) -> Path:
    return Path(spec["paths"].output["model"])


def launched(spec: dict, plan: LaunchPlan) -> dict:
    try:
        return run_phase(spec["settings"], spec["paths"], plan)
    except subprocess.CalledProcessError as err:
        pytest.fail(f"launched training failed: {err}")


def assert_same_weights(spec: dict, other: dict, atol: float = 0.0) -> None:
    mine = load_file(str(out_dir(spec) / "model.safetensors"))
    theirs = load_file(str(out_dir(other) / "model.safetensors"))
    assert mine.keys() == theirs.keys()
    for name, value in theirs.items():
        if atol:
            torch.testing.assert_close(mine[name].float(), value.float(), atol=atol, rtol=0)
        else:
            assert torch.equal(mine[name], value), name


def test_two_ddp_ranks_equal_one_process_with_accumulation(reference):
    """torchrun --nproc-per-node 2 on CPU (gloo): each rank takes its half of every step's rows."""
    spec = make_spec(reference["root"], reference["init"], reference["data"], "ddp", micro_batch_size=2, grad_accum=1)
    state = launched(spec, LaunchPlan(nodes=1, procs_per_node=2))
    assert state["world_size"] == 2 and state["phase_steps"] == reference["state"]["phase_steps"]
    assert_same_weights(spec, reference["spec"])
    assert state["tokens_seen"] == reference["state"]["tokens_seen"]


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_zero_engine_trains_like_the_plain_one(reference, stage):
    pytest.importorskip("deepspeed")
    config = REPO / "config" / "deepspeed" / f"zero{stage}.json"
    spec = make_spec(
        reference["root"],
        reference["init"],
        reference["data"],
        f"zero{stage}",
        micro_batch_size=2,
        grad_accum=2,
        deepspeed=str(config),
        precision="fp32",
    )
    state = launched(spec, LaunchPlan(nodes=1, procs_per_node=1))  # DeepSpeed always runs under torchrun
    assert state["phase_steps"] == reference["state"]["phase_steps"]
    steps = [m for m in read_metrics(out_dir(spec).parent / "metrics.jsonl") if m["kind"] == "train"]
    first = next(m for m in read_metrics(out_dir(reference["spec"]).parent / "metrics.jsonl") if m["kind"] == "train")
    assert steps[0]["loss"] == pytest.approx(first["loss"], rel=1e-6)  # same data, same start
    assert steps[-1]["loss"] < steps[0]["loss"] - 1.0
    # DeepSpeed writes its own checkpoint layout for the next phase (ZeRO shards per rank).
    assert (out_dir(spec).parent / "state" / "pytorch_model").is_dir()
    if stage == 2:
        assert_same_weights(spec, reference["spec"])  # same arithmetic on one rank: bit for bit
    else:
        # ZeRO-3 partitions and re-gathers the weights (a different summation order); the shards are gathered
        # into one model that stays close to the plain run's.
        assert_same_weights(spec, reference["spec"], atol=5e-2)


def test_deepspeed_zero2_across_two_cpu_ranks_is_one_data_parallel_run(reference):
    """ZeRO-2 under torchrun with 2 ranks on CPU (the rehearsal's launch): accelerate must see two ranks, one main
    (not two processes that each believe they are alone and write the same files), and the run must end where the
    single-process run with the same global batch ends."""
    pytest.importorskip("deepspeed")
    spec = make_spec(
        reference["root"],
        reference["init"],
        reference["data"],
        "zero2x2",
        micro_batch_size=2,
        grad_accum=1,
        deepspeed=str(REPO / "config" / "deepspeed" / "zero2.json"),
        precision="fp32",
    )
    state = launched(spec, LaunchPlan(nodes=1, procs_per_node=2))
    assert state["world_size"] == 2 and state["phase_steps"] == reference["state"]["phase_steps"]
    assert (out_dir(spec).parent / "state" / "pytorch_model").is_dir()
    # Gradients are averaged over the ranks by an all-reduce: the same sums in another order.
    assert_same_weights(spec, reference["spec"], atol=1e-5)
