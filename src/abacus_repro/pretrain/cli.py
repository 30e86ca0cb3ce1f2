"""Commands for the training stage: ``abacus-repro wcl-plot`` (the schedule a config gives, as a figure and the
values at chosen steps) and ``abacus-repro train-launch`` (the command a train job would start for given resources).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _load_config(path: str) -> dict:
    import yaml

    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def wcl_plot(args: argparse.Namespace) -> int:
    """Plot WCL for a config's train.schedule with the given cosine and anneal step counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..settings import ScheduleSettings
    from .schedule import cosine_cut_lr, wcl_lr

    schedule = ScheduleSettings.model_validate(_load_config(args.config)["train"]["schedule"])
    total = args.cosine_steps + args.anneal_steps
    stride = max(1, total // 4000)
    steps = list(range(0, total, stride))
    rates = [wcl_lr(step, schedule, args.cosine_steps, args.anneal_steps) for step in steps]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(steps, rates, linewidth=1.5)
    ax.axvline(args.cosine_steps, color="0.6", linestyle="--", linewidth=1)
    ax.set_xlabel("global step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"Warmup-Cosine-Linear: cut at step {args.cosine_steps}, anneal {args.anneal_steps} steps")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110, metadata={"Software": None})
    plt.close(fig)
    marks = sorted({0, schedule.warmup_steps - 1, args.cosine_steps - 1, args.cosine_steps, total - 1})
    values = {step: wcl_lr(step, schedule, args.cosine_steps, args.anneal_steps) for step in marks if step >= 0}
    print(json.dumps({"cut_lr": cosine_cut_lr(schedule, args.cosine_steps), "lr_at_step": values}, indent=1))
    return 0


def train_launch(args: argparse.Namespace) -> int:
    """Print the launch command for a train job with these resources (nothing is started). Outside a SLURM
    allocation a multi-node command names the first node ``$HEAD_NODE``, and one line on stderr says where it runs."""
    from ..settings import LaunchSettings
    from .launch import (
        ALLOCATION_HINT,
        HEAD_NODE_PLACEHOLDER,
        NotInAllocation,
        launch_command,
        plan_from_resources,
        shell_line,
    )

    resources = {"nodes": args.nodes, "gres": f"gpu:{args.gpus_per_node}" if args.gpus_per_node else ""}
    launch = LaunchSettings() if args.port is None else LaunchSettings(port=args.port)
    plan = plan_from_resources(resources, launch)
    try:
        command = launch_command(plan, args.spec, deepspeed=args.deepspeed)
    except NotInAllocation:
        command = launch_command(plan, args.spec, deepspeed=args.deepspeed, head=HEAD_NODE_PLACEHOLDER)
        print(f"abacus-repro: note: no SLURM allocation here; {ALLOCATION_HINT}", file=sys.stderr)
    print("in-process (no launcher)" if command is None else shell_line(command))
    return 0


def register(subparsers) -> None:
    plot = subparsers.add_parser("wcl-plot", help="plot the WCL learning-rate schedule of a config")
    plot.add_argument("--config", default="config/abacus-2.7b.yaml")
    plot.add_argument("--cosine-steps", type=int, default=10000)
    plot.add_argument("--anneal-steps", type=int, default=1000)
    plot.add_argument("--out", default="wcl.png")
    plot.set_defaults(func=wcl_plot)

    launch = subparsers.add_parser("train-launch", help="show how a train job with these resources is started")
    launch.add_argument("--nodes", type=int, default=1)
    launch.add_argument("--gpus-per-node", type=int, default=0)
    launch.add_argument("--port", type=int, default=None, help="default: the schema's train.launch.port")
    launch.add_argument("--deepspeed", action="store_true")
    launch.add_argument("--spec", default="results/train/PHASE/launch_spec.json")
    launch.set_defaults(func=train_launch)
