"""Pretraining: the WCL (Warmup-Cosine-Linear) schedule and one trainer for base, cosine and anneal (SFT runs the
same loop with its own batch, epochs and schedule: abacus_repro.sft.train)."""

from .schedule import base_lr, cosine_cut_lr, plain_cosine_lr, pretrain_lr, schedule_lr, wcl_lr, wsd_lr

__all__ = ["base_lr", "cosine_cut_lr", "plain_cosine_lr", "pretrain_lr", "schedule_lr", "wcl_lr", "wsd_lr"]
