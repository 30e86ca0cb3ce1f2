"""The tokenizer in the GGUF: llama.cpp's ``gpt2`` (byte-level BPE) or ``llama`` (SentencePiece) vocabulary.

Two kinds are supported, told apart by tokenizer.json itself:

* ``gpt2``: byte-level BPE (our tokenizer stage's): tokens, merges, the ``gpt-2`` pre-tokenizer;
* ``llama``: SentencePiece-style BPE (MiniCPM's own tokenizer, so the paper-scale checkpoint): pieces with ``▁``
  for spaces and ``<0xNN>`` byte fallback. llama.cpp's SentencePiece tokenizer merges by piece score; SentencePiece
  BPE scores are the pieces' merge ranks, which Hugging Face keeps as the vocabulary order, so a normal piece's
  score is minus its rank (the values SentencePiece itself stores: 0, -1, -2, ...).

Merges, special token ids and the chat template come from the ``gguf`` package's own reader (gguf.SpecialVocab).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import gguf

from ..errors import InputError

log = logging.getLogger(__name__)

SPECIAL_TOKEN_TYPES = ("bos", "eos", "unk", "pad")  # the special ids the GGUF carries, in the order written
BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")


@dataclass(frozen=True)
class Vocabulary:
    """What the GGUF needs from tokenizer.json / tokenizer_config.json."""

    kind: str  # "gpt2" or "llama"
    vocab: dict[str, int]  # every token, added ones included
    added: dict[str, dict]  # tokenizer.json's added tokens by content
    special: gguf.SpecialVocab  # merges (gpt2), special ids, add-BOS/EOS flags, chat template
    add_space_prefix: bool  # SentencePiece's dummy prefix (llama only)

    def special_id(self, token_type: str) -> int | None:
        return self.special.special_token_ids.get(token_type)


def read_vocabulary(model_dir: Path, n_vocab: int) -> Vocabulary:
    """The tokenizer of ``model_dir`` as the GGUF writes it (``n_vocab``: the model's vocabulary size)."""
    tok_path = model_dir / "tokenizer.json"
    if not tok_path.exists():
        raise InputError(tok_path, "tokenizer file not found")
    data = json.loads(tok_path.read_text(encoding="utf-8"))
    kind = _tokenizer_kind(data, tok_path)
    model = data["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    added = {t["content"]: t for t in data.get("added_tokens", [])}
    for content, token in added.items():
        vocab[content] = token["id"]
    special = _special_vocab(model_dir, kind, n_vocab, vocab.get(model.get("unk_token")))
    return Vocabulary(
        kind=kind,
        vocab=vocab,
        added=added,
        special=special,
        add_space_prefix=kind == "llama" and _adds_space_prefix(_effective_tokenizer_json(model_dir), tok_path),
    )


def _tokenizer_kind(data: dict, tok_path: Path) -> str:
    model = data.get("model") or {}
    if model.get("type") == "BPE" and _is_byte_level(data.get("pre_tokenizer")):
        return "gpt2"
    if model.get("type") == "BPE" and model.get("byte_fallback") and _uses_metaspace(data):
        return "llama"
    raise InputError(
        tok_path,
        "only byte-level BPE (GPT-2 style) or SentencePiece BPE (byte fallback, ▁ for spaces) tokenizers "
        "can be exported to GGUF here",
    )


def _special_vocab(model_dir: Path, kind: str, n_vocab: int, model_unk: int | None) -> gguf.SpecialVocab:
    """gguf's reading of merges, special ids and chat template, with two deliberate differences.

    Whether encoding adds BOS / EOS is taken from what the tokenizer does on a probe, not from gguf's reading of
    config flags and post-processor templates (which can disagree with the behaviour, and also sets an add-SEP
    flag for SentencePiece tokenizers that llama.cpp's minicpm does not use). The unknown token falls back to
    tokenizer.json's ``model.unk_token`` when no config names it, as SentencePiece's vocabulary marks it UNKNOWN.
    """
    with _without_post_processor_notes():
        special = gguf.SpecialVocab(
            model_dir, load_merges=kind == "gpt2", special_token_types=SPECIAL_TOKEN_TYPES, n_vocab=n_vocab
        )
    ids = special.special_token_ids
    if "unk" not in ids and model_unk is not None:
        ids["unk"] = model_unk
    # gguf appends ids found only in config.json last; the file lists them in one fixed order.
    special.special_token_ids = {key: ids[key] for key in SPECIAL_TOKEN_TYPES if key in ids}
    add_bos, add_eos = _probe_adds_bos_eos(model_dir / "tokenizer.json", ids.get("bos"), ids.get("eos"))
    special.add_special_token = {"bos": add_bos, "eos": add_eos}
    return special


class _PostProcessorNotes(logging.Filter):
    """gguf's warnings about the tokenizer's TemplateProcessing (e.g. "Unknown separator token '<s>'"): they
    concern the add-BOS/EOS/SEP flags gguf reads from it, which this exporter replaces by the probe's."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "TemplateProcessing" not in record.getMessage()


@contextlib.contextmanager
def _without_post_processor_notes():
    gguf_vocab_log = logging.getLogger("gguf.vocab")
    notes = _PostProcessorNotes()
    gguf_vocab_log.addFilter(notes)
    try:
        yield
    finally:
        gguf_vocab_log.removeFilter(notes)


def _probe_adds_bos_eos(tok_path: Path, bos: int | None, eos: int | None) -> tuple[bool, bool]:
    """Whether encoding "a" with special tokens puts BOS first and EOS last."""
    from tokenizers import Tokenizer

    probe = Tokenizer.from_str(tok_path.read_text(encoding="utf-8")).encode("a", add_special_tokens=True).ids
    add_bos = bool(probe) and bos is not None and probe[0] == bos
    add_eos = bool(probe) and eos is not None and probe[-1] == eos
    return add_bos, add_eos


def _is_byte_level(pre_tokenizer) -> bool:
    if not pre_tokenizer:
        return False
    if pre_tokenizer.get("type") == "ByteLevel":
        return True
    if pre_tokenizer.get("type") == "Sequence":
        return any(_is_byte_level(p) for p in pre_tokenizer.get("pretokenizers", []))
    return False


def _components(spec: dict | None, key: str) -> list[dict]:
    """A normalizer / pre-tokenizer and the members of a Sequence of them."""
    if not spec:
        return []
    if spec.get("type") == "Sequence":
        return [c for member in spec.get(key, []) for c in _components(member, key)]
    return [spec]


def _uses_metaspace(data: dict) -> bool:
    """Spaces become ``▁`` (SentencePiece): a Metaspace pre-tokenizer or a normalizer replacing " " by "▁"."""
    if any(c.get("type") == "Metaspace" for c in _components(data.get("pre_tokenizer"), "pretokenizers")):
        return True
    return any(
        c.get("type") == "Replace" and c.get("content") == "▁"
        for c in _components(data.get("normalizer"), "normalizers")
    )


def _effective_tokenizer_json(model_dir: Path) -> dict:
    """The tokenizer as transformers runs it, which can differ from tokenizer.json: transformers 5's
    LlamaTokenizer rebuilds its Metaspace pre-tokenizer from the ``legacy`` flag of tokenizer_config.json
    (absent = False = prepend only at the start) whatever the file says."""
    from transformers import AutoTokenizer

    return json.loads(AutoTokenizer.from_pretrained(str(model_dir)).backend_tokenizer.to_str())


def _adds_space_prefix(data: dict, tok_path: Path) -> bool:
    """SentencePiece's dummy prefix: whether a "▁" is put before the text.

    llama.cpp adds it at the start and after every special token (Hugging Face's Metaspace ``always``, the legacy
    Llama behaviour); Hugging Face's ``first`` adds it only at the start, which llama.cpp cannot express.
    """
    for c in _components(data.get("pre_tokenizer"), "pretokenizers"):
        if c.get("type") == "Metaspace":
            scheme = c.get("prepend_scheme", "always" if c.get("add_prefix_space", True) else "never")
            if scheme == "first":
                log.warning(
                    "%s: Metaspace prepend_scheme 'first'; llama.cpp also puts '▁' after special tokens, "
                    "so text that follows one may tokenize differently (verification checks it)",
                    tok_path,
                )
            return scheme in ("always", "first")
    return any(
        c.get("type") == "Prepend" and c.get("prepend") == "▁"
        for c in _components(data.get("normalizer"), "normalizers")
    )


def token_table_with_scores(vocabulary: Vocabulary, n_vocab: int) -> tuple[list[str], list[int], list[float]]:
    """Tokens, types and SentencePiece scores for ids 0..n_vocab-1.

    Types: added special tokens CONTROL, other added tokens USER_DEFINED, the unknown token UNKNOWN, and for
    SentencePiece vocabularies the ``<0xNN>`` pieces BYTE. Scores: minus the rank of each normal piece in id
    order (SentencePiece BPE's own values), 0 for the rest; gpt2 files carry no scores.

    Ours rather than gguf.vocab's BpeVocab / LlamaHfVocab: BpeVocab wants added tokens after the base vocabulary
    (ours are ids 0-5) and types them all alike, LlamaHfVocab gives every piece the placeholder score -1000, which
    llama.cpp's score-merging SentencePiece tokenizer cannot use.
    """
    by_id = {i: t for t, i in vocabulary.vocab.items()}
    if by_id and max(by_id) >= n_vocab:
        raise InputError(None, f"tokenizer has id {max(by_id)} but the model's vocabulary is {n_vocab}")
    sentencepiece = vocabulary.kind == "llama"
    unk = vocabulary.special_id("unk")
    tokens, types, scores = [], [], []
    rank = 0
    for i in range(n_vocab):
        token = by_id.get(i)
        score = 0.0
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i == unk and sentencepiece:  # an added token in Hugging Face, UNKNOWN for SentencePiece
            tokens.append(token)
            types.append(gguf.TokenType.UNKNOWN)
        elif token in vocabulary.added:
            tokens.append(token)
            special = vocabulary.added[token].get("special", False)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        elif sentencepiece and BYTE_PIECE.fullmatch(token):
            tokens.append(token)
            types.append(gguf.TokenType.BYTE)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
            score = -float(rank)
            rank += 1
        scores.append(score)
    return tokens, types, scores


def add_tokenizer_metadata(writer: gguf.GGUFWriter, vocabulary: Vocabulary, n_vocab: int) -> int:
    """Write the tokenizer's keys; returns the number of tokens.

    The pre-tokenizer is named, not detected: llama.cpp's converter recognises a pre-tokenizer by hashing how it
    splits a test text and knows only published tokenizers' hashes; ours is GPT-2's byte-level regex, so ``gpt-2``.
    """
    tokens, types, scores = token_table_with_scores(vocabulary, n_vocab)
    if vocabulary.kind == "llama":
        # llama.cpp's SentencePiece tokenizer: merges by score, ▁ for spaces, byte fallback.
        writer.add_tokenizer_model("llama")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_add_space_prefix(vocabulary.add_space_prefix)
    else:
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre("gpt-2")
        writer.add_token_list(tokens)
        writer.add_token_types(types)
    # Merges (gpt2 only), special ids, the add-BOS/EOS flags and the chat template, in that order.
    vocabulary.special.add_to_gguf(writer, quiet=True)
    add_fim_token_ids(writer, vocabulary)
    return len(tokens)


def fim_token_ids(vocabulary: Vocabulary) -> dict[str, int]:
    """The GGUF keys of the fill-in-the-middle markers the vocabulary has, with their ids."""
    # Imported here: the model package imports torch, which reading a GGUF's metadata does not need.
    from ..model.tokenizer import FIM_MIDDLE, FIM_PAD, FIM_PREFIX, FIM_SUFFIX

    keys = {
        FIM_PREFIX: gguf.Keys.Tokenizer.FIM_PRE_ID,
        FIM_SUFFIX: gguf.Keys.Tokenizer.FIM_SUF_ID,
        FIM_MIDDLE: gguf.Keys.Tokenizer.FIM_MID_ID,
        FIM_PAD: gguf.Keys.Tokenizer.FIM_PAD_ID,
    }
    return {key: vocabulary.vocab[token] for token, key in keys.items() if token in vocabulary.vocab}


def add_fim_token_ids(writer: gguf.GGUFWriter, vocabulary: Vocabulary) -> None:
    """``tokenizer.ggml.fim_{pre,suf,mid,pad}_token_id``: what llama.cpp's infill prompts are built from.

    gguf's SpecialVocab has no FIM types, so they are written here. Only these keys: llama.cpp reads the older
    ``prefix/suffix/middle_token_id`` as deprecated synonyms of the same three. The markers are added special
    tokens, so their token type is already CONTROL (token_table_with_scores): llama.cpp never splits them and
    never prints them.
    """
    for key, token_id in fim_token_ids(vocabulary).items():
        writer.add_uint32(key, token_id)
