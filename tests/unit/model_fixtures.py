"""Helpers for the model and export tests: a real corpus, the run's tokenizer and tiny MiniCPMs built by
the package itself (train_tokenizer, init_model), so the tests exercise the same code as the workflow."""

from __future__ import annotations

import sysconfig
from pathlib import Path

# Real text: Python's own standard library sources plus some Chinese prose and chat-formatted pairs.
STDLIB_PACKAGES = ("json", "email", "asyncio", "logging", "unittest", "http", "xml", "concurrent")
CHINESE = [
    "如何在 Python 中读取文件？使用 open() 函数，并在 with 语句中打开它，这样文件会被自动关闭。",
    "珠算是一种古老的计算方法。写一个函数，判断一个数是否为素数，并给出测试用例。",
    "列表推导式可以让代码更简洁：[x * x for x in range(10) if x % 2 == 0]。",
]

TINY_MODEL = {
    "hidden_size": 128,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 352,
    "max_position_embeddings": 1024,
    "rope_theta": 10000.0,
    "rms_norm_eps": 1.0e-5,
    "scale_emb": 12,
    "scale_depth": 1.4,
    "dim_model_base": 64,
    "init_std": 0.1,
}


def corpus_texts(max_chars: int = 1_000_000) -> list[str]:
    """Deterministic real text of about ``max_chars`` characters."""
    root = Path(sysconfig.get_paths()["stdlib"])
    texts: list[str] = [line * 20 for line in CHINESE]
    total = sum(map(len, texts))
    for package in STDLIB_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8", errors="replace")
            texts.append(text)
            total += len(text)
            if total >= max_chars:
                return texts
    return texts


def make_tokenizer(directory: Path, vocab_size: int = 4096, max_chars: int = 1_000_000) -> Path:
    from abacus_repro.model.tokenizer import train_tokenizer

    return train_tokenizer(corpus_texts(max_chars), vocab_size, directory, seed=1234)


def make_model(directory: Path, tokenizer_dir: Path, seed: int = 1234, **overrides) -> Path:
    from abacus_repro.model.init import init_model
    from abacus_repro.settings import ModelSettings

    return init_model(ModelSettings(**{**TINY_MODEL, **overrides}), tokenizer_dir / "tokenizer.json", directory, seed)
