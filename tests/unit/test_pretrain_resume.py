"""Resume and hand-over: a phase killed (SIGKILL) after a checkpoint and restarted ends with the weights of an
uninterrupted run; the anneal phase continues the cosine phase's optimizer state; learning rates follow WCL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from abacus_repro.errors import InputError
from abacus_repro.pretrain import wcl_lr
from abacus_repro.pretrain.checkpoint import PROGRESS_FILE, list_checkpoints
from abacus_repro.pretrain.launch import read_spec, write_spec
from abacus_repro.pretrain.trainer import STATE_FILE, train_phase
from abacus_repro.tokenization import tokenize_and_pack, write_packed

from .pretrain_fixtures import (
    CODE_SNIPPETS,
    TEXT_SNIPPETS,
    build_model_dir,
    build_tokenizer,
    phase_paths,
    read_metrics,
    synthetic_corpus,
    training_settings,
)

SEQ_LEN = 64
KILL_AT = 8
# Holds the process still right after the checkpoint at KILL_AT is complete, so the test kills it there.
HOLDER = """
import pathlib, sys, time
from abacus_repro.pretrain.launch import read_spec
from abacus_repro.pretrain.trainer import train_phase

settings, paths = read_spec(sys.argv[1])
marker, kill_at = pathlib.Path(sys.argv[2]), int(sys.argv[3])


def hold(step, path):
    if step == kill_at:
        marker.write_text(str(path))
        time.sleep(600)


train_phase(settings, paths, on_checkpoint=hold)
"""


def settings(**overrides):
    base = {"micro_batch_size": 2, "grad_accum": 2, "checkpoint_every": 4, "keep_checkpoints": 2}
    return training_settings(5, **{**base, **overrides})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    tokenizer = build_tokenizer(root / "tokenizer")
    init = build_model_dir(root / "init", root / "tokenizer")
    packed = tokenize_and_pack(synthetic_corpus(50, CODE_SNIPPETS + TEXT_SNIPPETS, "mixed"), tokenizer, SEQ_LEN, False)
    data = root / "tok"
    write_packed(packed, data / "tokens.npy", data / "segments.npy", data / "loss_mask.npy", data / "meta.json")
    reference = spec_for(root, init, data, "reference")
    state = train_phase(**reference)
    return {"root": root, "init": init, "data": data, "reference": reference, "reference_state": state}


def spec_for(root: Path, model_dir: Path, data: Path, name: str, phase: str = "cosine", **overrides) -> dict:
    """train_phase's arguments (``train_phase(**spec)``) for a phase written under root/name."""
    job = settings(**overrides)
    return {"settings": job, "paths": phase_paths(root / name, phase, model_dir, data, job)}


def out_dir(spec: dict) -> Path:
    return Path(spec["paths"].output["model"])


def metrics_path(spec: dict) -> Path:
    return Path(spec["paths"].output["metrics"])


def weights(spec: dict) -> dict[str, torch.Tensor]:
    return load_file(str(out_dir(spec) / "model.safetensors"))


def test_killed_phase_resumes_to_the_uninterrupted_weights(workspace, tmp_path):
    reference = workspace["reference"]
    total = workspace["reference_state"]["phase_steps"]
    assert total > KILL_AT + 4  # killed mid-run, with checkpoints before and after the kill point
    spec = spec_for(tmp_path, workspace["init"], workspace["data"], "run")
    spec_path = write_spec(tmp_path / "spec.json", spec["settings"], spec["paths"])
    (tmp_path / "holder.py").write_text(HOLDER)
    marker = tmp_path / "checkpointed"
    process = subprocess.Popen(
        [sys.executable, str(tmp_path / "holder.py"), str(spec_path), str(marker), str(KILL_AT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if process.poll() is not None:
            pytest.fail(f"trainer exited early ({process.returncode}): {process.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("no checkpoint within 120 s")
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    process.stderr.close()

    checkpoints = out_dir(spec).parent / "checkpoints"
    assert [step for step, _ in list_checkpoints(checkpoints)] == [4, KILL_AT]
    assert not out_dir(spec).exists()  # the killed run wrote no model
    # A checkpoint half-written when a process died must be ignored (and cleaned up), not resumed.
    partial = checkpoints / "step-00000012.tmp"
    partial.mkdir()
    (partial / PROGRESS_FILE).write_text("{")

    state = train_phase(*read_spec(spec_path))
    assert state["resumed_from"] == f"step-{KILL_AT:08d}"
    assert not checkpoints.exists()  # removed once the phase completed
    resumed, uninterrupted = weights(spec), weights(reference)
    assert resumed.keys() == uninterrupted.keys()
    for name in uninterrupted:
        assert torch.equal(resumed[name], uninterrupted[name]), name
    model_dir, reference_dir = out_dir(spec), out_dir(reference)
    for name in ("model.safetensors", STATE_FILE, "config.json"):
        assert (model_dir / name).read_bytes() == (reference_dir / name).read_bytes(), name
    # The optimizer state the next phase would continue from is the same too.
    optimizer = torch.load(model_dir.parent / "state" / "optimizer.bin", weights_only=False)
    expected = torch.load(reference_dir.parent / "state" / "optimizer.bin", weights_only=False)
    for key, slot in expected["state"].items():
        for name, value in slot.items():
            assert torch.equal(optimizer["state"][key][name], value), (key, name)

    metrics = read_metrics(metrics_path(spec))
    steps = [m["step"] for m in metrics if m["kind"] == "train"]
    assert steps == list(range(1, total + 1))  # every step once, the resumed ones after the restored ones
    assert [m for m in metrics if m["kind"] == "resume"] == [
        {"kind": "resume", "step": KILL_AT, "checkpoint": f"step-{KILL_AT:08d}"}
    ]
    reference_losses = [m["loss"] for m in read_metrics(metrics_path(reference)) if m["kind"] == "train"]
    assert [m["loss"] for m in metrics if m["kind"] == "train"] == reference_losses


def test_checkpoint_of_another_run_is_not_resumed(workspace, tmp_path):
    first = spec_for(tmp_path, workspace["init"], workspace["data"], "a")
    # The first run's checkpoints are copied as they are written (a completed phase removes its own), then
    # offered to runs whose settings differ: in the trajectory (not resumable) or only operationally (resumable).
    train_phase(**first, on_checkpoint=lambda step, path: shutil.copytree(path, tmp_path / "kept" / path.name))
    other = spec_for(tmp_path, workspace["init"], workspace["data"], "b", weight_decay=0.0)
    shutil.copytree(tmp_path / "kept", out_dir(other).parent / "checkpoints")
    assert train_phase(**other)["resumed_from"] is None
    same = spec_for(tmp_path, workspace["init"], workspace["data"], "c", log_every=3)  # operational only
    shutil.copytree(tmp_path / "kept", out_dir(same).parent / "checkpoints")
    assert train_phase(**same)["resumed_from"] is not None


def test_cosine_learning_rates_follow_the_wcl_formula(workspace):
    schedule = workspace["reference"]["settings"].train.schedule
    total = workspace["reference_state"]["phase_steps"]
    records = {m["step"]: m for m in read_metrics(metrics_path(workspace["reference"])) if m["kind"] == "train"}
    warmup = schedule.warmup_steps
    for step in sorted({1, warmup, warmup + 1, total // 2, total}):
        assert records[step]["lr"] == pytest.approx(wcl_lr(step - 1, schedule, total, 0), rel=1e-12)
    assert records[warmup]["lr"] == pytest.approx(schedule.lr_peak)


def test_anneal_continues_the_cosine_optimizer_state(workspace, tmp_path):
    cosine = out_dir(workspace["reference"])
    cosine_steps = workspace["reference_state"]["phase_steps"]
    continued = spec_for(tmp_path, cosine, workspace["data"], "anneal", phase="anneal")
    fresh = spec_for(tmp_path, cosine, workspace["data"], "anneal_fresh", phase="anneal", continue_optimizer=False)
    state = train_phase(**continued)
    fresh_state = train_phase(**fresh)
    assert state["optimizer_state_from"] == "cosine" and fresh_state["optimizer_state_from"] is None

    def adam_steps(spec):
        saved = torch.load(out_dir(spec).parent / "state" / "optimizer.bin", weights_only=False)
        return {float(slot["step"]) for slot in saved["state"].values()}

    # AdamW's own step counter (bias correction) runs on across the phases: the moments were carried over.
    assert adam_steps(continued) == {cosine_steps + state["phase_steps"]}
    assert adam_steps(fresh) == {fresh_state["phase_steps"]}
    assert not torch.equal(weights(continued)["model.embed_tokens.weight"], weights(fresh)["model.embed_tokens.weight"])
    # The anneal schedule starts at the cosine cut and ends on lr_final.
    schedule = continued["settings"].train.schedule
    records = [m for m in read_metrics(metrics_path(continued)) if m["kind"] == "train"]
    assert records[0]["global_step"] == cosine_steps + 1
    for record in records[:: max(1, len(records) // 4)] + records[-1:]:
        expected = wcl_lr(record["global_step"] - 1, schedule, cosine_steps, state["phase_steps"])
        assert record["lr"] == pytest.approx(expected, rel=1e-12)
    assert records[-1]["lr"] == pytest.approx(schedule.lr_final)


def test_anneal_without_the_cosine_state_is_an_input_error(workspace, tmp_path):
    cosine = tmp_path / "cosine_model"
    shutil.copytree(out_dir(workspace["reference"]), cosine)  # the model without its state/ sibling
    with pytest.raises(InputError, match="training state is missing"):
        train_phase(**spec_for(tmp_path, cosine, workspace["data"], "anneal", phase="anneal"))
    assert os.path.exists(cosine / STATE_FILE)
