"""One trainer for every phase (base, cosine, anneal, sft): AdamW over packed rows with the block attention mask.

Each phase starts from the previous phase's model directory and writes a new one (``save_pretrained``,
safetensors, tokenizer included) plus ``trainer_state.json``, which carries the step counts the next phase
needs (the anneal phase continues the WCL schedule's global step from where the cosine phase stopped), and the
phase's final training state (``state/``: AdamW moments and step counts), from which the anneal phase goes on:
the recipe's anneal is the same optimizer run continued, not a restart. What differs between phases (batch,
epochs, learning rates) is their plan (phases.py; the SFT phase's in abacus_repro.sft.train).

The loop runs on Hugging Face accelerate (``engine.py``): plain fp32 on one CPU, DDP or DeepSpeed ZeRO-2/3 across
GPU ranks. Every ``train.checkpoint_every`` steps the full state is checkpointed; a phase killed and started
again resumes from its newest checkpoint and, on CPU, ends with the same weights as an uninterrupted run.

Read :func:`train_phase` first: set up or resume, log, loop, finish.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..io import sha256_file, write_json
from ..rules import RulePaths
from ..settings import VALIDATION_SOURCES, TrainSettings
from .checkpoint import (
    PROGRESS_FILE,
    clear_partial,
    find_resumable,
    read_progress,
    run_fingerprint,
    save_checkpoint,
    save_final_state,
)
from .data import ARRAYS, load_packed_arrays
from .engine import World, load_deepspeed_config, make_accelerator, resolve_path, world_from_env, zero_stage
from .launch import plan_from_resources, run_phase
from .metrics import SCHEDULE_NAMES, MetricsLog, plot_curves, schedule_curves, train_records
from .phases import STATE_FILE, PhasePlan, TrainJob, phase_index, plan_phase, read_trainer_state
from .step import evaluate_loss, optimizer_step, rank_micro_batches, step_targets

log = logging.getLogger(__name__)

__all__ = ["STATE_FILE", "TrainJob", "read_trainer_state", "train", "train_phase"]

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")
# Held-out rows for the validation loss: 2% of the rows, at most 16, none when there are fewer than 50 rows.
VALIDATION_FRACTION = 0.02
VALIDATION_MAX_ROWS = 16
ADAM_BETAS = (0.9, 0.95)
ADAM_EPS = 1e-8
# Settings that change how a run is carried out but not its trajectory: a checkpoint written under other values
# of these is still resumable.
OPERATIONAL_KEYS = ("threads", "log_every", "checkpoint_every", "keep_checkpoints", "launch")


# ---------------------------------------------------------------------------------------------------------------
# The rule's entry and the phase, top to bottom
# ---------------------------------------------------------------------------------------------------------------


def train(settings: TrainJob, paths: RulePaths) -> dict:
    """Rule train: one phase (``paths.wildcards["phase"]``) from the previous phase's model.

    The job's resources pick the launch (launch.py): in this process (one node, no GPU), torchrun on one node, or
    srun plus torchrun across the nodes of a SLURM allocation; every rank runs :func:`train_phase`.
    """
    state = run_phase(settings, paths, plan_from_resources(paths.resources, settings.train.launch))
    log.info("trainer state: %s", state)
    return state


def train_phase(settings: TrainJob, paths: RulePaths, on_checkpoint: Callable[[int, Path], None] | None = None) -> dict:
    """Train one phase and save the result; returns the trainer state written next to the model.

    ``paths``: the train rule's (inputs model, tokens, segments, loss_mask, the validation split's
    validation_tokens/_segments/_loss_mask per source and, for an anneal phase continuing the cosine optimizer,
    init_state; outputs model, state, metrics, loss, lr; the phase wildcard).
    ``on_checkpoint(step, path)`` is called on the main process after each checkpoint.
    """
    files = PhaseFiles.of(paths)
    run = start_or_resume(settings, files)
    with MetricsLog(
        files.metrics, run.main, run.plan.name, run.total_steps, run.progress.start_step, settings.train.log_every
    ) as metrics:
        metrics.begin(run.progress.validation_loss_start, run.progress.history, run.progress.resumed_from)
        elapsed = training_loop(run, metrics, on_checkpoint)
        validation_loss_end = run.evaluate()
        by_source_end = run.evaluate_sources(run.total_steps)
        summary = run_summary(run, elapsed)
        metrics.end(validation_loss_end, by_source_end, summary)
    return finish_phase(run, validation_loss_end, by_source_end, summary)


# ---------------------------------------------------------------------------------------------------------------
# What a phase reads and writes, and what it trains with
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhaseFiles:
    """The train rule's paths, by what the trainer does with them."""

    phase: str
    model_dir: Path  # the previous phase's model: the starting weights and the tokenizer files
    data: dict[str, str]  # the packed arrays: tokens, segments, loss_mask
    # The validation split's packed arrays per source ({source: {tokens, segments, loss_mask}}); none given: none.
    validation: dict[str, dict[str, str]]
    init_state: Path | None  # the cosine phase's final state, when the anneal phase continues its optimizer
    out_dir: Path
    state_dir: Path
    metrics: Path
    loss_plot: Path
    lr_plot: Path

    @classmethod
    def of(cls, paths: RulePaths) -> PhaseFiles:
        # The rule gives init_state as an empty list when the phase starts a fresh optimizer.
        init_state = paths.input.get("init_state")
        return cls(
            phase=paths.wildcards["phase"],
            model_dir=Path(paths.input["model"]),
            data={name: paths.input[name] for name in ARRAYS},
            validation=validation_inputs(paths),
            init_state=Path(init_state) if init_state else None,
            out_dir=Path(paths.output["model"]),
            state_dir=Path(paths.output["state"]),
            metrics=Path(paths.output["metrics"]),
            loss_plot=Path(paths.output["loss"]),
            lr_plot=Path(paths.output["lr"]),
        )

    @property
    def checkpoint_dir(self) -> Path:
        # Beside the model and not an output: a failed job keeps its checkpoints and its rerun resumes.
        return self.out_dir.parent / "checkpoints"


def validation_inputs(paths: RulePaths) -> dict[str, dict[str, str]]:
    """The train rule's validation_tokens/_segments/_loss_mask lists as {source: {tokens, segments, loss_mask}};
    each array lies in its source's directory (results/tokenized/validation/<source>/). A rule (or a test) that
    gives none scores no sources."""
    lists = {name: paths.input.get(f"validation_{name}") or [] for name in ARRAYS}
    lists = {name: [value] if isinstance(value, str) else list(value) for name, value in lists.items()}
    by_source: dict[str, dict[str, str]] = {}
    for name, files in lists.items():
        for path in files:
            source = Path(path).parent.name
            if source not in VALIDATION_SOURCES:
                raise InputError(path, f"not in a validation source's directory (one of {VALIDATION_SOURCES})")
            by_source.setdefault(source, {})[name] = path
    incomplete = {source: sorted(arrays) for source, arrays in by_source.items() if len(arrays) != len(ARRAYS)}
    if incomplete:
        raise InputError(None, f"the train rule needs {ARRAYS} for every validation source: {incomplete}")
    return {source: by_source[source] for source in VALIDATION_SOURCES if source in by_source}


@dataclass
class Progress:
    """Where a phase stands: what a checkpoint saves and a resumed run restores."""

    start_step: int = 0
    tokens_seen: int = 0
    targets_seen: int = 0
    history: list[dict] = field(default_factory=list)
    validation_loss_start: float | None = None
    resumed_from: str | None = None


@dataclass
class PhaseRun:
    """Everything a phase trains with, set up by :func:`start_or_resume`."""

    job: TrainJob
    files: PhaseFiles
    plan: PhasePlan
    world: World
    accelerator: Any
    model: Any
    optimizer: Any
    arrays: dict[str, np.ndarray]
    validation_arrays: dict[str, dict[str, np.ndarray]]  # per source: the held-out split's packed rows
    train_rows: np.ndarray
    val_rows: np.ndarray
    steps_per_epoch: int
    total_steps: int
    use_deepspeed: bool
    attention: str
    init_state: Path | None
    fingerprint: str
    progress: Progress = field(default_factory=Progress)

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def document_mask(self) -> bool:
        """False under plain causal packing: batches carry no document ids (see data.make_batch)."""
        return self.attention != "plain"

    def evaluate(self) -> float | None:
        """The held-out rows' loss with the current weights."""
        return evaluate_loss(
            self.model,
            self.arrays,
            self.val_rows,
            self.plan.micro_batch_size,
            self.accelerator.device,
            self.job.train.precision,
            self.use_deepspeed,
            self.document_mask,
        )

    def evaluate_sources(self, step: int) -> list[dict]:
        """The loss on each source's held-out validation rows: metrics lines for ``step`` (none for an empty source)."""
        records = []
        for source, arrays in self.validation_arrays.items():
            loss = evaluate_loss(
                self.model,
                arrays,
                np.arange(len(arrays["tokens"])),
                self.plan.micro_batch_size,
                self.accelerator.device,
                self.job.train.precision,
                self.use_deepspeed,
                self.document_mask,
            )
            if loss is not None:
                records.append({"kind": "validation", "step": step, "source": source, "loss": loss})
        return records

    def progress_record(self, step: int) -> dict:
        """progress.json of a checkpoint (or of the final state) taken after ``step`` steps."""
        return {
            "phase": self.plan.name,
            "step": step,
            "total_steps": self.total_steps,
            "tokens_seen": self.progress.tokens_seen,
            "targets_seen": self.progress.targets_seen,
            "validation_loss_start": self.progress.validation_loss_start,
            "history": self.progress.history,
            "fingerprint": self.fingerprint,
        }


# ---------------------------------------------------------------------------------------------------------------
# Start or resume
# ---------------------------------------------------------------------------------------------------------------


def start_or_resume(job: TrainJob, files: PhaseFiles) -> PhaseRun:
    """The phase's plan, data, engine, model and optimizer; then its progress: the newest checkpoint of this very
    run (resume), else the previous phase's state (anneal), else a fresh start."""
    phase_index(files.phase)
    torch.manual_seed(job.seed)
    world = world_from_env()
    plan = plan_phase(files.phase, job.train, job.sft, files.model_dir)
    init_state = files.init_state
    if init_state is not None and not (init_state / PROGRESS_FILE).exists():
        raise InputError(
            init_state,
            "the cosine phase's training state is missing (set train.continue_optimizer: false to start "
            "the anneal phase with a fresh optimizer)",
        )
    arrays = load_packed_arrays(files.data)
    validation_arrays = {source: load_packed_arrays(data) for source, data in files.validation.items()}
    train_rows, val_rows = split_rows(len(arrays["tokens"]), job.seed, plan.name)
    per_epoch = steps_per_epoch(len(train_rows), plan.micro_batch_size, plan.grad_accum, world.size)
    total_steps = per_epoch * plan.epochs
    if total_steps == 0:
        raise InputError(files.data["tokens"], f"no training rows for phase {plan.name!r}")

    ds_config = None
    if job.train.deepspeed:
        ds_config = load_deepspeed_config(
            resolve_path(job.train.deepspeed), job.train, plan.micro_batch_size, plan.grad_accum, world.size
        )
    accelerator = make_accelerator(ds_config, cpu=not torch.cuda.is_available())
    # After the accelerator: on CPU ranks it sets its own thread count; train.threads is the one that holds.
    torch.set_num_threads(job.train.threads)
    model, attention = prepare_model(files.model_dir, job.train, accelerator.device)
    optimizer = build_optimizer(model, plan.learning_rate(0, total_steps), job.train.weight_decay)
    model, optimizer = accelerator.prepare(model, optimizer)
    run = PhaseRun(
        job=job,
        files=files,
        plan=plan,
        world=world,
        accelerator=accelerator,
        model=model,
        optimizer=optimizer,
        arrays=arrays,
        validation_arrays=validation_arrays,
        train_rows=train_rows,
        val_rows=val_rows,
        steps_per_epoch=per_epoch,
        total_steps=total_steps,
        use_deepspeed=ds_config is not None,
        attention=attention,
        init_state=init_state,
        fingerprint=fingerprint(job, plan, arrays, files.model_dir, init_state, world),
    )
    run.progress = restore_progress(run)
    log_phase_start(run, ds_config)
    return run


def restore_progress(run: PhaseRun) -> Progress:
    """Resume from this run's newest checkpoint, else load the previous phase's state (anneal), else start."""
    accelerator = run.accelerator
    if run.main:
        clear_partial(run.files.checkpoint_dir)
    accelerator.wait_for_everyone()
    resume = find_resumable(run.files.checkpoint_dir, run.fingerprint)
    if resume is not None:
        path, saved = resume
        accelerator.load_state(str(path))
        progress = Progress(
            start_step=int(saved["step"]),
            tokens_seen=int(saved["tokens_seen"]),
            targets_seen=int(saved["targets_seen"]),
            history=list(saved["history"]),
            validation_loss_start=saved["validation_loss_start"],
            resumed_from=path.name,
        )
        log.info(
            "phase %s: resuming from %s (step %d of %d)", run.plan.name, path, progress.start_step, run.total_steps
        )
        return progress
    if run.init_state is not None:
        previous = _load_initial_state(accelerator, run.optimizer, run.init_state, run.job.train.weight_decay)
        log.info(
            "phase %s: weights and optimizer state from %s (phase %s, %s steps)",
            run.plan.name,
            run.init_state,
            previous.get("phase"),
            previous.get("step"),
        )
    # The per-source lines of step 0 go into the history, so a resumed run rewrites them in their place.
    return Progress(validation_loss_start=run.evaluate(), history=run.evaluate_sources(0))


def log_phase_start(run: PhaseRun, ds_config: Mapping[str, Any] | None) -> None:
    n_rows, seq_len = run.arrays["tokens"].shape
    plan = run.plan
    log.info(
        "phase %s: %d rows x %d (%d held out), %d steps (%d epochs x %d), micro batch %d x accum %d x %d "
        "processes (%s), engine %s, %s attention",
        plan.name,
        n_rows,
        seq_len,
        len(run.val_rows),
        run.total_steps,
        plan.epochs,
        run.steps_per_epoch,
        plan.micro_batch_size,
        plan.grad_accum,
        run.world.size,
        run.accelerator.device,
        f"DeepSpeed ZeRO-{zero_stage(ds_config)}" if run.use_deepspeed else run.accelerator.distributed_type,
        run.attention,
    )


def split_rows(n_rows: int, seed: int, phase: str) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows): a seeded split, the same for every run with this seed."""
    rng = np.random.default_rng([seed, phase_index(phase), 0])
    order = rng.permutation(n_rows)
    n_val = min(VALIDATION_MAX_ROWS, int(n_rows * VALIDATION_FRACTION)) if n_rows >= 50 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def epoch_order(train_rows: np.ndarray, seed: int, phase: str, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([seed, phase_index(phase), epoch + 1])
    return train_rows[rng.permutation(len(train_rows))]


def steps_per_epoch(n_rows: int, micro_batch_size: int, grad_accum: int, world_size: int) -> int:
    return math.ceil(n_rows / (micro_batch_size * grad_accum * world_size)) if n_rows else 0


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


def prepare_model(model_dir: Path, train: TrainSettings, device: torch.device) -> tuple[Any, str]:
    """The starting model in training mode with its packed attention set; returns (model, attention mode)."""
    from ..model import set_packed_attention

    model = load_model(model_dir)
    attention = packed_attention_mode(train.attention, device)
    # Plain packing hands the model no document ids: its masked path is then plain causal SDPA (flash on GPU).
    set_packed_attention(model, "block_mask" if attention == "plain" else attention, train.varlen_kernel)
    if train.gradient_checkpointing:
        # Recompute each block's activations in the backward pass: memory for time, same gradients.
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    return model, attention


def packed_attention_mode(attention: str, device: torch.device) -> str:
    """``train.attention``: ``auto`` is varlen (flash kernels, no (T, T) mask) on GPU, the block mask on CPU.

    On CPU the block mask runs as one fused SDPA call, while varlen loops over documents; both are exact.
    ``plain`` (no document mask, for comparison) is plain on every device.
    """
    if attention == "auto":
        return "varlen" if device.type == "cuda" else "block_mask"
    return attention


def build_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; norms and biases (1-D parameters) get no weight decay, matrices and embeddings do."""
    decay, no_decay = [], []
    for _name, param in model.named_parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS)


def _model_digest(model_dir: Path) -> dict:
    """What identifies a starting model cheaply: its config, trainer state and the weights' size."""
    parts = {}
    for name in ("config.json", STATE_FILE):
        if (model_dir / name).exists():
            parts[name] = sha256_file(model_dir / name)
    weights = sorted(model_dir.glob("*.safetensors"))
    parts["weights_bytes"] = sum(path.stat().st_size for path in weights)
    return parts


def fingerprint(
    job: TrainJob, plan: PhasePlan, arrays: Mapping[str, np.ndarray], model_dir: Path, init_state, world: World
) -> str:
    """What decides the phase's trajectory: a checkpoint is resumed only by a run with the same fingerprint."""
    tokens = arrays["tokens"]
    return run_fingerprint(
        {
            "phase": plan.name,
            "seed": job.seed,
            "train": job.train.model_dump(mode="json", exclude=set(OPERATIONAL_KEYS)),
            "sft": plan.own_settings,
            "hyper": plan.hyperparameters(),
            "world_size": world.size,
            "cosine_steps": plan.cosine_steps,
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


# ---------------------------------------------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------------------------------------------


def training_loop(run: PhaseRun, metrics: MetricsLog, on_checkpoint: Callable[[int, Path], None] | None) -> float:
    """Every remaining optimizer step of the phase, checkpointing as configured; returns the seconds it took."""
    started = time.perf_counter()
    plan, progress, train, arrays = run.plan, run.progress, run.job.train, run.arrays
    global_batch = plan.micro_batch_size * plan.grad_accum * run.world.size
    orders: dict[int, np.ndarray] = {}
    for step in range(progress.start_step, run.total_steps):
        epoch, index = divmod(step, run.steps_per_epoch)
        if epoch not in orders:
            orders = {epoch: epoch_order(run.train_rows, run.job.seed, plan.name, epoch)}
        step_rows = orders[epoch][index * global_batch : (index + 1) * global_batch]
        lr = plan.learning_rate(step, run.total_steps)
        slots = rank_micro_batches(step_rows, plan.micro_batch_size, plan.grad_accum, run.world)
        loss, targets, grad_norm = optimizer_step(
            run.accelerator,
            run.model,
            run.optimizer,
            arrays,
            slots,
            step_targets(arrays, step_rows),
            lr,
            train.grad_clip,
            train.precision,
            run.use_deepspeed,
            run.world,
            run.document_mask,
        )
        progress.tokens_seen += int((np.asarray(arrays["segments"][np.sort(step_rows)]) >= 0).sum())
        progress.targets_seen += targets
        record = {
            "kind": "train",
            "step": step + 1,
            "global_step": plan.global_start + step + 1,
            "epoch": epoch,
            "lr": lr,
            "loss": loss,
            "grad_norm": grad_norm,
            "tokens": progress.tokens_seen,
            "targets": progress.targets_seen,
            "seconds": round(time.perf_counter() - started, 3),
        }
        progress.history.append(record)
        metrics.step(record)
        if train.eval_every and (step + 1) % train.eval_every == 0 and step + 1 < run.total_steps:
            by_source = run.evaluate_sources(step + 1)
            progress.history.extend(by_source)
            metrics.lines(by_source)
        if train.checkpoint_every and (step + 1) % train.checkpoint_every == 0 and step + 1 < run.total_steps:
            metrics.flush()
            checkpoint(run, step + 1, on_checkpoint)
    return time.perf_counter() - started


def run_summary(run: PhaseRun, elapsed: float) -> dict:
    """The metrics' summary line: wall time and speed of the steps run by this process."""
    steps_run = run.total_steps - run.progress.start_step
    return {
        "kind": "summary",
        "steps": run.total_steps,
        "steps_run": steps_run,
        "seconds": round(elapsed, 3),
        "steps_per_second": round(steps_run / elapsed, 4) if elapsed > 0 else None,
        "attention": run.attention,
    }


def checkpoint(run: PhaseRun, step: int, on_checkpoint: Callable[[int, Path], None] | None) -> None:
    path = save_checkpoint(
        run.accelerator, run.files.checkpoint_dir, step, run.progress_record(step), run.job.train.keep_checkpoints
    )
    log.info("checkpoint %s", path)
    if run.main and on_checkpoint is not None:
        on_checkpoint(step, path)


# ---------------------------------------------------------------------------------------------------------------
# Finishing: the model, the final state, the plots
# ---------------------------------------------------------------------------------------------------------------


def finish_phase(
    run: PhaseRun, validation_loss_end: float | None, by_source_end: list[dict], summary: Mapping[str, Any]
) -> dict:
    """Save the final state, the model with its trainer state and the plots; drop the phase's checkpoints."""
    files, plan, accelerator = run.files, run.plan, run.accelerator
    state = trainer_state(run, validation_loss_end, by_source_end)
    # Under ZeRO-3 the weights are gathered from every rank (all must take part); rank 0 writes them.
    full_state_dict = accelerator.get_state_dict(run.model) if run.use_deepspeed else None
    if full_state_dict is not None and getattr(
        accelerator.unwrap_model(run.model).config, "tie_word_embeddings", False
    ):
        # save_pretrained drops tied copies only from the state dict it builds itself; this one is handed over.
        for key in getattr(accelerator.unwrap_model(run.model), "_tied_weights_keys", None) or {}:
            full_state_dict.pop(key, None)
    save_final_state(accelerator, files.state_dir, run.progress_record(run.total_steps))
    if run.main:
        save_model(accelerator.unwrap_model(run.model), files.model_dir, files.out_dir, state, full_state_dict)
        plot_curves(
            run.progress.history + by_source_end,
            [(0, run.progress.validation_loss_start), (run.total_steps, validation_loss_end)],
            plan.name,
            files.loss_plot,
            files.lr_plot,
            schedule_curves(plan.name, run.job.train.schedule, run.total_steps, plan.cosine_steps),
            SCHEDULE_NAMES[run.job.train.schedule.kind],
        )
        # The phase is complete: its final state lives in state_dir, the intermediate checkpoints can go.
        shutil.rmtree(files.checkpoint_dir, ignore_errors=True)
    accelerator.wait_for_everyone()
    log.info(
        "phase %s done: %d steps (%d run here) in %.1fs (%.2f steps/s), validation loss %s -> %s",
        plan.name,
        run.total_steps,
        summary["steps_run"],
        summary["seconds"],
        summary["steps_per_second"] or 0.0,
        run.progress.validation_loss_start,
        validation_loss_end,
    )
    return {
        **state,
        "train_seconds": summary["seconds"],
        "steps_per_second": summary["steps_per_second"],
        "resumed_from": run.progress.resumed_from,
    }


def trainer_state(run: PhaseRun, validation_loss_end: float | None, by_source_end: list[dict]) -> dict:
    """trainer_state.json: the step counts the next phase needs and what this phase trained on."""
    plan, progress, total = run.plan, run.progress, run.total_steps
    last = train_records(progress.history)[-1]
    n_rows, seq_len = run.arrays["tokens"].shape
    return {
        "phase": plan.name,
        "seed": run.job.seed,
        "phase_steps": total,
        "steps_per_epoch": run.steps_per_epoch,
        "epochs": plan.epochs,
        "global_step_start": plan.global_start,
        "global_step_end": plan.global_start + total,
        "cosine_steps": plan.cosine_steps if plan.name == "anneal" else (total if plan.name == "cosine" else None),
        "rows": int(n_rows),
        "validation_rows": len(run.val_rows),
        "seq_len": int(seq_len),
        "micro_batch_size": plan.micro_batch_size,
        "grad_accum": plan.grad_accum,
        "world_size": run.world.size,
        "tokens_seen": progress.tokens_seen,
        "targets_seen": progress.targets_seen,
        "final_lr": last["lr"],
        "final_train_loss": last["loss"],
        "validation_loss_start": progress.validation_loss_start,
        "validation_loss_end": validation_loss_end,
        "validation_loss_by_source": {record["source"]: record["loss"] for record in by_source_end},
        "optimizer_state_from": "cosine" if run.init_state is not None else None,
    }


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
