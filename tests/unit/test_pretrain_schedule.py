"""WCL schedule: warmup, cosine cut short by the token budget, linear anneal; base and SFT schedules."""

from __future__ import annotations

import itertools
import math

import pytest

from abacus_repro.pretrain import base_lr, cosine_cut_lr, pretrain_lr, wcl_lr
from abacus_repro.settings import BasePhaseSettings, ScheduleSettings, TrainSettings
from abacus_repro.sft.train import sft_lr

PAPER = ScheduleSettings(lr_peak=1e-3, lr_min=1e-4, lr_final=1e-4, warmup_steps=1000, cosine_horizon=21000)


def test_paper_scale_values():
    cosine_steps, anneal_steps = 10000, 1000
    assert wcl_lr(0, PAPER, cosine_steps, anneal_steps) == pytest.approx(1e-6)
    assert wcl_lr(999, PAPER, cosine_steps, anneal_steps) == pytest.approx(1e-3)
    # Cosine over the 20000 steps after warmup: at the cut (step 10000) 9000/20000 of the way,
    # 1e-4 + 0.5 * 9e-4 * (1 + cos(0.45 pi)) = 6.204e-4.
    cut = cosine_cut_lr(PAPER, cosine_steps)
    assert cut == pytest.approx(1e-4 + 0.5 * 9e-4 * (1 + math.cos(0.45 * math.pi)))
    assert cut == pytest.approx(6.204e-4, abs=1e-7)
    # The last cosine step sits just above the cut; the anneal phase starts just below it and ends on lr_final.
    assert wcl_lr(cosine_steps - 1, PAPER, cosine_steps, anneal_steps) == pytest.approx(cut, rel=1e-3)
    assert wcl_lr(cosine_steps, PAPER, cosine_steps, anneal_steps) == pytest.approx(cut - (cut - 1e-4) / 1000)
    assert wcl_lr(cosine_steps + 499, PAPER, cosine_steps, anneal_steps) == pytest.approx((cut + 1e-4) / 2)
    assert wcl_lr(cosine_steps + anneal_steps - 1, PAPER, cosine_steps, anneal_steps) == pytest.approx(1e-4)


def test_wcl_shape():
    settings = PAPER.model_copy(update={"warmup_steps": 10, "cosine_horizon": 200})
    lrs = [wcl_lr(step, settings, 120, 30) for step in range(150)]
    warmup, cosine, anneal = lrs[:10], lrs[10:120], lrs[120:]
    assert all(b > a for a, b in itertools.pairwise(warmup))
    assert all(b < a for a, b in itertools.pairwise(cosine))
    assert all(b < a for a, b in itertools.pairwise(anneal))
    assert max(lrs) == pytest.approx(1e-3) and min(cosine) > 1e-4
    steps = [b - a for a, b in itertools.pairwise(anneal)]
    assert max(steps) == pytest.approx(min(steps))  # linear
    # A cosine phase longer than the horizon stays on the floor.
    assert wcl_lr(500, settings, 600, 10) == pytest.approx(1e-4)


def test_base_and_sft_schedules():
    base = BasePhaseSettings(lr=3e-3, warmup_steps=30)
    lrs = [base_lr(step, base, 300) for step in range(300)]
    assert lrs[29] == pytest.approx(3e-3) and lrs[-1] == pytest.approx(3e-4)
    assert all(b <= a for a, b in itertools.pairwise(lrs[29:]))
    sft = [sft_lr(step, 1.6e-3, 200) for step in range(200)]
    assert sft[0] == pytest.approx(1.6e-4) and sft[9] == pytest.approx(1.6e-3)  # 5% warmup = 10 steps
    assert sft[-1] == pytest.approx(1.6e-4)
    decay = [b - a for a, b in itertools.pairwise(sft[9:])]
    assert max(decay) == pytest.approx(min(decay))


def test_phase_lr_continues_the_global_step_into_the_anneal_phase():
    train = TrainSettings(schedule=PAPER, base=BasePhaseSettings(lr=1e-3, warmup_steps=5))
    assert pretrain_lr("anneal", 0, train, 1000, cosine_steps=10000) == wcl_lr(10000, PAPER, 10000, 1000)
    assert pretrain_lr("cosine", 5000, train, 10000, cosine_steps=None) == wcl_lr(5000, PAPER, 10000, 0)
    with pytest.raises(ValueError, match="cosine phase"):
        pretrain_lr("anneal", 0, train, 1000, cosine_steps=None)
