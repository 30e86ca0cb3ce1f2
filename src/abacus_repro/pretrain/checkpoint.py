"""Checkpoints inside a phase (resume after a crash or a pre-emption) and the state a phase hands to the next.

A checkpoint is a directory ``step-00000040`` holding accelerate's full training state (weights, AdamW moments
and step counts, RNG states; DeepSpeed's sharded files under ZeRO) plus ``progress.json``: the step reached, the
counters and metrics so far, and the run's fingerprint. It is written under ``step-….tmp`` and renamed only
when complete, so a process killed while writing leaves nothing that looks resumable. A restarted phase
resumes from the newest checkpoint whose fingerprint matches (same phase, seed, settings, data and starting
model); anything else is set aside with a log line and the phase starts over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..io import write_json

log = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"
PREFIX = "step-"
PARTIAL_SUFFIX = ".tmp"
_NAME = re.compile(rf"^{PREFIX}(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def list_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (renamed, with progress.json), oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _NAME.match(path.name)
        if match and path.is_dir() and (path / PROGRESS_FILE).exists():
            found.append((int(match.group(1)), path))
    return sorted(found)


def read_progress(path: str | Path) -> dict | None:
    """A checkpoint's progress.json, or None when it is unreadable (treated as not resumable)."""
    try:
        return json.loads((Path(path) / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def find_resumable(directory: str | Path, fingerprint: str) -> tuple[Path, dict] | None:
    """The newest checkpoint written by this same run (matching fingerprint), with its progress."""
    for step, path in reversed(list_checkpoints(directory)):
        progress = read_progress(path)
        if progress is None:
            log.warning("checkpoint %s has an unreadable %s; skipped", path, PROGRESS_FILE)
            continue
        if progress.get("fingerprint") != fingerprint:
            log.warning("checkpoint %s belongs to another run (settings, data or model differ); not resumed", path)
            continue
        if int(progress.get("step", -1)) != step:
            log.warning("checkpoint %s: progress says step %s; skipped", path, progress.get("step"))
            continue
        return path, progress
    return None


def clear_partial(directory: str | Path) -> None:
    """Remove half-written checkpoints left by a killed process."""
    directory = Path(directory)
    if directory.is_dir():
        for path in directory.iterdir():
            if path.name.endswith(PARTIAL_SUFFIX):
                log.info("removing partial checkpoint %s", path)
                shutil.rmtree(path, ignore_errors=True)


def save_checkpoint(accelerator, directory: str | Path, step: int, progress: Mapping[str, Any], keep: int) -> Path:
    """Write the full training state for ``step`` atomically; keep the newest ``keep`` checkpoints.

    Every rank calls this (DeepSpeed writes one shard per rank); the main process writes progress.json, renames
    the directory into place and prunes.
    """
    directory = Path(directory)
    final = directory / checkpoint_name(step)
    partial = directory / (final.name + PARTIAL_SUFFIX)
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(partial / PROGRESS_FILE, dict(progress))
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)  # atomic on one file system: a checkpoint is complete or absent
        for _old_step, old in list_checkpoints(directory)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def save_final_state(accelerator, directory: str | Path, progress: Mapping[str, Any]) -> None:
    """The phase's final training state (what the next phase may continue from: the anneal phase does)."""
    directory = Path(directory)
    if accelerator.is_main_process:
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(directory))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(directory / PROGRESS_FILE, dict(progress))
    accelerator.wait_for_everyone()


def run_fingerprint(parts: Mapping[str, Any]) -> str:
    """sha256 of the JSON of everything that decides the training trajectory."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()
