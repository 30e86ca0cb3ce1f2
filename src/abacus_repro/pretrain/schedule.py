"""Learning-rate schedules as pure functions of the optimizer step (0-based: the step about to be taken).

WCL (Warmup-Cosine-Linear, the Abacus recipe): linear warmup to ``lr_peak`` over ``warmup_steps``; a cosine
from ``lr_peak`` towards ``lr_min`` whose full length is ``cosine_horizon`` steps (counted from step 0, warmup
included) but which is cut short where the cosine phase's token budget ends (``cosine_steps``); the anneal
phase then goes linearly from the cut value to ``lr_final`` over its own ``anneal_steps``. The global step runs
on across the two phases: the anneal phase's first step is ``cosine_steps``.

The tiny ``base`` phase (a stand-in for the MiniCPM checkpoint the paper starts from) has its own short schedule;
SFT's lives with the SFT phase (abacus_repro.sft.train) and reuses the warmup here.

Two other schedules (``train.schedule.kind``), to test the recipe's claim that WCL's cosine stable phase helps:

* ``wsd`` (Warmup-Stable-Decay, MiniCPM's own): the same linear warmup to ``lr_peak``; then ``lr_peak`` held
  constant for the rest of the cosine phase; the anneal phase decays linearly from ``lr_peak`` to ``lr_final``
  over its ``anneal_steps`` (the shape of WCL's anneal, so only the stable phase differs). ``lr_min`` and
  ``cosine_horizon`` are unused.
* ``cosine`` (plain cosine): the same warmup; then one cosine from ``lr_peak`` down to ``lr_final`` whose full
  length is ``cosine_horizon`` steps (counted from step 0, warmup included), run on by the global step across
  the cosine and anneal phases with no linear part; past the horizon the rate stays at ``lr_final``. The cosine
  phase runs before the anneal phase's length is known, so the horizon is the setting: set it to the cosine plus
  anneal steps for the textbook schedule ending on ``lr_final`` at the last step. ``lr_min`` is unused.
"""

from __future__ import annotations

import math

from ..settings import BasePhaseSettings, ScheduleSettings, TrainSettings

BASE_FLOOR = 0.1  # base: cosine down to 10% of train.base.lr


def warmup_lr(step: int, peak: float, warmup_steps: int) -> float:
    # (step + 1) so the very first update already moves the weights and step warmup_steps - 1 reaches the peak.
    return peak * (step + 1) / warmup_steps


def _cosine(step: int, peak: float, floor: float, warmup_steps: int, horizon: int) -> float:
    span = max(1, horizon - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))


def cosine_cut_lr(schedule: ScheduleSettings, cosine_steps: int) -> float:
    """The WCL cosine's value at the cut: the rate the first step after the cosine phase would have had."""
    warmup = schedule.warmup_steps
    if cosine_steps < warmup:
        return warmup_lr(cosine_steps, schedule.lr_peak, warmup)
    return _cosine(cosine_steps, schedule.lr_peak, schedule.lr_min, warmup, schedule.cosine_horizon)


def wcl_lr(global_step: int, schedule: ScheduleSettings, cosine_steps: int, anneal_steps: int) -> float:
    """WCL learning rate at ``global_step`` (cosine phase: 0 .. cosine_steps-1; anneal: cosine_steps ..)."""
    peak, floor = schedule.lr_peak, schedule.lr_min
    warmup, horizon = schedule.warmup_steps, schedule.cosine_horizon
    if global_step < 0:
        raise ValueError(f"step must be non-negative, got {global_step}")
    if global_step < cosine_steps:
        if global_step < warmup:
            return warmup_lr(global_step, peak, warmup)
        return _cosine(global_step, peak, floor, warmup, horizon)
    cut = cosine_cut_lr(schedule, cosine_steps)
    final = schedule.lr_final
    # Anneal step a (0-based) moves (a + 1)/anneal_steps of the way, so the last step lands on lr_final.
    done = min(1.0, (global_step - cosine_steps + 1) / max(1, anneal_steps))
    return cut + (final - cut) * done


def wsd_lr(global_step: int, schedule: ScheduleSettings, cosine_steps: int, anneal_steps: int) -> float:
    """WSD learning rate: warmup, ``lr_peak`` through the cosine phase, linear decay to ``lr_final`` in the anneal."""
    peak, warmup = schedule.lr_peak, schedule.warmup_steps
    if global_step < 0:
        raise ValueError(f"step must be non-negative, got {global_step}")
    if global_step < warmup and global_step < cosine_steps:
        return warmup_lr(global_step, peak, warmup)
    if global_step < cosine_steps:
        return peak
    # Where the cosine phase ended inside the warmup, the decay starts from the rate reached there.
    start = warmup_lr(cosine_steps, peak, warmup) if cosine_steps < warmup else peak
    done = min(1.0, (global_step - cosine_steps + 1) / max(1, anneal_steps))
    return start + (schedule.lr_final - start) * done


def plain_cosine_lr(global_step: int, schedule: ScheduleSettings) -> float:
    """Plain cosine: warmup, then one cosine from ``lr_peak`` to ``lr_final`` ending at ``cosine_horizon``."""
    if global_step < 0:
        raise ValueError(f"step must be non-negative, got {global_step}")
    warmup = schedule.warmup_steps
    if global_step < warmup:
        return warmup_lr(global_step, schedule.lr_peak, warmup)
    # Horizon - 1 is the last step of the cosine, so a run of exactly cosine_horizon steps ends on lr_final.
    horizon = max(warmup + 1, schedule.cosine_horizon - 1)
    return _cosine(global_step, schedule.lr_peak, schedule.lr_final, warmup, horizon)


def schedule_lr(global_step: int, schedule: ScheduleSettings, cosine_steps: int, anneal_steps: int) -> float:
    """The rate of ``train.schedule.kind`` at ``global_step`` (cosine phase: 0 .. cosine_steps-1; anneal after)."""
    if schedule.kind == "wcl":
        return wcl_lr(global_step, schedule, cosine_steps, anneal_steps)
    if schedule.kind == "wsd":
        return wsd_lr(global_step, schedule, cosine_steps, anneal_steps)
    if schedule.kind == "cosine":
        return plain_cosine_lr(global_step, schedule)
    raise ValueError(f"unknown schedule kind {schedule.kind!r}")


def base_lr(step: int, base: BasePhaseSettings, total_steps: int) -> float:
    """Base phase: warmup to ``train.base.lr`` then a cosine to 10% of it over the phase's remaining steps."""
    peak, warmup = base.lr, base.warmup_steps
    warmup = min(warmup, max(1, total_steps - 1))
    if step < warmup:
        return warmup_lr(step, peak, warmup)
    # Horizon = the phase's last step, so the final step sits at the floor.
    return _cosine(step, peak, peak * BASE_FLOOR, warmup, max(warmup + 1, total_steps - 1))


def pretrain_lr(
    phase: str, step_in_phase: int, train: TrainSettings, phase_steps: int, cosine_steps: int | None
) -> float:
    """The rate for one step of a pretraining phase (base, cosine, anneal).

    ``cosine_steps`` is needed for the anneal phase only (its global step starts there).
    """
    if phase == "base":
        return base_lr(step_in_phase, train.base, phase_steps)
    if phase == "cosine":
        return schedule_lr(step_in_phase, train.schedule, cosine_steps=phase_steps, anneal_steps=0)
    if phase == "anneal":
        if cosine_steps is None:
            raise ValueError("the anneal phase needs the cosine phase's step count")
        return schedule_lr(cosine_steps + step_in_phase, train.schedule, cosine_steps, phase_steps)
    raise ValueError(f"unknown pretraining phase {phase!r}")
