"""One optimizer step and the held-out loss: how a step's rows become micro-batches on each rank, weighted so
that the update is the token-level mean of the whole step however it is split.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import numpy as np
import torch

from .data import IGNORE_INDEX, make_batch
from .engine import World


def rank_micro_batches(step_rows: np.ndarray, micro: int, accum: int, world: World) -> list[np.ndarray]:
    """This rank's micro-batches of one optimizer step (global batch = micro x accum x world size).

    Slot ``a`` of rank ``r`` holds rows ``[(a*W + r)*micro, +micro)`` of the step. On one process that is simply
    the step cut into micro-batches. Across ranks every rank gets exactly ``accum`` slots, so collectives (DDP's
    all-reduce, ZeRO-3's all-gathers) stay in lockstep; a slot past the end of a short last step is empty and
    the trainer fills it with a zero-weight dummy row.
    """
    slots = []
    for slot in range(accum):
        start = (slot * world.size + world.rank) * micro
        rows = step_rows[start : start + micro]
        if len(rows) or world.size > 1:
            slots.append(rows)
    return slots


def _to_device(batch: Mapping[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.ascontiguousarray(value)).to(device) for name, value in batch.items()}


def _autocast(precision: str, device: torch.device, use_deepspeed: bool):
    if use_deepspeed:
        return contextlib.nullcontext()  # the DeepSpeed engine holds bf16 weights itself (bf16.enabled)
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ValueError(f"train.precision must be fp32 or bf16, got {precision!r}")
    return torch.autocast(device_type=device.type, enabled=False)


def _targets(labels: np.ndarray) -> int:
    # The model shifts labels by one: position 0's label is never used (and is always IGNORE_INDEX here).
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


@torch.no_grad()
def evaluate_loss(
    model,
    arrays,
    rows: np.ndarray,
    micro_batch_size: int,
    device,
    precision: str,
    use_deepspeed: bool,
    document_mask: bool,
) -> float | None:
    """Token-weighted mean loss over the given rows (None when they hold no targets).

    ``document_mask``: False for plain causal packing (see :func:`make_batch`).
    """
    if len(rows) == 0:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(rows), micro_batch_size):
        batch = make_batch(arrays, rows[start : start + micro_batch_size], document_mask)
        n = _targets(batch["labels"])
        if n == 0:
            continue
        with _autocast(precision, device, use_deepspeed):
            loss = model(**_to_device(batch, device), use_cache=False).loss
        total += float(loss) * n
        count += n
    model.train(was_training)
    return total / count if count else None


def step_targets(arrays: Mapping[str, np.ndarray], step_rows: np.ndarray) -> int:
    """Prediction targets in the whole step (every rank computes it alike: no communication needed)."""
    rows = np.sort(step_rows)
    batch = make_batch(arrays, rows)
    return _targets(batch["labels"])


def optimizer_step(
    accelerator,
    model,
    optimizer,
    arrays,
    slots,
    total: int,
    lr: float,
    grad_clip: float,
    precision: str,
    use_deepspeed: bool,
    world: World,
    document_mask: bool,
):
    """One update over this rank's micro-batches; returns (mean loss per target, targets, grad norm).

    ``document_mask``: False for plain causal packing (see :func:`make_batch`).

    Each micro-batch's mean loss is weighted by its share of the step's targets (times the world size, because
    DDP and DeepSpeed average gradients over ranks), so the update equals one large batch's token-level mean
    however the step is split into micro-batches and ranks.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    if total == 0:
        return None, 0, None  # nothing to predict in this whole step (e.g. prompt-only SFT pieces)
    device = accelerator.device
    work = []
    for rows in slots:
        dummy = len(rows) == 0
        batch = make_batch(arrays, rows if not dummy else np.zeros(1, dtype=np.int64), document_mask)
        count = 0 if dummy else _targets(batch["labels"])
        if count == 0 and world.size == 1:
            continue  # alone, an empty micro-batch can simply be skipped
        work.append((batch, count))
    loss_sum = 0.0
    for index, (batch, count) in enumerate(work):
        last = index == len(work) - 1
        with _autocast(precision, device, use_deepspeed):
            out = model(**_to_device(batch, device), use_cache=False)
        # A dummy or target-free micro-batch has a NaN mean loss (0/0) whose gradient would be NaN too; it still
        # runs forward and backward (the other ranks' collectives wait for it) with an exact zero gradient.
        loss = out.loss if count else out.logits.float().sum() * 0.0
        scaled = loss * (count * world.size / total)
        if use_deepspeed:
            # DeepSpeed accumulates itself; the boundary is ours, and the loss is already weighted.
            model.set_gradient_accumulation_boundary(last)
            model.backward(scaled, scale_wrt_gas=False)
            if last:
                model.step()
        else:
            sync = contextlib.nullcontext() if last or world.size == 1 else accelerator.no_sync(model)
            with sync:
                accelerator.backward(scaled)
        loss_sum += float(loss.detach()) * count
    grad_norm = None
    if use_deepspeed:
        norm = model.get_global_grad_norm()
        grad_norm = float(norm) if norm is not None else None
    else:
        if grad_clip > 0:
            grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), grad_clip))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    loss_sum = float(accelerator.reduce(torch.tensor(loss_sum, device=device), reduction="sum"))
    return loss_sum / total, total, grad_norm
