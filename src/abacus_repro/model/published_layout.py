"""A checkpoint laid out exactly like the published MiniCPM-2B one, at tiny size.

The paper run starts from openbmb/MiniCPM-2B-history (a directory per step: config.json, bf16 safetensors,
a SentencePiece tokenizer.model with tokenizer_config.json and special_tokens_map.json). The rehearsal and the
tests start from a directory with the same files, keys and tensor names, made here with seeded random weights
at the `model:` section's dimensions and a SentencePiece BPE tokenizer trained here, so the paper run's loading
code (tokenizer conversion, init_model's checks) runs for real without the 5 GB download.

Deterministic: the same sample texts, settings and seed give byte-identical files.
"""

from __future__ import annotations

import io
import json
import logging
import sysconfig
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..rules import RulePaths
from ..settings import ModelSettings, Settings
from .configuration import MiniCPMConfig
from .init import build_model

log = logging.getLogger(__name__)

# The published config.json (MiniCPM-2B, openbmb/CPM-2B): architecture, remote-code map, scalings, dtype. The
# files auto_map names are not part of our layout: our registered classes must load it without them.
PUBLISHED_CONFIG: dict[str, Any] = {
    "_name_or_path": "openbmb/CPM-2B",
    "architectures": ["MiniCPMForCausalLM"],
    "auto_map": {
        "AutoConfig": "configuration_minicpm.MiniCPMConfig",
        "AutoModel": "modeling_minicpm.MiniCPMModel",
        "AutoModelForCausalLM": "modeling_minicpm.MiniCPMForCausalLM",
        "AutoModelForSeq2SeqLM": "modeling_minicpm.MiniCPMForCausalLM",
        "AutoModelForSequenceClassification": "modeling_minicpm.MiniCPMForSequenceClassification",
    },
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 2304,
    "initializer_range": 0.1,
    "intermediate_size": 5760,
    "max_position_embeddings": 4096,
    "model_type": "minicpm",
    "num_attention_heads": 36,
    "num_hidden_layers": 40,
    "num_key_value_heads": 36,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.36.0",
    "use_cache": True,
    "vocab_size": 122753,
    "scale_emb": 12,
    "dim_model_base": 256,
    "scale_depth": 1.4,
}
# The `model:` keys that set config.json fields (init_std is the config's name for initializer_range).
MODEL_FIELDS = {
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_hidden_layers",
    "num_attention_heads": "num_attention_heads",
    "num_key_value_heads": "num_key_value_heads",
    "intermediate_size": "intermediate_size",
    "max_position_embeddings": "max_position_embeddings",
    "rope_theta": "rope_theta",
    "rms_norm_eps": "rms_norm_eps",
    "scale_emb": "scale_emb",
    "scale_depth": "scale_depth",
    "dim_model_base": "dim_model_base",
    "init_std": "initializer_range",
}

SPECIAL = {"unk": "<unk>", "bos": "<s>", "eos": "</s>"}
CHAT_MARKERS = ["<用户>", "<AI>"]


def _added_token(content: str) -> dict:
    # transformers 4.36's serialisation of the special tokens in MiniCPM's tokenizer files.
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}


# tokenizer_config.json and special_tokens_map.json as MiniCPM-2B publishes them: LlamaTokenizer, BOS added,
# legacy spacing, no padding token, no chat template in the base checkpoint.
PUBLISHED_TOKENIZER_CONFIG: dict[str, Any] = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": {"__type": "AddedToken", **_added_token(SPECIAL["bos"])},
    "clean_up_tokenization_spaces": False,
    "eos_token": {"__type": "AddedToken", **_added_token(SPECIAL["eos"])},
    "legacy": True,
    "model_max_length": 1000000000000000019884624838656,
    "pad_token": None,
    "sp_model_kwargs": {},
    "spaces_between_special_tokens": False,
    "tokenizer_class": "LlamaTokenizer",
    "unk_token": {"__type": "AddedToken", **_added_token(SPECIAL["unk"])},
    "use_default_system_prompt": False,
}
PUBLISHED_SPECIAL_TOKENS_MAP: dict[str, Any] = {
    "bos_token": _added_token(SPECIAL["bos"]),
    "eos_token": _added_token(SPECIAL["eos"]),
    "unk_token": _added_token(SPECIAL["unk"]),
}

# Text the SentencePiece model is trained on, all available offline: the repository's sample documents
# (Chinese, English, German, French prose and code) and Python's standard library sources.
STDLIB_PACKAGES = ("json", "email", "asyncio", "logging", "unittest", "http", "xml", "concurrent")
TRAIN_CHARS = 1_500_000
# SentencePiece skips longer sentences (its max_sentence_length, in bytes); longer lines are cut to fit.
MAX_LINE_BYTES = 4096


def published_config(model_settings: Mapping[str, Any], vocab_size: int) -> dict[str, Any]:
    """The published config.json with the `model:` section's dimensions and ``vocab_size``."""
    config = dict(PUBLISHED_CONFIG)
    for key, field in MODEL_FIELDS.items():
        if model_settings.get(key) is not None:
            config[field] = model_settings[key]
    if model_settings.get("num_key_value_heads") is None:
        config["num_key_value_heads"] = config["num_attention_heads"]
    config["vocab_size"] = int(vocab_size)
    return config


def training_lines(sample_dir: str | Path | None, max_chars: int = TRAIN_CHARS) -> list[str]:
    """Non-blank lines of the sample documents (sorted paths) then the standard library, up to ``max_chars``."""
    lines: list[str] = []
    total = 0
    for path in _training_files(sample_dir):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            line = line.encode("utf-8")[:MAX_LINE_BYTES].decode("utf-8", errors="ignore")
            lines.append(line)
            total += len(line)
            if total >= max_chars:
                return lines
    return lines


def _training_files(sample_dir: str | Path | None) -> Iterator[Path]:
    if sample_dir is not None:
        sample_dir = Path(sample_dir)
        if not sample_dir.is_dir():
            raise InputError(sample_dir, "sample document directory not found")
        yield from sorted(p for p in sample_dir.rglob("*") if p.is_file())
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for package in STDLIB_PACKAGES:
        yield from sorted((stdlib / package).rglob("*.py"))


def train_sentencepiece(lines: Sequence[str], vocab_size: int, seed: int) -> bytes:
    """A SentencePiece BPE model (bytes of tokenizer.model) with MiniCPM's settings.

    Byte fallback, ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, no padding piece, the chat markers as user-defined
    symbols, digits split, whitespace kept as it is (code). One thread and no sentence sampling, so the same
    lines give the same bytes.
    """
    import sentencepiece

    if not lines:
        raise InputError(None, "no text to train the SentencePiece tokenizer on")
    sentencepiece.set_random_generator_seed(seed)
    model = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(lines),
            model_writer=model,
            model_type="bpe",
            vocab_size=vocab_size,
            byte_fallback=True,
            character_coverage=0.9995,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            add_dummy_prefix=True,
            split_digits=True,
            allow_whitespace_only_pieces=True,
            max_sentencepiece_length=16,
            max_sentence_length=MAX_LINE_BYTES,
            user_defined_symbols=CHAT_MARKERS,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as err:  # e.g. a vocabulary too small for the characters and bytes
        raise InputError(None, f"SentencePiece training failed at vocab_size {vocab_size}: {err}") from err
    return model.getvalue()


def published_state_dict(config: Mapping[str, Any], seed: int) -> dict[str, torch.Tensor]:
    """Seeded weights under the published tensor names, in bfloat16; tied embeddings, so no lm_head.weight."""
    model = build_model(MiniCPMConfig.from_dict(dict(config)), seed)
    return {
        name: tensor.detach().to(torch.bfloat16).contiguous()
        for name, tensor in model.state_dict().items()
        if name != "lm_head.weight"
    }


def write_published_layout(
    out_dir: str | Path,
    model_settings: Mapping[str, Any],
    vocab_size: int,
    seed: int,
    sample_dir: str | Path | None = None,
) -> Path:
    """Write a MiniCPM-2B-layout checkpoint at the `model:` section's size to ``out_dir``; returns ``out_dir``.

    ``vocab_size`` is the SentencePiece vocabulary trained here (the config's tokenizer.vocab_size, which with
    model.pretrained documents the checkpoint's vocabulary); ``seed`` decides tokenizer sampling and weights.
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    sp_model = train_sentencepiece(training_lines(sample_dir), vocab_size, seed)
    n_pieces = _piece_count(sp_model)
    config = published_config(model_settings, n_pieces)
    state = published_state_dict(config, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.model").write_bytes(sp_model)
    _write_json(out_dir / "config.json", config)
    _write_json(out_dir / "tokenizer_config.json", PUBLISHED_TOKENIZER_CONFIG)
    _write_json(out_dir / "special_tokens_map.json", PUBLISHED_SPECIAL_TOKENS_MAP)
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    log.info(
        "MiniCPM-2B layout at %s: %d tensors, %d parameters (bf16), SentencePiece vocabulary %d, seed %d",
        out_dir,
        len(state),
        sum(t.numel() for t in state.values()),
        n_pieces,
        seed,
    )
    return out_dir


def _piece_count(sp_model: bytes) -> int:
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_proto=sp_model).get_piece_size()


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    # The published files keep insertion order (not sorted) and non-ASCII characters as they are.
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


class RehearsalCheckpointJob(Settings):
    """What rule rehearsal_checkpoint reads: the seed, the ``model:`` section (the checkpoint's size) and
    tokenizer.vocab_size (the SentencePiece vocabulary trained here)."""

    seed: int
    model: ModelSettings
    vocab_size: int


def run_rehearsal_checkpoint(settings: RehearsalCheckpointJob, paths: RulePaths) -> Path:
    """Rule rehearsal_checkpoint: a tiny checkpoint laid out exactly like the published MiniCPM-2B one."""
    return write_published_layout(
        paths.output["checkpoint"],
        settings.model.model_dump(),
        settings.vocab_size,
        settings.seed,
        sample_dir=paths.input["samples"],
    )
