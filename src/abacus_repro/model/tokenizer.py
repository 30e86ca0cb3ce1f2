"""The run's tokenizer: byte-level BPE trained on the run's own data, saved as a transformers tokenizer.

GPT-2 style: the ByteLevel pre-tokenizer with GPT-2's split regex and no prefix space, so every string
round-trips and llama.cpp's ``gpt2`` tokenizer (pre-tokenizer ``gpt-2``) reproduces the ids exactly. Special
tokens follow MiniCPM: ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, then ``<pad>`` and the chat markers ``<用户>`` and
``<AI>``, then the fill-in-the-middle markers ``<fim_prefix>``, ``<fim_middle>``, ``<fim_suffix>``, ``<fim_pad>``
(ids 6-9). No BOS is added on encode: packing ends every document with ``</s>`` and trains without ``<s>``, so
inference sees what training saw.

A run that starts from a published checkpoint keeps that checkpoint's tokenizer instead: MiniCPM-2B ships a
SentencePiece BPE ``tokenizer.model``, converted here into the same layout (tokenizer.json plus
tokenizer_config.json with the chat template) and checked to give sentencepiece's own ids; the FIM markers,
which MiniCPM's vocabulary lacks, are appended after its last id (init_model grows the checkpoint's embeddings
to match).
"""

from __future__ import annotations

import hashlib
import heapq
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pyarrow.parquet as pq
from pydantic import Field

from ..errors import InputError
from ..io import path_list
from ..rules import RulePaths
from ..settings import Settings, TokenizerSettings

log = logging.getLogger(__name__)

UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
USER_TAG, AI_TAG = "<用户>", "<AI>"
# Fill-in-the-middle markers (StarCoder's names): a FIM-trained model reads
# <fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle> and writes the middle (PSM order).
FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD = "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"
FIM_TOKENS = [FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FIM_PAD]
# Ids 0-9 in this order: the FIM markers come after MiniCPM's, so <用户> (4) and <AI> (5) keep their ids.
SPECIAL_TOKENS = [UNK, BOS, EOS, PAD, USER_TAG, AI_TAG, *FIM_TOKENS]

# MiniCPM's chat format: <用户>{user}<AI>{assistant}</s>. A system message, if any, is read as plain text
# before the first user turn (MiniCPM has no system role).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<用户>' + message['content'] + '<AI>' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + '</s>' }}"
    "{% else %}{{ message['content'] }}{% endif %}"
    "{% endfor %}"
)
# add_generation_prompt needs no extra text: a user turn already ends with <AI>, where the model answers.


def build_bpe_tokenizer():
    """An untrained byte-level BPE ``tokenizers.Tokenizer`` with the GPT-2 pre-tokenizer and decoder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    # trim_offsets=False: offsets cover the leading space, as GPT-2's do; no special tokens are added here.
    tokenizer.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False)
    return tokenizer


def train_tokenizer(texts_iterator: Iterable[str], vocab_size: int, out_dir: str | Path, seed: int) -> Path:
    """Train byte-level BPE on ``texts_iterator`` and save it as a transformers tokenizer in ``out_dir``.

    Deterministic: the same texts in the same order give a byte-identical tokenizer.json (BPE training has no
    randomness; ``seed`` is recorded so the caller's sampling is traceable). Returns ``out_dir``.
    """
    from tokenizers import pre_tokenizers, trainers

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise InputError(None, f"tokenizer.vocab_size {vocab_size} is below the 256 bytes + special tokens")
    tokenizer = build_bpe_tokenizer()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = list(texts_iterator)
    if not any(text.strip() for text in texts):
        raise InputError(None, "no text to train the tokenizer on")
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    log.info(
        "trained byte-level BPE: %d tokens (asked %d) on %d texts, seed %d",
        tokenizer.get_vocab_size(),
        vocab_size,
        len(texts),
        seed,
    )
    return save_transformers_tokenizer(tokenizer, out_dir)


def save_transformers_tokenizer(tokenizer, out_dir: str | Path, **options) -> Path:
    """Wrap a ``tokenizers.Tokenizer`` (see ``wrap_tokenizer``) and save it.

    Only tokenizer.json and tokenizer_config.json are written (the chat template goes into the latter).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wrap_tokenizer(tokenizer, **options).save_pretrained(str(out_dir), save_jinja_files=False)
    _normalise_saved_files(out_dir)
    return out_dir


def wrap_tokenizer(
    tokenizer,
    *,
    bos_token: str | None = BOS,
    eos_token: str | None = EOS,
    unk_token: str | None = UNK,
    pad_token: str | None = PAD,
    additional_special_tokens: Sequence[str] = (USER_TAG, AI_TAG, *FIM_TOKENS),
    **flags,
):
    """A ``tokenizers.Tokenizer`` as PreTrainedTokenizerFast with MiniCPM's special tokens and chat template.

    ``flags`` go to PreTrainedTokenizerFast: a published checkpoint's ``add_bos_token`` becomes tokenizer.json's
    post-processor, so every reader of the file adds what the checkpoint's own tokenizer adds.
    """
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos_token,
        eos_token=eos_token,
        unk_token=unk_token,
        pad_token=pad_token,
        additional_special_tokens=list(additional_special_tokens),
        chat_template=CHAT_TEMPLATE,
        model_max_length=1_000_000,
        clean_up_tokenization_spaces=False,
        **flags,
    )


def _normalise_saved_files(out_dir: Path) -> None:
    """Rewrite the saved JSON with sorted keys and no volatile fields, so equal tokenizers are equal bytes."""
    for name in ("tokenizer_config.json",):
        path = out_dir / name
        config = json.loads(path.read_text(encoding="utf-8"))
        # The portable class name: transformers 4 and 5 and llama.cpp's converter all know it.
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    for leftover in ("special_tokens_map.json", "chat_template.jinja"):
        (out_dir / leftover).unlink(missing_ok=True)


def load_tokenizer(path: str | Path):
    """Load a saved tokenizer (its directory, or the tokenizer.json inside it)."""
    from transformers import AutoTokenizer

    path = Path(path)
    directory = path.parent if path.name == "tokenizer.json" else path
    if not (directory / "tokenizer.json").exists():
        raise InputError(directory / "tokenizer.json", "tokenizer file not found")
    return AutoTokenizer.from_pretrained(str(directory))


# ---------------------------------------------------------------------------------------------------------------
# Sampling training text from document shards
# ---------------------------------------------------------------------------------------------------------------


def document_training_text(text: str, meta_json: str | None) -> str:
    """The text a document contributes; SFT pairs (meta instruction/response) give both sides.

    The chat markers are special tokens and never part of BPE training, so they are left out here.
    """
    if meta_json:
        try:
            meta = json.loads(meta_json)
        except json.JSONDecodeError:
            meta = {}
        if isinstance(meta, dict) and "instruction" in meta and "response" in meta:
            return f"{meta['instruction']}\n{meta['response']}"
    return text or ""


def _priority(seed: int, path_index: int, doc_id: str, row: int) -> bytes:
    # A seeded hash orders documents: a uniform random sample that needs no second pass and no global shuffle.
    return hashlib.sha256(f"{seed}\0{path_index}\0{row}\0{doc_id}".encode("utf-8", "surrogatepass")).digest()


def iter_shard_texts(path: str | Path) -> Iterator[tuple[int, str, str]]:
    """(row, id, training text) of every document in a Parquet shard, streamed in batches."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "document shard not found")
    try:
        parquet = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several types for a corrupt file
        raise InputError(path, f"not a readable Parquet document shard ({err})") from err
    names = parquet.schema_arrow.names
    if "text" not in names:
        raise InputError(path, "document shard lacks a 'text' column")
    columns = [c for c in ("id", "text", "meta") if c in names]
    row = 0
    for batch in parquet.iter_batches(columns=columns, batch_size=2048):
        data = batch.to_pydict()
        ids = data.get("id") or [""] * batch.num_rows
        metas = data.get("meta") or [None] * batch.num_rows
        for doc_id, text, meta in zip(ids, data["text"], metas):
            yield row, doc_id or "", document_training_text(text, meta)
            row += 1


def sample_training_texts(paths: Sequence[str | Path], train_chars: int, seed: int) -> list[str]:
    """A seeded sample of documents from ``paths`` holding up to ``train_chars`` characters.

    Each document gets a seeded hash priority; the documents with the lowest priorities are kept until the
    budget is filled (the last one is cut to fit). Memory stays near ``train_chars`` whatever the input size,
    and the result depends only on the files' contents, their order and the seed.
    """
    heap: list[tuple[bytes, str]] = []  # max-heap by priority (negated bytes are not possible: invert instead)
    total = 0
    n_docs = 0
    for path_index, path in enumerate(paths):
        for row, doc_id, text in iter_shard_texts(path):
            if not text:
                continue
            n_docs += 1
            key = _inverted(_priority(seed, path_index, doc_id, row))
            if total >= train_chars and key < heap[0][0]:
                continue  # lower priority than everything kept, and the budget is already full
            heapq.heappush(heap, (key, text))
            total += len(text)
            # Drop the lowest-priority document while the rest still fill the budget.
            while heap and total - len(heap[0][1]) >= train_chars:
                total -= len(heapq.heappop(heap)[1])
    kept = sorted(heap, key=lambda item: item[0], reverse=True)  # highest priority first
    texts, used = [], 0
    for _key, text in kept:
        take = text[: max(0, train_chars - used)]
        if take:
            texts.append(take)
            used += len(take)
    log.info("tokenizer sample: %d of %d documents, %d characters (budget %d)", len(texts), n_docs, used, train_chars)
    return texts


def _inverted(digest: bytes) -> bytes:
    # heapq is a min-heap; inverting the bytes makes the *highest* priority (lowest digest) the largest key,
    # so the heap's top is the document to evict first.
    return bytes(255 - b for b in digest)


# ---------------------------------------------------------------------------------------------------------------
# The rule's entry point
# ---------------------------------------------------------------------------------------------------------------


class TokenizerJob(Settings):
    """What the train_tokenizer job reads: the run's seed, the `tokenizer` section and ``model.pretrained``."""

    seed: int = Field(ge=0)
    tokenizer: TokenizerSettings
    pretrained: str | None


def train_run_tokenizer(settings: TokenizerJob, paths: RulePaths) -> Path:
    """Rule train_tokenizer: byte-level BPE on a seeded sample of the run's documents, or, when the run starts from
    a published checkpoint, that checkpoint's own tokenizer in the same layout (the job's only inputs are then
    the checkpoint's tokenizer files: nothing is sampled)."""
    out_dir = Path(paths.output["tokenizer"]).parent
    if settings.pretrained:
        return export_pretrained_tokenizer(settings.pretrained, out_dir, expected_size=settings.tokenizer.vocab_size)
    inputs = paths.input
    shards = [*path_list(inputs["code"]), *path_list(inputs["text"]), inputs["math"], inputs["sft"]]
    return tokenizer_from_shards(shards, settings.tokenizer, out_dir, settings.seed)


def tokenizer_from_shards(
    paths: Sequence[str | Path], settings: TokenizerSettings, out_dir: str | Path, seed: int
) -> Path:
    """Train the run's tokenizer on a seeded sample of ``paths`` (``tokenizer.train_chars`` characters)."""
    texts = sample_training_texts(paths, settings.train_chars, seed)
    return train_tokenizer(texts, settings.vocab_size, out_dir, seed)


# ---------------------------------------------------------------------------------------------------------------
# A published checkpoint's own tokenizer (MiniCPM-2B: a SentencePiece BPE tokenizer.model)
# ---------------------------------------------------------------------------------------------------------------

SENTENCEPIECE_MODEL = "tokenizer.model"
# SentencePiece piece types and model types (sentencepiece_model.proto): only NORMAL pieces are merge results.
SP_NORMAL, SP_USER_DEFINED = 1, 4
SP_BPE = 2
# Converting a SentencePiece model is checked on these against sentencepiece itself: Chinese, English and code
# with indentation, tabs, runs of spaces and digits, and characters no small vocabulary has (byte fallback).
PROBE_TEXTS = (
    'def fibonacci(n: int) -> int:\n    """返回第 n 个斐波那契数。"""\n    if n < 2:\n        return n\n',
    "\tfor i in range(1024):  # 循环 1024 次\n\t\tprint(f'{i:>8}', end='')\n",
    "如何在 Python 中读取文件？使用 open() 函数。How do I read a file? Use open().",
    "  leading spaces, trailing spaces   \n\n\nand blank lines  ",
    "emoji 🧮🐍, Ω≈ç√∫, ﬁ ligature, 𝔘𝔫𝔦𝔠𝔬𝔡𝔢, tab\tand NUL-free control \x07 bell",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name; -- 查询成年用户",
    "1234567890 3.14159 1e-5 0xFF 2024年12月31日",
)


def export_pretrained_tokenizer(source: str | Path, out_dir: str | Path, expected_size: int | None = None) -> Path:
    """A checkpoint's own tokenizer, saved as tokenizer.json + tokenizer_config.json with MiniCPM's chat template.

    A SentencePiece ``tokenizer.model`` (MiniCPM-2B's) is converted here and checked to give sentencepiece's own
    ids; it wins over a tokenizer.json beside it (the model is what the checkpoint was trained with). Without
    one, the checkpoint's tokenizer.json is used as transformers reads it. ``expected_size`` (the config's
    ``tokenizer.vocab_size``, which documents the checkpoint's vocabulary) must equal the tokenizer's size.
    """
    source = Path(source)
    if not source.is_dir():
        raise InputError(source, "model.pretrained is not a local checkpoint directory (nothing is downloaded)")
    if (source / SENTENCEPIECE_MODEL).exists():
        tokenizer = _convert_checkpoint_sentencepiece(source)
    elif (source / "tokenizer.json").exists():
        tokenizer = _load_checkpoint_tokenizer_json(source)
    else:
        raise InputError(
            source, "model.pretrained has neither tokenizer.model nor tokenizer.json (nothing is downloaded)"
        )
    if expected_size is not None and len(tokenizer) != expected_size:
        raise InputError(
            source,
            f"the checkpoint's tokenizer has {len(tokenizer)} tokens but tokenizer.vocab_size is {expected_size} "
            "(with model.pretrained it documents the checkpoint's vocabulary: set it to the checkpoint's)",
        )
    append_fim_tokens(tokenizer)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out_dir), save_jinja_files=False)
    _normalise_saved_files(out_dir)
    log.info("saved the tokenizer of %s: %d tokens", source, len(tokenizer))
    return out_dir


def append_fim_tokens(tokenizer) -> list[str]:
    """Append the FIM markers a checkpoint's vocabulary lacks, as special tokens after its last id; returns them.

    Special (never split, never normalised, CONTROL in the GGUF) like the chat markers, in FIM_TOKENS' order, so
    MiniCPM-2B's 122753 tokens become 122757 with <fim_prefix> at 122753.
    """
    from tokenizers import AddedToken

    missing = [token for token in FIM_TOKENS if token not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": [AddedToken(t, special=True, normalized=False) for t in missing]},
            replace_extra_special_tokens=False,
        )
    return missing


def _read_checkpoint_tokenizer_config(source: Path) -> dict:
    path = source / "tokenizer_config.json"
    if not path.exists():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(path, f"not valid JSON ({err})") from err
    if not isinstance(config, dict):
        raise InputError(path, "expected a JSON object")
    return config


def _convert_checkpoint_sentencepiece(source: Path):
    """The checkpoint's tokenizer.model as a PreTrainedTokenizerFast, checked id for id against sentencepiece."""
    config = _read_checkpoint_tokenizer_config(source)
    model_path = source / SENTENCEPIECE_MODEL
    proto = read_sentencepiece_model(model_path)
    # LlamaTokenizer's defaults where the checkpoint's config is silent. MiniCPM sets legacy true: the "▁" prefix
    # also follows each special token, as llama.cpp's SentencePiece tokenizer does.
    backend = sentencepiece_to_tokenizers(proto, legacy=bool(config.get("legacy", True)), source=model_path)
    spec = proto.trainer_spec

    def piece(index: int) -> str | None:
        return proto.pieces[index].piece if 0 <= index < len(proto.pieces) else None

    tokenizer = wrap_tokenizer(
        backend,
        bos_token=piece(spec.bos_id),
        eos_token=piece(spec.eos_id),
        unk_token=piece(spec.unk_id),
        # MiniCPM defines no padding token; packing pads with EOS only where the loss is masked anyway.
        pad_token=piece(spec.pad_id) or piece(spec.eos_id),
        # The chat markers (<用户>, <AI>) are SentencePiece user-defined symbols: special tokens here, as in the
        # tokenizer the tiny run trains.
        additional_special_tokens=[p.piece for p in proto.pieces if p.type == SP_USER_DEFINED],
        add_bos_token=bool(config.get("add_bos_token", True)),
        add_eos_token=bool(config.get("add_eos_token", False)),
    )
    check_against_sentencepiece(tokenizer, model_path)
    return tokenizer


def _load_checkpoint_tokenizer_json(source: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source))
    if tokenizer.pad_token is None:
        # MiniCPM defines no padding token; packing pads with it only where the loss is masked anyway.
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def read_sentencepiece_model(path: str | Path):
    """The ModelProto of a SentencePiece model file (needs sentencepiece and protobuf, both pinned: sentencepiece's
    generated module imports protobuf, which sentencepiece itself does not require)."""
    from sentencepiece import sentencepiece_model_pb2

    path = Path(path)
    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(path.read_bytes())
    except Exception as err:  # protobuf's DecodeError, or a truncated file
        raise InputError(path, f"not a SentencePiece model ({err})") from err
    if not proto.pieces:
        raise InputError(path, "not a SentencePiece model (no pieces)")
    return proto


def sentencepiece_to_tokenizers(proto, legacy: bool = True, source: str | Path | None = None):
    """A ``tokenizers.Tokenizer`` that segments as the SentencePiece BPE model ``proto`` does.

    The vocabulary is the pieces in id order; the merges are every split of a normal piece into two normal
    pieces, by the merged piece's score (SentencePiece BPE merges the adjacent pair whose union scores highest).
    The normalizer follows the model's normalizer spec (precompiled character map, extra-whitespace removal,
    whitespace as "▁", the dummy "▁" prefix). ``legacy`` is LlamaTokenizer's flag: true puts the prefix before
    every run of text between added tokens, as llama.cpp does (on plain text, SentencePiece's own ids).
    ``source`` (the model file) is named in errors.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers

    spec, normalizer_spec = proto.trainer_spec, proto.normalizer_spec
    if spec.model_type != SP_BPE:
        raise InputError(source, "only SentencePiece BPE models can be converted (MiniCPM's is BPE)")
    if spec.treat_whitespace_as_suffix:
        raise InputError(source, "SentencePiece models with treat_whitespace_as_suffix are not supported")
    if normalizer_spec.add_dummy_prefix and not legacy:
        # Hugging Face can put the prefix only at the start (Metaspace 'first') by the original offset, which
        # stripping spaces moves, and never before text that starts with a space; SentencePiece always does.
        raise InputError(
            source,
            "a SentencePiece model with a dummy prefix converts exactly only with legacy spacing "
            "(tokenizer_config.json legacy: true, as MiniCPM's)",
        )
    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    tokenizer = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=sentencepiece_merges(proto),
            unk_token=proto.pieces[spec.unk_id].piece,
            fuse_unk=True,
            byte_fallback=spec.byte_fallback,
            dropout=None,
        )
    )
    steps = []
    if normalizer_spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(normalizer_spec.precompiled_charsmap))
    if normalizer_spec.remove_extra_whitespaces:
        # SentencePiece's whitespace here is the space character only: strip it at both ends, collapse runs.
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""), normalizers.Replace(Regex(" {2,}"), " ")]
    if normalizer_spec.add_dummy_prefix:
        steps.append(normalizers.Prepend("▁"))
    if normalizer_spec.escape_whitespaces:
        steps.append(normalizers.Replace(" ", "▁"))
    tokenizer.normalizer = normalizers.Sequence(steps)
    decode = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if normalizer_spec.add_dummy_prefix:
        decode.append(decoders.Strip(content=" ", left=1))
    tokenizer.decoder = decoders.Sequence(decode)
    return tokenizer


def sentencepiece_merges(proto) -> list[tuple[str, str]]:
    """BPE merges for the normal pieces of ``proto``, highest-scoring result first (ties: lower id first)."""
    normal = {p.piece: i for i, p in enumerate(proto.pieces) if p.type == SP_NORMAL}
    ranked = sorted(normal, key=lambda piece: (-proto.pieces[normal[piece]].score, normal[piece]))
    merges = []
    for piece in ranked:
        splits = [(piece[:k], piece[k:]) for k in range(1, len(piece))]
        found = [(left, right) for left, right in splits if left in normal and right in normal]
        merges += sorted(found, key=lambda pair: (normal[pair[0]], normal[pair[1]]))
    return merges


def check_against_sentencepiece(tokenizer, model_path: str | Path, texts: Sequence[str] = PROBE_TEXTS) -> None:
    """Raise if ``tokenizer`` (without special tokens) gives other ids than sentencepiece on ``texts``."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(model_path))
    for text in texts:
        ours = tokenizer(text, add_special_tokens=False)["input_ids"]
        theirs = processor.encode(text)
        if ours != theirs:
            at = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            raise InputError(
                model_path,
                f"the converted tokenizer differs from sentencepiece on {text[:40]!r} at token {at}: "
                f"{tokenizer.convert_ids_to_tokens(ours[at : at + 3])} vs "
                f"{[processor.id_to_piece(i) for i in theirs[at : at + 3]]}",
            )
