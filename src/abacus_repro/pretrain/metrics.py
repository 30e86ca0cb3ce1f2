"""A phase's metrics log (metrics.jsonl, the progress bar, periodic log lines) and its two plots (loss, lr).

Every metrics line has a "kind": "train" (one per optimizer step), "validation" (the phase's held-out rows' loss
before and after; with a "source", the loss on that source's validation split, every ``train.eval_every`` steps),
"resume" (where a restarted run picked up) or "summary" (wall time; kept out of the model directory so that stays
byte-identical). A resumed run rewrites the lines up to its checkpoint, then appends. Only the main process
writes; on the other ranks every call is a no-op but the progress bar's (disabled there).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from tqdm import tqdm

from ..settings import ScheduleSettings
from .schedule import schedule_lr

log = logging.getLogger(__name__)


class MetricsLog:
    """metrics.jsonl of one phase, open for the length of a ``with`` block, with the phase's progress bar."""

    def __init__(self, path: Path, main: bool, phase: str, total_steps: int, start_step: int, log_every: int):
        self.path, self.main, self.phase = Path(path), main, phase
        self.total_steps, self.start_step, self.log_every = total_steps, start_step, log_every
        self._stack = contextlib.ExitStack()
        self._file = None
        self._bar = None

    def __enter__(self) -> Self:
        if self.main:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self._stack.enter_context(open(self.path, "w", encoding="utf-8"))
        self._bar = self._stack.enter_context(
            tqdm(
                total=self.total_steps,
                initial=self.start_step,
                desc=f"train {self.phase}",
                mininterval=5.0,
                disable=not self.main,
            )
        )
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def _write(self, record: Mapping) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def begin(self, validation_loss: float | None, history: list[dict], resumed_from: str | None) -> None:
        """The starting validation loss, then (when resumed) the steps restored and where the run picked up."""
        if validation_loss is not None:
            self._write({"kind": "validation", "step": 0, "loss": validation_loss})
        for record in history:
            self._write(record)
        if resumed_from:
            self._write({"kind": "resume", "step": self.start_step, "checkpoint": resumed_from})

    def step(self, record: Mapping) -> None:
        """One optimizer step's line; every ``log_every`` steps (and at the last) a log line and a flush."""
        self._bar.update(1)
        if not self.main:
            return
        self._write(record)
        step = record["step"]
        if step % self.log_every == 0 or step == self.total_steps:
            self.flush()
            loss = record["loss"]
            log.info(
                "%s step %d/%d lr %.3e loss %s (%.2f steps/s)",
                self.phase,
                step,
                self.total_steps,
                record["lr"],
                f"{loss:.4f}" if loss is not None else "-",
                (step - self.start_step) / max(1e-9, record["seconds"]),
            )

    def lines(self, records: list[Mapping]) -> None:
        """Lines other than a step's (the per-source validation losses), written as they come."""
        for record in records:
            self._write(record)

    def end(self, validation_loss: float | None, by_source: list[Mapping], summary: Mapping) -> None:
        """The final validation losses (the phase's held-out rows, then each source's) and the summary."""
        if validation_loss is not None:
            self._write({"kind": "validation", "step": self.total_steps, "loss": validation_loss})
        self.lines(by_source)
        self._write(summary)


# The label and title each schedule kind's formula gets in lr.png (WCL's are the plots' historical ones).
SCHEDULE_NAMES = {"wcl": "Warmup-Cosine-Linear", "wsd": "Warmup-Stable-Decay", "cosine": "plain cosine"}
SCHEDULE_LABELS = {"wcl": "WCL formula", "wsd": "WSD formula", "cosine": "cosine formula"}


def schedule_curves(phase: str, schedule: ScheduleSettings, total_steps: int, cosine_steps: int | None) -> dict:
    """The schedule's formula around a cosine or anneal phase, for the learning-rate plot: {label: (steps, rates)}.

    Cosine phase: the formula as configured up to its horizon (showing where the phase cuts it). Anneal phase:
    the whole schedule, warmup and cosine phase included, so the plot shows the schedule in one picture.
    """
    if phase not in ("cosine", "anneal"):
        return {}
    if phase == "cosine":
        end, cut = max(schedule.cosine_horizon, total_steps), total_steps
        anneal = 0
    else:
        end, cut, anneal = cosine_steps + total_steps, cosine_steps, total_steps
    stride = max(1, end // 2000)
    steps = list(range(0, end, stride))
    # Cosine phase: no cut (cosine_steps = end), so the curve runs on past the phase's last step.
    rates = [schedule_lr(s, schedule, end if phase == "cosine" else cut, anneal) for s in steps]
    return {SCHEDULE_LABELS[schedule.kind]: ([s + 1 for s in steps], rates)}


def train_records(history: list[dict]) -> list[dict]:
    """The optimizer steps' lines of a history that also holds per-source validation lines."""
    return [record for record in history if record["kind"] == "train"]


def source_curves(history: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """{source: (steps, losses)} from the per-source validation lines, sources in order of appearance."""
    curves: dict[str, tuple[list[int], list[float]]] = {}
    for record in history:
        if record["kind"] == "validation" and "source" in record:
            steps, losses = curves.setdefault(record["source"], ([], []))
            steps.append(record["step"])
            losses.append(record["loss"])
    return curves


def plot_curves(
    history: list[dict],
    validation: list[tuple[int, float | None]],
    phase: str,
    loss_path: str | Path,
    lr_path: str | Path,
    formula: Mapping[str, tuple[list, list]],
    schedule_name: str,
) -> None:
    """loss.png (training loss per step, validation points, each source's validation curve) and lr.png (the rates
    used, over the formula). ``history`` may hold per-source validation lines beside the steps'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_source = source_curves(history)
    history = train_records(history)

    steps = [r["step"] for r in history if r["loss"] is not None]
    losses = [r["loss"] for r in history if r["loss"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, losses, label="train", linewidth=1)
    points = [(s, v) for s, v in validation if v is not None]
    if points:
        ax.scatter([s for s, _ in points], [v for _, v in points], color="C1", label="validation", zorder=3)
    for index, (source, (x, y)) in enumerate(by_source.items()):
        ax.plot(x, y, color=f"C{index + 2}", linestyle="--", marker=".", linewidth=1, label=f"validation {source}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(f"{phase}: training loss")
    ax.legend()
    fig.tight_layout()
    Path(loss_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(loss_path, dpi=100, metadata={"Software": None})
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (x, y) in formula.items():
        ax.plot(x, y, color="0.6", linestyle="--", linewidth=1, label=label)
    ax.plot([r["global_step"] for r in history], [r["lr"] for r in history], linewidth=1.5, label=f"{phase} (used)")
    ax.set_xlabel("global step" if phase == "anneal" else "step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"{phase}: learning rate" + (f" ({schedule_name})" if formula else ""))
    if formula:
        ax.legend()
    fig.tight_layout()
    Path(lr_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(lr_path, dpi=100, metadata={"Software": None})
    plt.close(fig)
