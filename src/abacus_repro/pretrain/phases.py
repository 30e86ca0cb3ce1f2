"""The four training phases and what sets one apart from another; everything else is the one loop in trainer.py.

A phase differs in its batch geometry (micro batch, accumulation), how many times it passes over its data, the
learning rate of each step and where its global step starts (the anneal phase continues the cosine phase's WCL
schedule). Pretraining phases (base, cosine, anneal) are planned here; the SFT phase in abacus_repro.sft.train.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from ..errors import InputError
from ..settings import Settings, SftSettings, TrainSettings
from .schedule import pretrain_lr

# The order matters: a phase's index seeds its row split and epoch orders.
PHASES = ("base", "cosine", "anneal", "sft")
STATE_FILE = "trainer_state.json"


class TrainJob(Settings):
    """What a train job reads: the run's seed, the `train` section and the `sft` section (the SFT phase's)."""

    seed: int = Field(ge=0)
    train: TrainSettings
    sft: SftSettings


@dataclass(frozen=True)
class PhasePlan:
    """What one phase trains with, besides the loop every phase shares."""

    name: str
    micro_batch_size: int
    grad_accum: int
    epochs: int
    # (step in the phase, the phase's steps) -> the rate of that step.
    learning_rate: Callable[[int, int], float]
    # The anneal phase's: the cosine phase's step count, where its global step starts; None for the others.
    cosine_steps: int | None
    # Settings beyond `train` that decide the trajectory (the SFT phase's `sft` section), for the run fingerprint.
    own_settings: Mapping[str, Any] | None

    @property
    def index(self) -> int:
        return phase_index(self.name)

    @property
    def global_start(self) -> int:
        return self.cosine_steps if self.name == "anneal" else 0

    def hyperparameters(self) -> dict[str, int]:
        return {"micro_batch_size": self.micro_batch_size, "grad_accum": self.grad_accum, "epochs": self.epochs}


def phase_index(phase: str) -> int:
    if phase not in PHASES:
        raise ValueError(f"training phase must be one of {PHASES}, got {phase!r}")
    return PHASES.index(phase)


def plan_phase(phase: str, train: TrainSettings, sft: SftSettings, model_dir: str | Path) -> PhasePlan:
    """The plan of ``phase`` starting from ``model_dir`` (the anneal phase reads the cosine phase's step count)."""
    phase_index(phase)
    if phase == "sft":
        from ..sft.train import sft_phase_plan

        return sft_phase_plan(train, sft)
    return pretrain_phase_plan(phase, train, model_dir)


def pretrain_phase_plan(phase: str, train: TrainSettings, model_dir: str | Path) -> PhasePlan:
    """base, cosine, anneal: one pass over the phase's rows at train's batch geometry, on their schedule."""
    cosine_steps = cosine_steps_from(model_dir) if phase == "anneal" else None
    return PhasePlan(
        name=phase,
        micro_batch_size=train.micro_batch_size,
        grad_accum=train.grad_accum,
        epochs=1,
        learning_rate=lambda step, phase_steps: pretrain_lr(phase, step, train, phase_steps, cosine_steps),
        cosine_steps=cosine_steps,
        own_settings=None,
    )


def read_trainer_state(model_dir: str | Path) -> dict:
    path = Path(model_dir) / STATE_FILE
    if not path.exists():
        raise InputError(path, "trainer state not found (was this model written by the previous training phase?)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(path, f"not valid JSON ({err})") from err


def cosine_steps_from(model_dir: str | Path) -> int:
    """The cosine phase's step count, from the cosine model's trainer state (the anneal phase's input)."""
    state = read_trainer_state(model_dir)
    if state.get("phase") != "cosine":
        raise InputError(Path(model_dir) / STATE_FILE, f"expected a cosine-phase model, found {state.get('phase')!r}")
    return int(state["phase_steps"])
