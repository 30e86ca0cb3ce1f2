"""How a training phase is started: in this process, under torchrun on one node, or across SLURM nodes.

The train rule's resources decide (``nodes``; GPUs per node from ``gres: gpu[:type]:N``, the SLURM executor's
``gpu`` total, or this workflow's ``gpus``):

* one node, at most one GPU, no DeepSpeed: the phase runs inside the rule's own process (the tiny CPU default);
* one node, several GPUs (or DeepSpeed, which needs a process group even on one GPU):
  ``python -m torch.distributed.run --standalone --nproc-per-node G -m abacus_repro.pretrain.worker SPEC``;
* several nodes (inside a SLURM allocation): ``srun`` starts one torchrun per node, and the torchruns meet at a
  c10d rendezvous on the allocation's first node:
  ``srun --nodes N --ntasks N --ntasks-per-node 1 python -m torch.distributed.run --nnodes N
  --nproc-per-node G --rdzv-backend c10d --rdzv-endpoint HEAD:PORT --rdzv-id $SLURM_JOB_ID -m
  abacus_repro.pretrain.worker SPEC``.

SPEC is a JSON file with ``train_phase``'s two arguments (the job's settings and paths), so every rank runs
exactly what the in-process path runs. Outside an allocation a multi-node phase cannot start
(:class:`NotInAllocation`); ``abacus-repro train-launch`` then shows the command with ``$HEAD_NODE`` in place of
the first node.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..rules import RulePaths
from ..settings import LaunchSettings
from .phases import STATE_FILE, TrainJob

log = logging.getLogger(__name__)

WORKER_MODULE = "abacus_repro.pretrain.worker"
SPEC_FILE = "launch_spec.json"
DEFAULT_PORT = 29500
_GRES_GPUS = re.compile(r"(?:^|,)gpu(?::[A-Za-z0-9_.-]+)?:(\d+)")
HEAD_NODE_PLACEHOLDER = "$HEAD_NODE"
ALLOCATION_HINT = (
    "multi-node training runs inside a SLURM allocation (salloc/sbatch); there, "
    'HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
)


class NotInAllocation(InputError, RuntimeError):
    """No SLURM allocation around this process, so no first node for the ranks to meet at. An InputError, so a
    rule's log and the CLI show it as one line; a RuntimeError, as it always was, for callers that catch that."""


@dataclass(frozen=True)
class LaunchPlan:
    nodes: int = 1
    procs_per_node: int = 1  # one process per GPU
    port: int = DEFAULT_PORT

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node

    def in_process(self, deepspeed: bool = False) -> bool:
        """True when the phase can run inside the calling process (one process, no DeepSpeed)."""
        return self.nodes == 1 and self.procs_per_node <= 1 and not deepspeed


def gpus_per_node(resources: Mapping[str, Any], nodes: int) -> int:
    """GPUs per node from a rule's resources: ``gres`` ("gpu:8", "gpu:a100:8"), else ``gpu``/``gpus`` totals."""
    gres = str(resources.get("gres") or "")
    match = _GRES_GPUS.search(gres)
    if match:
        return int(match.group(1))
    for key in ("gpu", "gpus"):
        total = resources.get(key)
        if total:
            total = int(total)
            if total % nodes:
                raise ValueError(f"resources {key}={total} cannot be spread evenly over {nodes} nodes")
            return total // nodes
    return 0


def plan_from_resources(resources: Mapping[str, Any], launch: LaunchSettings) -> LaunchPlan:
    """The launch plan a train job's resources ask for; ``launch`` is ``train.launch`` (CPU ranks, the port)."""
    nodes = int(resources.get("nodes") or 1)
    if nodes < 1:
        raise ValueError(f"resources nodes must be >= 1, got {nodes}")
    gpus = gpus_per_node(resources, nodes)
    # Without GPUs, train.launch.cpu_procs_per_node CPU ranks (gloo); with GPUs, one rank per GPU.
    procs = gpus if gpus else launch.cpu_procs_per_node
    return LaunchPlan(nodes=nodes, procs_per_node=procs, port=launch.port)


def _nodelist_of_job(env: Mapping[str, str]) -> str | None:
    """The node list from squeue: Snakemake's job-step plugin strips the SLURM_* variables but SLURM_JOB_ID."""
    job = env.get("SLURM_JOB_ID")
    if not job:
        return None
    try:
        out = subprocess.run(
            ["squeue", "-j", job, "-h", "-o", "%N"], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out or None


def head_node(env: Mapping[str, str]) -> str:
    """The rendezvous host: the first node of the SLURM allocation."""
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or _nodelist_of_job(env)
    if not nodelist:
        raise NotInAllocation(
            "SLURM_JOB_NODELIST", f"not set, and squeue could not name the nodes of SLURM_JOB_ID: {ALLOCATION_HINT}"
        )
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True
        ).stdout
        return out.split()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        # No scontrol here: a plain comma list still names its first host; a bracketed range cannot be expanded.
        first = nodelist.split(",")[0]
        if "[" in first:
            raise RuntimeError(f"cannot expand SLURM node list {nodelist!r} without scontrol") from None
        return first


def launch_command(
    plan: LaunchPlan,
    spec_path: str | Path,
    env: Mapping[str, str] | None = None,
    deepspeed: bool = False,
    head: str | None = None,
) -> list[str] | None:
    """The command that starts every rank, or None when the phase runs in-process. Several nodes meet at
    ``head`` (default: the allocation's first node, :func:`head_node`; a placeholder to show the command)."""
    env = os.environ if env is None else env
    if plan.in_process(deepspeed):
        return None
    python = sys.executable
    worker = ["-m", WORKER_MODULE, str(spec_path)]
    if plan.nodes == 1:
        return [
            python,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nnodes=1",
            f"--nproc-per-node={plan.procs_per_node}",
            *worker,
        ]
    job = env.get("SLURM_JOB_ID", "abacus")
    return [
        "srun",
        f"--nodes={plan.nodes}",
        f"--ntasks={plan.nodes}",
        "--ntasks-per-node=1",
        "--kill-on-bad-exit=1",
        python,
        "-m",
        "torch.distributed.run",
        f"--nnodes={plan.nodes}",
        f"--nproc-per-node={plan.procs_per_node}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={head or head_node(env)}:{plan.port}",
        f"--rdzv-id={job}",
        *worker,
    ]


def shell_line(command: list[str]) -> str:
    """The command as one shell line to paste; an argument holding ``$HEAD_NODE`` is double-quoted, so the shell
    expands it."""
    return " ".join(f'"{arg}"' if HEAD_NODE_PLACEHOLDER in arg else shlex.quote(arg) for arg in command)


def write_spec(path: str | Path, settings: TrainJob, paths: RulePaths) -> Path:
    """The phase's two arguments as JSON, for the launched ranks (read back by :func:`read_spec`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = {"settings": settings.model_dump(mode="json"), "paths": asdict(paths)}
    path.write_text(json.dumps(spec, indent=1, sort_keys=True, default=str), encoding="utf-8")
    return path


def read_spec(path: str | Path) -> tuple[TrainJob, RulePaths]:
    spec = json.loads(Path(path).read_text(encoding="utf-8"))
    return TrainJob.model_validate(spec["settings"]), RulePaths(**spec["paths"])


def run_phase(settings: TrainJob, paths: RulePaths, plan: LaunchPlan) -> dict:
    """Run ``train_phase(settings, paths)`` in-process or under the launcher; returns the trainer state."""
    from .trainer import train_phase

    deepspeed = bool(settings.train.deepspeed)
    if plan.in_process(deepspeed):
        return train_phase(settings, paths)
    out_dir = Path(paths.output["model"])
    spec_path = write_spec(out_dir.parent / SPEC_FILE, settings, paths)
    command = launch_command(plan, spec_path, deepspeed=deepspeed)
    log.info("launching %d process(es) on %d node(s): %s", plan.world_size, plan.nodes, shlex.join(command))
    env = dict(os.environ)
    # Workers log to stderr, which the rule's log captures; the repository's sources come first on the path.
    env.setdefault("MASTER_ADDR", socket.gethostname() if plan.nodes > 1 else "127.0.0.1")
    subprocess.run(command, check=True, env=env)
    return json.loads((out_dir / STATE_FILE).read_text(encoding="utf-8"))
