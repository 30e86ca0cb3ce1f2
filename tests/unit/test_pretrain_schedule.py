"""WCL schedule: warmup, cosine cut short by the token budget, linear anneal; base and SFT schedules."""

from __future__ import annotations

import itertools
import math

import pytest

from abacus_repro.pretrain import base_lr, cosine_cut_lr, plain_cosine_lr, pretrain_lr, schedule_lr, wcl_lr, wsd_lr
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


TINY = PAPER.model_copy(update={"warmup_steps": 10, "cosine_horizon": 150})


def test_wsd_warmup_stable_then_linear_decay():
    wsd = TINY.model_copy(update={"kind": "wsd"})
    lrs = [schedule_lr(step, wsd, 120, 30) for step in range(150)]
    assert lrs[:10] == [wcl_lr(step, TINY, 120, 30) for step in range(10)]  # the same warmup
    assert lrs[9:120] == [pytest.approx(1e-3)] * 111  # stable at the peak through the cosine phase
    # Anneal step a moves (a + 1)/30 of the way from the peak to lr_final: continuous at the border.
    assert lrs[120] == pytest.approx(1e-3 - 9e-4 / 30) and lrs[134] == pytest.approx(1e-3 - 9e-4 * 15 / 30)
    assert lrs[-1] == pytest.approx(1e-4)
    decay = [b - a for a, b in itertools.pairwise(lrs[119:])]
    assert max(decay) == pytest.approx(min(decay))  # linear
    assert wsd_lr(500, wsd, 120, 30) == pytest.approx(1e-4)


def test_plain_cosine_one_curve_across_both_phases():
    cosine = TINY.model_copy(update={"kind": "cosine"})
    lrs = [schedule_lr(step, cosine, 120, 30) for step in range(150)]
    assert lrs[9] == pytest.approx(1e-3)
    # Half way between the warmup's end (step 10) and the last step (149): peak and lr_final averaged.
    assert plain_cosine_lr(10 + 139 // 2, cosine) == pytest.approx(1e-4 + 4.5e-4 * (1 + math.cos(math.pi * 69 / 139)))
    assert lrs[-1] == pytest.approx(1e-4) and plain_cosine_lr(400, cosine) == pytest.approx(1e-4)
    # The warmup's last step and the cosine's first both sit on the peak (as in WCL); strictly down after.
    assert lrs[10] == pytest.approx(1e-3) and all(b < a for a, b in itertools.pairwise(lrs[10:]))
    # Continuity at the cosine/anneal border: the same formula, no jump; the step there is the cosine's own.
    assert lrs[119] - lrs[120] == pytest.approx(lrs[118] - lrs[119], rel=0.1)
    # The phase split does not matter: the rate is a function of the global step alone.
    assert [schedule_lr(s, cosine, 60, 90) for s in range(150)] == lrs


def test_default_kind_is_wcl_byte_for_byte():
    assert PAPER.kind == "wcl"
    for step in (0, 500, 999, 5000, 9999, 10000, 10500, 10999):
        assert schedule_lr(step, PAPER, 10000, 1000) == wcl_lr(step, PAPER, 10000, 1000)
    train = TrainSettings(schedule=PAPER, base=BasePhaseSettings(lr=1e-3, warmup_steps=5))
    wsd = TrainSettings(schedule=PAPER.model_copy(update={"kind": "wsd"}))
    assert pretrain_lr("anneal", 3, wsd, 1000, cosine_steps=10000) == wsd_lr(10003, wsd.schedule, 10000, 1000)
    assert pretrain_lr("cosine", 5000, wsd, 10000, cosine_steps=None) == pytest.approx(1e-3)
    assert pretrain_lr("anneal", 3, train, 1000, cosine_steps=10000) == wcl_lr(10003, PAPER, 10000, 1000)
