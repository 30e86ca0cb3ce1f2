"""The training engine under the trainer's loop: Hugging Face accelerate, plain or with DeepSpeed ZeRO.

On one CPU (the tiny default) accelerate runs a plain fp32 loop in this process. On GPUs the same loop runs in
every rank started by the launcher (``launch.py``); with ``train.deepspeed`` naming a JSON file in
``config/deepspeed/`` the model and optimizer go through a DeepSpeed engine (ZeRO-2 or ZeRO-3, bf16).

DeepSpeed config files may leave the batch geometry and the precision to the run (``"auto"``): they are filled
from ``train`` here, before accelerate sees the file, so the values the engine uses are the ones the trainer
computes its steps with. Gradient clipping is the exception: DeepSpeed silently clips at 1.0 when the key is
missing, so the file must name it and it must equal ``train.grad_clip``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..settings import TrainSettings

log = logging.getLogger(__name__)

AUTO = "auto"
ZERO_STAGES = (0, 1, 2, 3)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (torchrun's / srun's environment variables)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def world_from_env(env: Mapping[str, str] | None = None) -> World:
    """RANK / LOCAL_RANK / WORLD_SIZE as torchrun sets them (a single process when they are absent)."""
    env = os.environ if env is None else env
    return World(
        rank=int(env.get("RANK", 0)), local_rank=int(env.get("LOCAL_RANK", 0)), size=int(env.get("WORLD_SIZE", 1))
    )


def resolve_path(path: str | Path, base: str | Path | None = None) -> Path:
    """A config path: absolute, or relative to the working directory (the workflow's), else to ``base``."""
    path = Path(path)
    if path.is_absolute() or path.exists() or base is None:
        return path
    return Path(base) / path


def load_deepspeed_config(
    path: str | Path, train: TrainSettings, micro_batch_size: int, grad_accum: int, world_size: int
) -> dict:
    """The DeepSpeed JSON with every "auto" filled from ``train`` and the run's geometry, checked for consistency.

    Raises InputError (naming the file) for unreadable JSON, a missing or "auto" ``gradient_clipping``, a clip
    that differs from ``train.grad_clip``, an unknown ZeRO stage, or batch numbers that contradict the run's.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise InputError(path, "DeepSpeed config not found") from err
    except json.JSONDecodeError as err:
        raise InputError(path, f"DeepSpeed config is not valid JSON ({err})") from err
    if not isinstance(raw, dict):
        raise InputError(path, "DeepSpeed config must be a JSON object")
    config = copy.deepcopy(raw)

    clip = config.get("gradient_clipping")
    if clip is None or clip == AUTO:
        raise InputError(
            path, "gradient_clipping must be set explicitly (DeepSpeed silently clips at 1.0 when it is missing)"
        )
    wanted_clip = train.grad_clip
    if float(clip) != wanted_clip:
        raise InputError(path, f"gradient_clipping {clip} differs from train.grad_clip {wanted_clip}")

    stage = config.get("zero_optimization", {}).get("stage", 0)
    if stage not in ZERO_STAGES:
        raise InputError(path, f"zero_optimization.stage must be one of {ZERO_STAGES}, got {stage!r}")

    geometry = {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": micro_batch_size * grad_accum * world_size,
    }
    for key, value in geometry.items():
        if config.get(key, AUTO) == AUTO:
            config[key] = value
        elif int(config[key]) != value:
            raise InputError(path, f'{key} is {config[key]} but the run uses {value} (leave it "auto")')

    bf16 = train.precision == "bf16"
    config.setdefault("bf16", {})
    if config["bf16"].get("enabled", AUTO) == AUTO:
        config["bf16"]["enabled"] = bf16
    elif bool(config["bf16"]["enabled"]) != bf16:
        raise InputError(path, f"bf16.enabled is {config['bf16']['enabled']} but train.precision is {train.precision}")
    fp16 = config.setdefault("fp16", {})
    if fp16.get("enabled", AUTO) == AUTO:
        fp16["enabled"] = False
    elif fp16["enabled"]:
        raise InputError(path, "fp16 is not supported (MiniCPM trains in bf16 or fp32)")
    leftover = sorted(_auto_keys(config))
    if leftover:
        raise InputError(path, f'these keys are still "auto" and have no value in train: {leftover}')
    return config


def _auto_keys(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        return [key for name, item in value.items() for key in _auto_keys(item, f"{prefix}{name}.")]
    return [prefix.rstrip(".")] if value == AUTO else []


def zero_stage(ds_config: Mapping[str, Any] | None) -> int | None:
    if ds_config is None:
        return None
    return int(ds_config.get("zero_optimization", {}).get("stage", 0))


def make_accelerator(ds_config: Mapping[str, Any] | None, cpu: bool):
    """An Accelerator: plain (one CPU process, or DDP across torchrun ranks) or with a DeepSpeed plugin.

    Gradient accumulation is driven by the trainer itself (it weights micro-batches by their targets), so the
    accelerator is built with one accumulation step and never rescales the loss.
    """
    from accelerate import Accelerator

    if ds_config is None:
        return Accelerator(cpu=cpu, gradient_accumulation_steps=1)
    from accelerate.utils import DeepSpeedPlugin, InitProcessGroupKwargs

    plugin = DeepSpeedPlugin(hf_ds_config=dict(ds_config))
    # Without a GPU accelerate picks no backend for DeepSpeed and sees one process per rank, each its own "main"
    # (all write the same files, and wait_for_everyone() waits for no one); gloo makes it see the real ranks.
    handlers = [InitProcessGroupKwargs(backend="gloo")] if cpu else []
    return Accelerator(deepspeed_plugin=plugin, gradient_accumulation_steps=1, kwargs_handlers=handlers)
