"""The run's starting model: the tiny MiniCPM built from config, or the published checkpoint (full config),
loaded through our own classes and checked against the config's `model:` section.

Either way the result is a Hugging Face directory (config.json, model.safetensors, tokenizer files) that every
later stage loads with ``AutoModelForCausalLM`` after ``import abacus_repro.model``.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from ..errors import InputError
from ..rules import RulePaths
from ..settings import ModelSettings, Settings
from .configuration import MiniCPMConfig
from .modeling import MiniCPMForCausalLM
from .tokenizer import FIM_TOKENS, load_tokenizer

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
# Keys of the `model:` config section that are not MiniCPMConfig fields.
NON_ARCHITECTURE_KEYS = {"pretrained"}


class InitModelJob(Settings):
    """What the init_model job reads: the run's seed and the `model` section."""

    seed: int = Field(ge=0)
    model: ModelSettings


def init_run_model(settings: InitModelJob, paths: RulePaths) -> Path:
    """Rule init_model: the tiny MiniCPM from config (or the published checkpoint), with the run's tokenizer."""
    return init_model(settings.model, paths.input["tokenizer"], paths.output["model"], settings.seed)


def config_from_settings(model_settings: ModelSettings, tokenizer) -> MiniCPMConfig:
    """A MiniCPMConfig from the `model:` section; vocabulary size and special ids come from the tokenizer."""
    fields = model_settings.model_dump(exclude=NON_ARCHITECTURE_KEYS)
    if "init_std" in fields:
        fields["initializer_range"] = float(fields.pop("init_std"))
    try:
        return MiniCPMConfig(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
            **fields,
        )
    except (TypeError, ValueError) as err:
        raise InputError(None, f"model settings are not a valid MiniCPM configuration: {err}") from err


def build_model(config: MiniCPMConfig, seed: int) -> MiniCPMForCausalLM:
    """A freshly initialised model; the seed alone decides the weights (global RNG state is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MiniCPMForCausalLM(config)
    return model.eval()


def init_model(model_settings: ModelSettings, tokenizer_dir: str | Path, out_dir: str | Path, seed: int) -> Path:
    """Write the starting model and its tokenizer to ``out_dir`` (save_pretrained, safetensors)."""
    out_dir = Path(out_dir)
    tokenizer_dir = Path(tokenizer_dir)
    if tokenizer_dir.name == "tokenizer.json":
        tokenizer_dir = tokenizer_dir.parent
    pretrained = model_settings.pretrained
    if pretrained:
        return _copy_pretrained(Path(pretrained), tokenizer_dir, out_dir, model_settings)

    tokenizer = load_tokenizer(tokenizer_dir)
    config = config_from_settings(model_settings, tokenizer)
    model = build_model(config, seed)
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "tiny MiniCPM: %d parameters (%d layers, hidden %d, vocab %d), seed %d",
        n_params,
        config.num_hidden_layers,
        config.hidden_size,
        config.vocab_size,
        seed,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    for name in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_dir / name, out_dir / name)
    return out_dir


def _copy_pretrained(source: Path, tokenizer_dir: Path, out_dir: Path, model_settings: ModelSettings) -> Path:
    """Load a local MiniCPM checkpoint through our class, check it against the `model:` section and the run's
    tokenizer, and re-save it with that tokenizer, so later stages never need remote code."""
    model = load_pretrained(source)
    check_pretrained_config(model.config, model_settings, source)
    tokenizer = load_tokenizer(tokenizer_dir)
    check_tokenizer_fits(model.config, tokenizer, source)
    grow_for_appended_tokens(model, tokenizer)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir))
    # The run tokenized its data with the tokenizer stage's output (for a checkpoint: its own tokenizer).
    for name in TOKENIZER_FILES:
        shutil.copyfile(tokenizer_dir / name, out_dir / name)
    log.info(
        "re-saved pretrained checkpoint %s (%d parameters, %s)",
        source,
        sum(p.numel() for p in model.parameters()),
        model.dtype,
    )
    return out_dir


def load_pretrained(source: Path) -> MiniCPMForCausalLM:
    """A published MiniCPM checkpoint in our class, in its own dtype (MiniCPM-2B: bf16).

    Our classes are used directly, never through config.json's ``auto_map`` or ``model_type``: the published
    config.json maps to remote code (configuration_minicpm.py, modeling_minicpm.py) that is not downloaded, and
    nothing here runs code from a checkpoint. Every tensor must be in the checkpoint: transformers would
    otherwise initialise a missing one at random with only a warning.
    """
    if not (source / "config.json").exists():
        raise InputError(
            source,
            "model.pretrained must be a local checkpoint directory with config.json "
            "(nothing is downloaded at run time)",
        )
    try:
        config = MiniCPMConfig.from_pretrained(str(source), trust_remote_code=False)
    except (OSError, TypeError, ValueError) as err:
        raise InputError(source / "config.json", f"not a MiniCPM configuration: {err}") from err
    architectures = config.architectures or []
    if architectures and "MiniCPMForCausalLM" not in architectures:
        raise InputError(source / "config.json", f"expected a MiniCPMForCausalLM checkpoint, got {architectures}")
    try:
        model, info = MiniCPMForCausalLM.from_pretrained(
            str(source), config=config, dtype="auto", trust_remote_code=False, output_loading_info=True
        )
    except OSError as err:  # no weights file, or an unreadable one
        raise InputError(source, f"cannot load the checkpoint's weights: {err}") from err
    problems = {k: sorted(v) for k, v in info.items() if k != "error_msgs" and v}
    if problems or info.get("error_msgs"):
        raise InputError(source, f"the weights do not match MiniCPM's tensors: {problems or info['error_msgs']}")
    return model.eval()


# `model:` keys whose MiniCPMConfig field has another name.
SETTING_FIELDS = {"init_std": "initializer_range"}


def check_pretrained_config(config: MiniCPMConfig, model_settings: ModelSettings, source: Path) -> None:
    """Every number the `model:` section gives must be the checkpoint's: a mismatch names the key and both values.

    With model.pretrained the section documents the checkpoint (the paper config lists MiniCPM-2B's numbers);
    a wrong number there would silently describe another model in the plan, the report and the MFU figures.
    """
    mismatches = []
    for key, expected in model_settings.model_dump().items():
        if key in NON_ARCHITECTURE_KEYS or expected is None:
            continue
        field = SETTING_FIELDS.get(key, key)
        actual = getattr(config, field, None)
        if not _same_number(actual, expected):
            mismatches.append(f"model.{key} is {expected!r} but the checkpoint's {field} is {actual!r}")
    if mismatches:
        raise InputError(source / "config.json", "does not match the config's model section: " + "; ".join(mismatches))


def _same_number(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool) or not isinstance(actual, int | float):
        return actual == expected
    return math.isclose(float(actual), float(expected), rel_tol=1e-9, abs_tol=0.0)


def appended_tokens(config: MiniCPMConfig, tokenizer) -> list[str]:
    """The tokens beyond the checkpoint's vocabulary: only the FIM markers the tokenizer stage appends may be."""
    extra = tokenizer.convert_ids_to_tokens(list(range(config.vocab_size, len(tokenizer))))
    return extra if extra and all(token in FIM_TOKENS for token in extra) else []


def check_tokenizer_fits(config: MiniCPMConfig, tokenizer, source: Path) -> None:
    """The run's tokenizer must index the checkpoint's embeddings (beyond them: only the appended FIM markers,
    for which the embeddings grow) and share its end-of-text id."""
    if len(tokenizer) > config.vocab_size and not appended_tokens(config, tokenizer):
        raise InputError(
            source / "config.json",
            f"the tokenizer has {len(tokenizer)} tokens but the checkpoint's vocab_size is {config.vocab_size} "
            f"(only the FIM markers {FIM_TOKENS} may follow the checkpoint's vocabulary)",
        )
    eos = config.eos_token_id[0] if isinstance(config.eos_token_id, list) else config.eos_token_id
    if tokenizer.eos_token_id != eos:
        raise InputError(
            source / "config.json",
            f"the tokenizer's end of text {tokenizer.eos_token!r} is id {tokenizer.eos_token_id}, "
            f"the checkpoint's eos_token_id is {eos}",
        )


def grow_for_appended_tokens(model: MiniCPMForCausalLM, tokenizer) -> None:
    """Give the tokens appended after the checkpoint's vocabulary (the FIM markers) embedding rows.

    Each new row is the mean of the checkpoint's rows (the input embeddings, and the output ones when untied), so
    the new tokens start as an average token (a uniform prior among the learnt ones, not a random direction) and
    the result is deterministic. Nothing else of the checkpoint changes; config.json's vocab_size follows.
    """
    old_size = model.config.vocab_size
    added = appended_tokens(model.config, tokenizer)
    if not added:
        return
    matrices = [model.get_input_embeddings().weight]
    if not model.config.tie_word_embeddings:
        matrices.append(model.get_output_embeddings().weight)
    means = [matrix.detach().float().mean(dim=0) for matrix in matrices]
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    grown = [model.get_input_embeddings().weight]
    if not model.config.tie_word_embeddings:
        grown.append(model.get_output_embeddings().weight)
    with torch.no_grad():
        for matrix, mean in zip(grown, means, strict=True):
            matrix[old_size:] = mean.to(matrix.dtype)
    log.info("grew the checkpoint's vocabulary from %d to %d for %s", old_size, len(tokenizer), added)
