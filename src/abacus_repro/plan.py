"""``abacus-repro plan``: what a config will cost before it runs.

Tokens and optimizer steps per training phase come from the config's batch arithmetic (the trainer's own step
formula); jobs per rule and each job's reserved resources come from the workflow's real DAG (a Snakemake dry run
over placeholder inputs, abacus_repro.dryrun); GPU-hours for training come from a stated throughput; disk from
token and parameter counts. Every figure that rests on an assumption says so in the output.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import DEFAULT_CONFIGFILE, load_config

# Assumed training throughput when none is given: tokens per GPU-second. At 2.7B parameters that is 6N x 5,000
# = 82 TFLOP/s of model FLOPs per GPU, about a quarter of an A100's bf16 peak: a cautious figure for multi-node
# ZeRO-2 with gradient checkpointing. Measure yours with benchmarks/bench_pretrain_mfu.py and pass it.
DEFAULT_TOKENS_PER_GPU_SECOND = 5000.0
# SFT examples are packed into rows, so steps depend on their tokens: an instruction, a function and its tests,
# or a StackExchange question and answer, average a few hundred tokens.
DEFAULT_SFT_TOKENS_PER_EXAMPLE = 400
# Bytes per packed token slot, from the arrays abacus_repro.tokenization.pack writes: tokens int32, segments
# int32, loss_mask uint8.
PACKED_BYTES_PER_TOKEN = 4 + 4 + 1
# Parquet text is counted as its characters (UTF-8, mostly ASCII; compression ignored, so an upper bound).
CHARS_PER_TOKEN = 3.5
# The model directory holds fp32 weights (the trainer loads and saves float32; bf16 is autocast).
MODEL_BYTES_PER_PARAM = 4
# Training state per parameter: fp32 weights + two fp32 AdamW moments; DeepSpeed's bf16 mode adds bf16 weights
# beside its fp32 master copy. ZeRO shards the optimizer over ranks, but the shards sum to the same.
STATE_BYTES_PER_PARAM = {"fp32": 4 + 8, "deepspeed_bf16": 2 + 4 + 8}
# GGUF sizes measured for the 2.7B model (README, "Export"): bits per parameter by type.
GGUF_BITS_PER_PARAM = {"F16": 16.01, "Q8_0": 8.51, "Q4_K_M": 5.29}
TRAIN_RULE = "train"


# --- model and batch arithmetic ------------------------------------------------------------------------------------


def count_parameters(model: Mapping[str, Any], vocab_size: int) -> int:
    """Parameters of the MiniCPM (Llama-block) model the `model:` section describes, embeddings tied.

    Per layer: q, k, v, o projections (k and v at num_key_value_heads), gate/up/down MLP, two RMSNorms; plus the
    token embedding (shared with the output head) and the final norm. No biases (attention_bias is false).
    """
    hidden = int(model["hidden_size"])
    heads = int(model["num_attention_heads"])
    kv_heads = int(model.get("num_key_value_heads") or heads)
    head_dim = hidden // heads
    attention = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim
    mlp = 3 * hidden * int(model["intermediate_size"])
    per_layer = attention + mlp + 2 * hidden
    return int(model["num_hidden_layers"]) * per_layer + vocab_size * hidden + hidden


def world_size(train: Mapping[str, Any]) -> int:
    """Training processes: one per GPU on every node, or one per node without GPUs (as the launcher starts them)."""
    from .pretrain.launch import LaunchPlan

    launch = train["launch"]
    return LaunchPlan(nodes=int(launch["nodes"]), procs_per_node=max(1, int(launch["gpus_per_node"]))).world_size


def pretrain_phase_names(config: Mapping[str, Any]) -> list[str]:
    """The pretraining phases the DAG runs: no base phase when training continues a published checkpoint."""
    return ["cosine", "anneal"] if config["model"].get("pretrained") else ["base", "cosine", "anneal"]


def phase_steps(tokens: int, seq_len: int, micro_batch_size: int, grad_accum: int, world: int) -> dict[str, int]:
    """Rows and optimizer steps for ``tokens`` packed into full rows (the trainer's ceil per epoch)."""
    from .pretrain.trainer import steps_per_epoch

    rows = math.ceil(tokens / seq_len)
    return {
        "tokens_per_step": micro_batch_size * grad_accum * world * seq_len,
        "rows": rows,
        "steps": steps_per_epoch(rows, micro_batch_size, grad_accum, world),
    }


def pretrain_phases(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    train, seq_len = config["train"], int(config["pack"]["seq_len"])
    world = world_size(train)
    phases = []
    for name in pretrain_phase_names(config):
        tokens = int(config["mixture"]["tokens"][name])
        phases.append(
            {
                "phase": name,
                "tokens": tokens,
                "epochs": 1,
                **phase_steps(tokens, seq_len, int(train["micro_batch_size"]), int(train["grad_accum"]), world),
            }
        )
    return phases


def sft_phase(config: Mapping[str, Any], tokens_per_example: int) -> dict[str, Any]:
    """The SFT phase, estimated: its data set exists only after the SFT data rules ran.

    Examples: at most sft.max_functions code pairs plus code_nl_ratio times as many NL pairs (an upper bound:
    functions whose tests fail and SemDeDup's duplicates drop out). Tokens: examples x ``tokens_per_example``.
    """
    sft, train, seq_len = config["sft"], config["train"], int(config["pack"]["seq_len"])
    examples = math.ceil(int(sft["max_functions"]) * (1 + float(sft["code_nl_ratio"])))
    tokens = examples * tokens_per_example
    epochs = int(sft["epochs"])
    per_epoch = phase_steps(tokens, seq_len, int(sft["micro_batch_size"]), int(train["grad_accum"]), world_size(train))
    return {
        "phase": "sft",
        "examples": examples,
        "tokens_per_example": tokens_per_example,
        "tokens": tokens * epochs,
        "epochs": epochs,
        "tokens_per_step": per_epoch["tokens_per_step"],
        "rows": per_epoch["rows"],
        "steps": per_epoch["steps"] * epochs,
        "steps_per_1k_examples_per_epoch": 1000 * tokens_per_example / per_epoch["tokens_per_step"],
        "examples_per_step": per_epoch["tokens_per_step"] / tokens_per_example,
    }


# --- jobs and GPU-hours --------------------------------------------------------------------------------------------


def dag_jobs(configfile: str | Path) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Jobs per rule and every job's resources, from a dry run of the workflow over placeholder inputs."""
    from . import dryrun

    with tempfile.TemporaryDirectory(prefix="abacus-plan-") as root:
        copy_path = dryrun.write_placeholder_config(configfile, root)
        output = dryrun.run_dry_run(copy_path, root)
    counts, jobs = dryrun.parse_job_counts(output), dryrun.parse_jobs(output)
    dryrun.check_jobs_match_counts(jobs, counts)
    return counts, jobs


def reserved_gpu_hours(jobs: list[dict[str, Any]]) -> dict[str, float]:
    """GPU-hours the non-training rules reserve (GPUs x wall time asked for), by rule."""
    from .dryrun import job_gpus

    hours: dict[str, float] = {}
    for job in jobs:
        gpus = job_gpus(job["resources"])
        if job["rule"] != TRAIN_RULE and gpus:
            runtime_h = int(job["resources"].get("runtime", 0)) / 60
            hours[job["rule"]] = hours.get(job["rule"], 0.0) + gpus * runtime_h
    return hours


def train_walltime_limit_h(jobs: list[dict[str, Any]]) -> float | None:
    runtimes = [int(j["resources"]["runtime"]) for j in jobs if j["rule"] == TRAIN_RULE and "runtime" in j["resources"]]
    return max(runtimes) / 60 if runtimes else None


def training_gpu_hours(phases: list[dict[str, Any]], gpus: int, tokens_per_gpu_second: float) -> None:
    """Adds gpu_hours and wall_hours to each phase (none without GPUs: a CPU run)."""
    for phase in phases:
        gpu_seconds = phase["tokens"] / tokens_per_gpu_second if gpus else 0.0
        phase["gpu_hours"] = gpu_seconds / 3600
        phase["wall_hours"] = phase["gpu_hours"] / gpus if gpus else None


# --- disk ----------------------------------------------------------------------------------------------------------


def disk_estimates(config: Mapping[str, Any], phases: list[dict[str, Any]], params: int) -> dict[str, Any]:
    """Bytes each stage writes, by what it is made of (see the constants above for the per-unit sizes)."""
    train = config["train"]
    bf16_deepspeed = train.get("deepspeed") and train["precision"] == "bf16"
    state_bytes = params * STATE_BYTES_PER_PARAM["deepspeed_bf16" if bf16_deepspeed else "fp32"]
    model_bytes = params * MODEL_BYTES_PER_PARAM
    keep = int(train["keep_checkpoints"])
    pretrain = [p for p in phases if p["phase"] != "sft"]
    sft_tokens_once = next((p["tokens"] // p["epochs"] for p in phases if p["phase"] == "sft"), 0)
    return {
        "mixture_parquet": {p["phase"]: int(p["tokens"] * CHARS_PER_TOKEN) for p in pretrain},
        "tokenized": {
            **{p["phase"]: p["tokens"] * PACKED_BYTES_PER_TOKEN for p in pretrain},
            "sft": sft_tokens_once * PACKED_BYTES_PER_TOKEN,
        },
        "train_per_phase": {
            "model_and_final_state": model_bytes + state_bytes,
            "peak_with_checkpoints": model_bytes + state_bytes * (1 + keep),
        },
        "train_all_phases": (model_bytes + state_bytes) * len(phases),
        "export_gguf": {t: int(params * GGUF_BITS_PER_PARAM[t] / 8) for t in config["export"]["types"]},
        "state_bytes_per_param": state_bytes // params if params else 0,
    }


# --- the plan ------------------------------------------------------------------------------------------------------


def make_plan(
    configfile: str | Path | None = None,
    tokens_per_gpu_second: float = DEFAULT_TOKENS_PER_GPU_SECOND,
    sft_tokens_per_example: int = DEFAULT_SFT_TOKENS_PER_EXAMPLE,
    with_dag: bool = True,
) -> dict[str, Any]:
    """Everything ``abacus-repro plan`` prints, as one JSON-ready mapping."""
    configfile = Path(configfile) if configfile else DEFAULT_CONFIGFILE
    config = load_config(configfile)
    train, launch = config["train"], config["train"]["launch"]
    gpus = int(launch["nodes"]) * int(launch["gpus_per_node"])
    params = count_parameters(config["model"], int(config["tokenizer"]["vocab_size"]))
    phases = pretrain_phases(config) + [sft_phase(config, sft_tokens_per_example)]
    training_gpu_hours(phases, gpus, tokens_per_gpu_second)
    counts, jobs = dag_jobs(configfile) if with_dag else ({}, [])
    other_gpu_hours = reserved_gpu_hours(jobs)
    plan = {
        "configfile": str(configfile),
        "parameters": params,
        "world_size": world_size(train),
        "gpus": gpus,
        "tokens_per_gpu_second": tokens_per_gpu_second,
        "model_tflops_per_gpu": 6 * params * tokens_per_gpu_second / 1e12,
        "phases": phases,
        "training_gpu_hours": sum(p["gpu_hours"] for p in phases),
        "jobs": counts,
        "total_jobs": sum(counts.values()),
        "reserved_gpu_hours": other_gpu_hours,
        "train_walltime_limit_hours": train_walltime_limit_h(jobs),
        "disk_bytes": disk_estimates(config, phases, params),
        "assumptions": assumptions(config, tokens_per_gpu_second, sft_tokens_per_example),
    }
    plan["total_gpu_hours"] = plan["training_gpu_hours"] + sum(other_gpu_hours.values())
    return plan


def assumptions(config: Mapping[str, Any], tokens_per_gpu_second: float, sft_tokens_per_example: int) -> list[str]:
    train = config["train"]
    state = "deepspeed_bf16" if train.get("deepspeed") and train["precision"] == "bf16" else "fp32"
    return [
        (
            f"training throughput {tokens_per_gpu_second:g} tokens per GPU-second (--tokens-per-gpu-second; default "
            f"{DEFAULT_TOKENS_PER_GPU_SECOND:g}, not measured here)"
        ),
        (
            "steps: tokens packed into full rows of pack.seq_len (packing padding and the trainer's <= 16 held-out "
            "validation rows ignored); steps = ceil(rows / (micro batch x grad_accum x world size)), as the trainer"
        ),
        (
            f"SFT: the data set exists only after its rules run; examples <= sft.max_functions x (1 + code_nl_ratio) "
            f"(before failed tests and SemDeDup), {sft_tokens_per_example} tokens each (--sft-tokens-per-example)"
        ),
        (
            "parameters: MiniCPM/Llama blocks from model:, embeddings tied, vocabulary tokenizer.vocab_size "
            "(a published checkpoint's own vocabulary may differ slightly)"
        ),
        "non-training GPU-hours: what the jobs reserve (GPUs x resources runtime), an upper bound",
        (
            f"disk: Parquet text {CHARS_PER_TOKEN:g} bytes per token (uncompressed); packed data "
            f"{PACKED_BYTES_PER_TOKEN} bytes per token (int32 tokens, int32 segments, uint8 loss mask); model "
            f"directory {MODEL_BYTES_PER_PARAM} bytes per parameter (fp32); training state "
            f"{STATE_BYTES_PER_PARAM[state]} bytes per parameter ({state.replace('_', ' ')}: weights and 2 AdamW "
            f"moments; ZeRO shards sum to the same); GGUF bits per parameter as measured at 2.7B (README)"
        ),
        (
            "ingest, code cleaning and text filtering write about the size of their input dumps, which the config "
            "does not state: not estimated"
        ),
    ]


def _size(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n_bytes) < 1000 or unit == "TB":
            return f"{n_bytes:,.0f} {unit}" if unit == "B" else f"{n_bytes:,.1f} {unit}"
        n_bytes /= 1000
    raise AssertionError("unreachable")


def render_text(plan: Mapping[str, Any]) -> str:
    lines = [
        f"plan for {plan['configfile']}",
        (
            f"model: {plan['parameters']:,} parameters; training on {plan['world_size']} process(es), "
            f"{plan['gpus']} GPU(s)"
        ),
        "",
        "training phases:",
        (f"  {'phase':8} {'tokens':>18} {'tokens/step':>13} {'steps':>9} {'epochs':>6} {'GPU-h':>10} {'wall-h':>8}"),
    ]
    for p in plan["phases"]:
        wall = f"{p['wall_hours']:,.1f}" if p["wall_hours"] is not None else "-"
        lines.append(
            f"  {p['phase']:8} {p['tokens']:>18,} {p['tokens_per_step']:>13,} {p['steps']:>9,} "
            f"{p['epochs']:>6} {p['gpu_hours']:>10,.0f} {wall:>8}"
        )
    sft = plan["phases"][-1]
    lines.append(
        f"  sft: estimated from sft.max_functions: <= {sft['examples']:,} examples x "
        f"{sft['tokens_per_example']} tokens; {sft['steps_per_1k_examples_per_epoch']:.3g} steps per 1k "
        f"examples per epoch ({sft['examples_per_step']:,.0f} examples per step)"
    )
    limit = plan["train_walltime_limit_hours"]
    if limit:
        for p in plan["phases"]:
            if p["wall_hours"] and p["wall_hours"] > limit:
                lines.append(
                    f"  note: {p['phase']} needs {p['wall_hours']:,.0f} h > the train job's {limit:,.0f} h "
                    f"wall time; it resumes from its checkpoint only as often as the profile retries"
                )
    if plan["gpus"]:
        lines += [
            "",
            (
                f"GPU-hours at {plan['tokens_per_gpu_second']:g} tokens/GPU-s (ASSUMPTION; "
                f"= {plan['model_tflops_per_gpu']:.0f} model TFLOP/s per GPU at 6N): training "
                f"{plan['training_gpu_hours']:,.0f}"
            ),
        ]
    else:
        lines += ["", "GPU-hours: training runs on CPU (train.launch.gpus_per_node: 0): none"]
    for rule, hours in sorted(plan["reserved_gpu_hours"].items()):
        lines.append(f"  reserved by {rule}: {hours:,.0f}")
    lines.append(f"  total: {plan['total_gpu_hours']:,.0f}")
    if plan["jobs"]:
        lines += ["", f"jobs per rule (Snakemake dry run, {plan['total_jobs']} in all):"]
        lines += [f"  {rule:24} {count:>6}" for rule, count in plan["jobs"].items()]
    disk = plan["disk_bytes"]
    lines += ["", "disk written:"]
    lines += [f"  mixture Parquet {phase:7} {_size(n)}" for phase, n in disk["mixture_parquet"].items()]
    lines += [f"  tokenized {phase:13} {_size(n)}" for phase, n in disk["tokenized"].items()]
    lines.append(
        f"  training, per phase: {_size(disk['train_per_phase']['model_and_final_state'])} (model + final "
        f"state), peak {_size(disk['train_per_phase']['peak_with_checkpoints'])} with checkpoints; all "
        f"phases {_size(disk['train_all_phases'])}"
    )
    lines += [f"  GGUF {kind:18} {_size(n)}" for kind, n in disk["export_gguf"].items()]
    lines += ["", "assumptions:"] + [f"  - {a}" for a in plan["assumptions"]]
    return "\n".join(lines) + "\n"


# --- command -------------------------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="what a config will cost: tokens, steps, jobs, GPU-hours, disk",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--configfile",
        default=None,
        help=f"the run's config (default {DEFAULT_CONFIGFILE.relative_to(DEFAULT_CONFIGFILE.parents[1])}"
        "), resolved as `snakemake --configfile` does: the file plus the schema's defaults",
    )
    parser.add_argument(
        "--tokens-per-gpu-second",
        type=float,
        default=DEFAULT_TOKENS_PER_GPU_SECOND,
        help=f"training throughput assumed for GPU-hours (default {DEFAULT_TOKENS_PER_GPU_SECOND:g})",
    )
    parser.add_argument(
        "--sft-tokens-per-example",
        type=int,
        default=DEFAULT_SFT_TOKENS_PER_EXAMPLE,
        help=f"average SFT example length assumed (default {DEFAULT_SFT_TOKENS_PER_EXAMPLE})",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(func=run_plan)


def run_plan(args: argparse.Namespace) -> int:
    if args.tokens_per_gpu_second <= 0 or args.sft_tokens_per_example <= 0:
        from .errors import InputError

        raise InputError(None, "--tokens-per-gpu-second and --sft-tokens-per-example must be positive")
    plan = make_plan(args.configfile, args.tokens_per_gpu_second, args.sft_tokens_per_example)
    print(json.dumps(plan, indent=2) if args.json else render_text(plan), end="\n" if args.json else "")
    return 0
