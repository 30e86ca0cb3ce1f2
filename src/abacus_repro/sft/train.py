"""The SFT phase: what sets it apart from pretraining. Its loop, checkpoints and outputs are the pretraining
trainer's (abacus_repro.pretrain.trainer); the rule is the same `train` rule, phase ``sft``.

* Batch and passes: ``sft.micro_batch_size`` rows per micro-batch (``train.grad_accum`` of them per step) and
  ``sft.epochs`` passes over the data, each in its own seeded order.
* Schedule: a warmup over 5% of the steps to ``sft.lr``, then linear down to 10% of it at the last step (the
  anneal phase's shape).
* Loss: the packed rows carry a loss mask (abacus_repro.tokenization, ``sft=True``) that marks only the responses
  as targets; a step whose rows hold no target (prompt-only pieces of split documents) updates nothing.
* The ``sft`` section is part of the run's fingerprint: a checkpoint taken under other SFT settings is not resumed.
"""

from __future__ import annotations

from ..pretrain.phases import PhasePlan
from ..pretrain.schedule import warmup_lr
from ..settings import SftSettings, TrainSettings

SFT_FLOOR = 0.1  # linear down to 10% of sft.lr
SFT_WARMUP_FRACTION = 0.05


def sft_warmup_steps(total_steps: int) -> int:
    return max(1, round(SFT_WARMUP_FRACTION * total_steps))


def sft_lr(step: int, peak: float, total_steps: int) -> float:
    """Warmup over 5% of the steps, then linear from ``peak`` (``sft.lr``) to 10% of it at the last step."""
    warmup = sft_warmup_steps(total_steps)
    if step < warmup:
        return warmup_lr(step, peak, warmup)
    span = max(1, total_steps - 1 - (warmup - 1))
    done = min(1.0, (step - (warmup - 1)) / span)
    return peak + (peak * SFT_FLOOR - peak) * done


def sft_phase_plan(train: TrainSettings, sft: SftSettings) -> PhasePlan:
    return PhasePlan(
        name="sft",
        micro_batch_size=sft.micro_batch_size,
        grad_accum=train.grad_accum,
        epochs=sft.epochs,
        learning_rate=lambda step, phase_steps: sft_lr(step, sft.lr, phase_steps),
        cosine_steps=None,
        own_settings=sft.model_dump(mode="json"),
    )
