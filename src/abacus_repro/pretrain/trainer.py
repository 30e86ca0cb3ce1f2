"""One trainer for every phase (base, cosine, anneal, sft): AdamW over packed rows with the block attention mask.

Each phase starts from the previous phase's model directory and writes a new one (``save_pretrained``,
safetensors, tokenizer included) plus ``trainer_state.json``, which carries the step counts the next phase
needs (the anneal phase continues the WCL schedule's global step from where the cosine phase stopped), and the
phase's final training state (``state/``: AdamW moments and step counts), from which the anneal phase goes on:
the recipe's anneal is the same optimizer run continued, not a restart.

The loop runs on Hugging Face accelerate (``engine.py``): plain fp32 on one CPU, DDP or DeepSpeed ZeRO-2/3 across
GPU ranks. Every ``train.checkpoint_every`` steps the full state is checkpointed; a phase killed and started
again resumes from its newest checkpoint and, on CPU, ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..errors import InputError
from ..io import write_json
from .checkpoint import (
    PROGRESS_FILE,
    clear_partial,
    file_digest,
    find_resumable,
    read_progress,
    run_fingerprint,
    save_checkpoint,
    save_final_state,
)
from .data import IGNORE_INDEX, load_packed_arrays, make_batch
from .engine import World, load_deepspeed_config, make_accelerator, resolve_path, world_from_env, zero_stage
from .schedule import phase_lr, wcl_lr

log = logging.getLogger(__name__)

PHASES = ("base", "cosine", "anneal", "sft")
STATE_FILE = "trainer_state.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
# Held-out rows for the validation loss: 2% of the rows, at most 16, none when there are fewer than 50 rows.
VALIDATION_FRACTION = 0.02
VALIDATION_MAX_ROWS = 16
ADAM_BETAS = (0.9, 0.95)
ADAM_EPS = 1e-8
# Settings that change how a run is carried out but not its trajectory: a checkpoint written under other values
# of these is still resumable.
OPERATIONAL_KEYS = ("threads", "log_every", "checkpoint_every", "keep_checkpoints", "launch")


def _phase_index(phase: str) -> int:
    if phase not in PHASES:
        raise ValueError(f"training phase must be one of {PHASES}, got {phase!r}")
    return PHASES.index(phase)


def split_rows(n_rows: int, seed: int, phase: str) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows): a seeded split, the same for every run with this seed."""
    rng = np.random.default_rng([seed, _phase_index(phase), 0])
    order = rng.permutation(n_rows)
    n_val = min(VALIDATION_MAX_ROWS, int(n_rows * VALIDATION_FRACTION)) if n_rows >= 50 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def epoch_order(train_rows: np.ndarray, seed: int, phase: str, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([seed, _phase_index(phase), epoch + 1])
    return train_rows[rng.permutation(len(train_rows))]


def phase_hyperparameters(phase: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """Micro batch, accumulation and epochs for a phase (SFT has its own batch size and epochs)."""
    train = settings["train"]
    if phase == "sft":
        return {
            "micro_batch_size": int(settings["sft"]["micro_batch_size"]),
            "grad_accum": int(train["grad_accum"]),
            "epochs": int(settings["sft"]["epochs"]),
        }
    return {
        "micro_batch_size": int(train["micro_batch_size"]),
        "grad_accum": int(train["grad_accum"]),
        "epochs": 1,
    }


def steps_per_epoch(n_rows: int, micro_batch_size: int, grad_accum: int, world_size: int = 1) -> int:
    return math.ceil(n_rows / (micro_batch_size * grad_accum * world_size)) if n_rows else 0


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


def load_model(model_dir: str | Path):
    """The phase's starting model (after registering the package's MiniCPM class); it must carry its tokenizer."""
    from transformers import AutoModelForCausalLM

    import abacus_repro.model  # noqa: F401  (registers the architecture with the Auto classes)

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").exists():
        raise InputError(model_dir, "model directory has no config.json")
    if not (model_dir / "tokenizer.json").exists():
        raise InputError(model_dir, "model directory has no tokenizer.json (save the tokenizer with the model)")
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    return model


def packed_attention_mode(train: Mapping[str, Any], device: torch.device) -> str:
    """``train.attention``: ``auto`` is varlen (flash kernels, no (T, T) mask) on GPU, the block mask on CPU.

    On CPU the block mask runs as one fused SDPA call, while varlen loops over documents; both are exact.
    """
    mode = str(train["attention"])
    if mode == "auto":
        return "varlen" if device.type == "cuda" else "block_mask"
    return mode


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; norms and biases (1-D parameters) get no weight decay, matrices and embeddings do."""
    decay, no_decay = [], []
    for _name, param in model.named_parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS)


def _to_device(batch: Mapping[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    return {name: torch.from_numpy(np.ascontiguousarray(value)).to(device) for name, value in batch.items()}


def _autocast(precision: str, device: torch.device, use_deepspeed: bool = False):
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
    model, arrays, rows: np.ndarray, micro_batch_size: int, device, precision: str, use_deepspeed: bool = False
) -> float | None:
    """Token-weighted mean loss over the given rows (None when they hold no targets)."""
    if len(rows) == 0:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(rows), micro_batch_size):
        batch = make_batch(arrays, rows[start : start + micro_batch_size])
        n = _targets(batch["labels"])
        if n == 0:
            continue
        with _autocast(precision, device, use_deepspeed):
            loss = model(**_to_device(batch, device), use_cache=False).loss
        total += float(loss) * n
        count += n
    model.train(was_training)
    return total / count if count else None


def phase_paths(out_dir: str | Path, state_dir=None, checkpoint_dir=None) -> tuple[Path, Path]:
    """(final state directory, checkpoint directory): by default ``state/`` and ``checkpoints/`` beside the model."""
    parent = Path(out_dir).parent
    return Path(state_dir or parent / "state"), Path(checkpoint_dir or parent / "checkpoints")


def default_init_state(phase: str, model_dir: str | Path, settings: Mapping[str, Any]) -> Path | None:
    """The anneal phase continues the cosine phase's optimizer: its ``state/`` beside the cosine model."""
    if phase != "anneal" or not settings["train"]["continue_optimizer"]:
        return None
    return Path(model_dir).parent / "state"


def _model_digest(model_dir: Path) -> dict:
    """What identifies a starting model cheaply: its config, trainer state and the weights' size."""
    parts = {}
    for name in ("config.json", STATE_FILE):
        if (model_dir / name).exists():
            parts[name] = file_digest(model_dir / name)
    weights = sorted(model_dir.glob("*.safetensors"))
    parts["weights_bytes"] = sum(path.stat().st_size for path in weights)
    return parts


def _fingerprint(phase, seed, settings, arrays, model_dir, init_state, world, hyper, cosine_steps) -> str:
    train = {key: value for key, value in settings["train"].items() if key not in OPERATIONAL_KEYS}
    tokens = arrays["tokens"]
    return run_fingerprint(
        {
            "phase": phase,
            "seed": seed,
            "train": train,
            "sft": settings["sft"] if phase == "sft" else None,
            "hyper": hyper,
            "world_size": world.size,
            "cosine_steps": cosine_steps,
            "data_shape": list(tokens.shape),
            # First and last rows: a re-tokenized or re-mixed phase shows up here without hashing gigabytes.
            "data_edges": [np.asarray(tokens[0]).tolist(), np.asarray(tokens[-1]).tolist()],
            "model": _model_digest(Path(model_dir)),
            "init_state": read_progress(init_state).get("fingerprint") if init_state else None,
        }
    )


def _load_initial_state(accelerator, optimizer, init_state: Path, weight_decay: float) -> dict:
    """Load the previous phase's final state (weights, AdamW moments and step counts) into this phase's engine."""
    progress = read_progress(init_state)
    if progress is None:
        raise InputError(init_state, f"no readable {PROGRESS_FILE}: not a training state written by the trainer")
    if progress.get("phase") != "cosine":
        raise InputError(init_state, f"expected the cosine phase's state, found {progress.get('phase')!r}")
    accelerator.load_state(str(init_state))
    # load_state_dict also restores the saved groups' hyper-parameters; this phase's own settings win.
    for group in optimizer.param_groups:
        if group.get("weight_decay", 0.0) > 0.0:
            group["weight_decay"] = weight_decay
    return progress


def train_phase(
    phase: str,
    model_dir: str | Path,
    data_dir_or_paths: str | Path | Mapping[str, Any],
    out_dir: str | Path,
    metrics_path: str | Path,
    settings: Mapping[str, Any],
    seed: int,
    loss_plot: str | Path | None = None,
    lr_plot: str | Path | None = None,
    cosine_steps: int | None = None,
    state_dir: str | Path | None = None,
    init_state_dir: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    on_checkpoint: Callable[[int, Path], None] | None = None,
) -> dict:
    """Train one phase and save the result; returns the trainer state written next to the model.

    ``settings``: {"train": config train section, "sft": config sft section}. ``data_dir_or_paths``: the
    tokenized directory, or a mapping with the tokens/segments/loss_mask paths. Plots default to the metrics
    file's directory. ``cosine_steps`` (anneal only) defaults to the step count in the cosine model's state.
    ``state_dir`` / ``checkpoint_dir`` default to ``state/`` and ``checkpoints/`` beside ``out_dir``;
    ``init_state_dir`` (anneal) defaults to the cosine phase's ``state/`` (``train.continue_optimizer``).
    ``on_checkpoint(step, path)`` is called on the main process after each checkpoint.
    """
    _phase_index(phase)
    train = settings["train"]
    torch.manual_seed(seed)
    world = world_from_env()
    precision = str(train["precision"])
    hyper = phase_hyperparameters(phase, settings)
    micro, accum, epochs = hyper["micro_batch_size"], hyper["grad_accum"], hyper["epochs"]
    if phase == "anneal" and cosine_steps is None:
        cosine_steps = cosine_steps_from(model_dir)
    state_dir, checkpoint_dir = phase_paths(out_dir, state_dir, checkpoint_dir)
    init_state = Path(init_state_dir) if init_state_dir else default_init_state(phase, model_dir, settings)
    if init_state is not None and not (init_state / PROGRESS_FILE).exists():
        raise InputError(
            init_state,
            "the cosine phase's training state is missing (set train.continue_optimizer: false to start "
            "the anneal phase with a fresh optimizer)",
        )

    arrays = load_packed_arrays(data_dir_or_paths)
    n_rows, seq_len = arrays["tokens"].shape
    train_rows, val_rows = split_rows(n_rows, seed, phase)
    per_epoch = steps_per_epoch(len(train_rows), micro, accum, world.size)
    total_steps = per_epoch * epochs
    if total_steps == 0:
        raise InputError(str(data_dir_or_paths), f"no training rows for phase {phase!r}")

    ds_config = None
    if train["deepspeed"]:
        ds_config = load_deepspeed_config(resolve_path(train["deepspeed"]), train, micro, accum, world.size)
    accelerator = make_accelerator(ds_config, cpu=not torch.cuda.is_available())
    # After the accelerator: on CPU ranks it sets its own thread count; train.threads is the one that holds.
    torch.set_num_threads(int(train["threads"]))
    device = accelerator.device
    use_deepspeed = ds_config is not None

    model = load_model(model_dir)
    from ..model import set_packed_attention

    attention = packed_attention_mode(train, device)
    set_packed_attention(model, attention, str(train["varlen_kernel"]))
    if train["gradient_checkpointing"]:
        # Recompute each block's activations in the backward pass: memory for time, same gradients.
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    weight_decay = float(train["weight_decay"])
    optimizer = build_optimizer(model, phase_lr(phase, 0, settings, total_steps, cosine_steps), weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    grad_clip = float(train["grad_clip"])
    log_every = int(train["log_every"])
    checkpoint_every = int(train["checkpoint_every"])
    keep = int(train["keep_checkpoints"])
    global_start = cosine_steps if phase == "anneal" else 0
    fingerprint = _fingerprint(phase, seed, settings, arrays, model_dir, init_state, world, hyper, cosine_steps)

    # Where to start: a checkpoint of this very run (resume), else the previous phase's state (anneal), else fresh.
    if accelerator.is_main_process:
        clear_partial(checkpoint_dir)
    accelerator.wait_for_everyone()
    resume = find_resumable(checkpoint_dir, fingerprint)
    history: list[dict] = []
    start_step = tokens_seen = targets_seen = 0
    resumed_from = None
    if resume is not None:
        path, progress = resume
        accelerator.load_state(str(path))
        start_step = int(progress["step"])
        tokens_seen, targets_seen = int(progress["tokens_seen"]), int(progress["targets_seen"])
        history = list(progress["history"])
        val_start = progress["validation_loss_start"]
        resumed_from = path.name
        log.info("phase %s: resuming from %s (step %d of %d)", phase, path, start_step, total_steps)
    else:
        if init_state is not None:
            previous = _load_initial_state(accelerator, optimizer, init_state, weight_decay)
            log.info(
                "phase %s: weights and optimizer state from %s (phase %s, %s steps)",
                phase,
                init_state,
                previous.get("phase"),
                previous.get("step"),
            )
        val_start = evaluate_loss(model, arrays, val_rows, micro, device, precision, use_deepspeed)

    log.info(
        "phase %s: %d rows x %d (%d held out), %d steps (%d epochs x %d), micro batch %d x accum %d x %d "
        "processes (%s), engine %s, %s attention",
        phase,
        n_rows,
        seq_len,
        len(val_rows),
        total_steps,
        epochs,
        per_epoch,
        micro,
        accum,
        world.size,
        device,
        f"DeepSpeed ZeRO-{zero_stage(ds_config)}" if use_deepspeed else accelerator.distributed_type,
        attention,
    )

    def progress_record(step: int) -> dict:
        return {
            "phase": phase,
            "step": step,
            "total_steps": total_steps,
            "tokens_seen": tokens_seen,
            "targets_seen": targets_seen,
            "validation_loss_start": val_start,
            "history": history,
            "fingerprint": fingerprint,
        }

    metrics_path = Path(metrics_path)
    main = accelerator.is_main_process
    if main:
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    global_batch = micro * accum * world.size
    orders: dict[int, np.ndarray] = {}
    # Every line has a "kind": "train" (one per optimizer step), "validation" (held-out loss before and after),
    # "resume" (where a restarted run picked up) or "summary" (wall time; kept out of the model directory so that
    # stays byte-identical). A resumed run rewrites the lines up to its checkpoint, then appends.
    with (
        open(metrics_path, "w", encoding="utf-8") if main else contextlib.nullcontext() as metrics,
        tqdm(total=total_steps, initial=start_step, desc=f"train {phase}", mininterval=5.0, disable=not main) as bar,
    ):
        if main:
            if val_start is not None:
                metrics.write(json.dumps({"kind": "validation", "step": 0, "loss": val_start}) + "\n")
            for record in history:
                metrics.write(json.dumps(record) + "\n")
            if resumed_from:
                metrics.write(json.dumps({"kind": "resume", "step": start_step, "checkpoint": resumed_from}) + "\n")
        for step in range(start_step, total_steps):
            epoch, index = divmod(step, per_epoch)
            if epoch not in orders:
                orders = {epoch: epoch_order(train_rows, seed, phase, epoch)}
            step_rows = orders[epoch][index * global_batch : (index + 1) * global_batch]
            lr = phase_lr(phase, step, settings, total_steps, cosine_steps)
            slots = rank_micro_batches(step_rows, micro, accum, world)
            loss, targets, grad_norm = optimizer_step(
                accelerator,
                model,
                optimizer,
                arrays,
                slots,
                _step_targets(arrays, step_rows),
                lr,
                grad_clip,
                precision,
                use_deepspeed,
                world,
            )
            tokens_seen += int((np.asarray(arrays["segments"][np.sort(step_rows)]) >= 0).sum())
            targets_seen += targets
            record = {
                "kind": "train",
                "step": step + 1,
                "global_step": global_start + step + 1,
                "epoch": epoch,
                "lr": lr,
                "loss": loss,
                "grad_norm": grad_norm,
                "tokens": tokens_seen,
                "targets": targets_seen,
                "seconds": round(time.perf_counter() - started, 3),
            }
            history.append(record)
            bar.update(1)
            if main:
                metrics.write(json.dumps(record) + "\n")
                if (step + 1) % log_every == 0 or step + 1 == total_steps:
                    metrics.flush()
                    log.info(
                        "%s step %d/%d lr %.3e loss %s (%.2f steps/s)",
                        phase,
                        step + 1,
                        total_steps,
                        lr,
                        f"{loss:.4f}" if loss is not None else "-",
                        (step + 1 - start_step) / max(1e-9, record["seconds"]),
                    )
            if checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < total_steps:
                if main:
                    metrics.flush()
                path = save_checkpoint(accelerator, checkpoint_dir, step + 1, progress_record(step + 1), keep)
                log.info("checkpoint %s", path)
                if main and on_checkpoint is not None:
                    on_checkpoint(step + 1, path)
        elapsed = time.perf_counter() - started
        val_end = evaluate_loss(model, arrays, val_rows, micro, device, precision, use_deepspeed)
        steps_run = total_steps - start_step
        speed = round(steps_run / elapsed, 4) if elapsed > 0 else None
        summary = {
            "kind": "summary",
            "steps": total_steps,
            "steps_run": steps_run,
            "seconds": round(elapsed, 3),
            "steps_per_second": speed,
            "attention": attention,
        }
        if main:
            if val_end is not None:
                metrics.write(json.dumps({"kind": "validation", "step": total_steps, "loss": val_end}) + "\n")
            metrics.write(json.dumps(summary) + "\n")

    state = {
        "phase": phase,
        "seed": seed,
        "phase_steps": total_steps,
        "steps_per_epoch": per_epoch,
        "epochs": epochs,
        "global_step_start": global_start,
        "global_step_end": global_start + total_steps,
        "cosine_steps": cosine_steps if phase == "anneal" else (total_steps if phase == "cosine" else None),
        "rows": int(n_rows),
        "validation_rows": len(val_rows),
        "seq_len": int(seq_len),
        "micro_batch_size": micro,
        "grad_accum": accum,
        "world_size": world.size,
        "tokens_seen": tokens_seen,
        "targets_seen": targets_seen,
        "final_lr": history[-1]["lr"],
        "final_train_loss": history[-1]["loss"],
        "validation_loss_start": val_start,
        "validation_loss_end": val_end,
        "optimizer_state_from": "cosine" if init_state is not None else None,
    }
    # Under ZeRO-3 the weights are gathered from every rank (all must take part); rank 0 writes them.
    full_state_dict = accelerator.get_state_dict(model) if use_deepspeed else None
    if full_state_dict is not None and getattr(accelerator.unwrap_model(model).config, "tie_word_embeddings", False):
        # save_pretrained drops tied copies only from the state dict it builds itself; this one is handed over.
        for key in getattr(accelerator.unwrap_model(model), "_tied_weights_keys", None) or {}:
            full_state_dict.pop(key, None)
    save_final_state(accelerator, state_dir, progress_record(total_steps))
    if main:
        save_model(accelerator.unwrap_model(model), model_dir, out_dir, state, full_state_dict)
        plot_curves(
            history,
            [(0, val_start), (total_steps, val_end)],
            phase,
            loss_plot or metrics_path.parent / "loss.png",
            lr_plot or metrics_path.parent / "lr.png",
            wcl_curves(phase, settings, total_steps, cosine_steps),
        )
        # The phase is complete: its final state lives in state_dir, the intermediate checkpoints can go.
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    accelerator.wait_for_everyone()
    log.info(
        "phase %s done: %d steps (%d run here) in %.1fs (%.2f steps/s), validation loss %s -> %s",
        phase,
        total_steps,
        steps_run,
        elapsed,
        speed or 0.0,
        val_start,
        val_end,
    )
    return {**state, "train_seconds": summary["seconds"], "steps_per_second": speed, "resumed_from": resumed_from}


def _step_targets(arrays: Mapping[str, np.ndarray], step_rows: np.ndarray) -> int:
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
):
    """One update over this rank's micro-batches; returns (mean loss per target, targets, grad norm).

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
        batch = make_batch(arrays, rows if not dummy else np.zeros(1, dtype=np.int64))
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


def save_model(
    model, source_dir: str | Path, out_dir: str | Path, state: Mapping[str, Any], state_dict: Mapping | None = None
) -> None:
    """The trained weights, the starting directory's tokenizer files and the trainer state.

    ``state_dict``: the full weights when the engine holds them elsewhere (gathered from ZeRO-3 shards).
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    model.save_pretrained(str(out_dir), safe_serialization=True, state_dict=state_dict)
    # The tokenizer files are copied, not re-saved: the next stages (and the GGUF export) see the exact bytes the
    # tokenizer stage wrote.
    for name in TOKENIZER_FILES:
        if (Path(source_dir) / name).exists():
            shutil.copyfile(Path(source_dir) / name, out_dir / name)
    write_json(out_dir / STATE_FILE, dict(state))


def wcl_curves(phase: str, settings: Mapping[str, Any], total_steps: int, cosine_steps: int | None) -> dict:
    """The WCL formula around a cosine or anneal phase, for the learning-rate plot: {label: (steps, rates)}.

    Cosine phase: the cosine as configured up to its horizon (showing where the phase cuts it). Anneal phase:
    the whole schedule, warmup and cosine included, so the plot shows Warmup-Cosine-Linear in one picture.
    """
    if phase not in ("cosine", "anneal"):
        return {}
    schedule = settings["train"]["schedule"]
    if phase == "cosine":
        end, cut = max(int(schedule["cosine_horizon"]), total_steps), total_steps
        anneal = 0
    else:
        end, cut, anneal = cosine_steps + total_steps, cosine_steps, total_steps
    stride = max(1, end // 2000)
    steps = list(range(0, end, stride))
    # Cosine phase: no cut (cosine_steps = end), so the curve runs on past the phase's last step.
    rates = [wcl_lr(s, schedule, end if phase == "cosine" else cut, anneal) for s in steps]
    return {"WCL formula": ([s + 1 for s in steps], rates)}


def plot_curves(
    history: list[dict],
    validation: list[tuple[int, float | None]],
    phase: str,
    loss_path: str | Path,
    lr_path: str | Path,
    formula: Mapping[str, tuple[list, list]] | None = None,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in history if r["loss"] is not None]
    losses = [r["loss"] for r in history if r["loss"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, losses, label="train", linewidth=1)
    points = [(s, v) for s, v in validation if v is not None]
    if points:
        ax.scatter([s for s, _ in points], [v for _, v in points], color="C1", label="validation", zorder=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(f"{phase}: training loss")
    ax.legend()
    fig.tight_layout()
    Path(loss_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(loss_path, dpi=100, metadata={"Software": None})
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (x, y) in (formula or {}).items():
        ax.plot(x, y, color="0.6", linestyle="--", linewidth=1, label=label)
    ax.plot([r["global_step"] for r in history], [r["lr"] for r in history], linewidth=1.5, label=f"{phase} (used)")
    ax.set_xlabel("global step" if phase == "anneal" else "step")
    ax.set_ylabel("learning rate")
    ax.set_title(f"{phase}: learning rate" + (" (Warmup-Cosine-Linear)" if formula else ""))
    if formula:
        ax.legend()
    fig.tight_layout()
    Path(lr_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(lr_path, dpi=100, metadata={"Software": None})
    plt.close(fig)
