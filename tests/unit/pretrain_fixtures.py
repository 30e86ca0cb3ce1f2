"""Helpers for the mixture, tokenization and training tests: a tiny tokenizer, a tiny MiniCPM, small corpora.

The tokenizer and the model come from the model stage's own code (byte-level BPE with the project's special
tokens and chat template; the package's MiniCPM at toy size written by init_model), so the trainer loads them
through the Auto classes exactly as in the workflow.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

CODE_SNIPPETS = [
    "def add(a, b):\n    return a + b\n",
    "def is_even(n):\n    return n % 2 == 0\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n        self.items.append(x)\n",
    "import os\n\n\ndef list_files(root):\n    return sorted(os.listdir(root))\n",
    "for i in range(10):\n    print(i * i)\n",
]
TEXT_SNIPPETS = [
    "Question: how do I reverse a list in Python? Answer: use reversed() or slicing with [::-1].",
    "The documentation explains how to install the package and run the tests.",
    "如何在 Python 中读取文件?使用 open() 函数。",
]
MATH_SNIPPETS = ["Problem: 12 + 30 = ? Solution: 42.", "Problem: 7 * 6 = ? Solution: 42."]


def build_tokenizer(directory: Path, vocab_size: int = 400):
    """Train and save a tiny byte-level BPE with the tokenizer stage's own code; returns it loaded."""
    from abacus_repro.model.tokenizer import load_tokenizer, train_tokenizer

    corpus = (CODE_SNIPPETS + TEXT_SNIPPETS + MATH_SNIPPETS) * 20
    train_tokenizer(iter(corpus), vocab_size, directory, seed=0)
    return load_tokenizer(directory)


def build_model_dir(directory: Path, tokenizer_dir: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """A randomly initialised toy MiniCPM plus the tokenizer, written by init_model like results/model/init."""
    from abacus_repro.model.init import init_model
    from abacus_repro.settings import ModelSettings

    settings = ModelSettings(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=hidden * 2,
        max_position_embeddings=512,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        scale_emb=12,
        scale_depth=1.4,
        dim_model_base=hidden // 2,
        init_std=0.1,
    )
    return init_model(settings, tokenizer_dir, directory, seed)


def doc(text: str, source: str, meta: dict | None = None) -> dict:
    from abacus_repro.io import make_doc

    return make_doc(text, source, meta or {})


def synthetic_corpus(n: int, snippets: list[str], source: str, seed: int = 0) -> list[dict]:
    """n distinct documents made of 1-4 snippets each (distinct ids, varied lengths)."""
    rng = random.Random(f"{seed}:{source}")
    return [
        doc(f"# {source} {i}\n" + "".join(rng.choice(snippets) for _ in range(rng.randint(1, 4))), source)
        for i in range(n)
    ]


def sft_doc(instruction: str, response: str, kind: str = "code") -> dict:
    meta = {"instruction": instruction, "response": response, "kind": kind}
    return doc(f"{instruction}\n{response}", "sft", meta)


def training_settings(seed: int = 5, **train_overrides):
    """A train job's settings (seed, train and sft sections) at test scale.

    Only the test-scale values are written here; every other key is the settings' default (the schema's), so
    train_phase called from a test trains what the workflow's train rule would for a config setting these values.
    """
    from abacus_repro.pretrain.trainer import TrainJob

    train = {
        "micro_batch_size": 4,
        "grad_accum": 1,
        "weight_decay": 0.1,
        "grad_clip": 1.0,
        "precision": "fp32",
        "threads": 1,
        "log_every": 5,
        "schedule": {"lr_peak": 1e-2, "lr_min": 1e-3, "lr_final": 1e-4, "warmup_steps": 3, "cosine_horizon": 60},
        "base": {"lr": 1e-2, "warmup_steps": 3},
    }
    train.update(train_overrides)
    sft = {"epochs": 2, "lr": 5e-3, "micro_batch_size": 4, "code_nl_ratio": 1.0}
    return TrainJob.model_validate({"seed": seed, "train": train, "sft": sft})


def phase_paths(out: Path, phase: str, model_dir: Path, data: Path, job, validation: Path | None = None):
    """The train rule's paths for ``phase`` writing under ``out`` (as under results/train/{phase}/), reading the
    packed arrays in ``data``; the anneal phase continues the cosine state beside its model as the rule says.
    ``validation``: a directory holding each source's packed validation split (``<source>/tokens.npy``, ...)."""
    from abacus_repro.mixture.validation import VALIDATION_SOURCES
    from abacus_repro.pretrain.data import ARRAYS
    from abacus_repro.rules import RulePaths

    continues = phase == "anneal" and job.train.continue_optimizer
    out, model_dir, data = Path(out), Path(model_dir), Path(data)
    held_out = {
        f"validation_{name}": [str(Path(validation) / source / f"{name}.npy") for source in VALIDATION_SOURCES]
        for name in ARRAYS
        if validation is not None
    }
    return RulePaths(
        input={
            "model": str(model_dir),
            **{name: str(data / f"{name}.npy") for name in ARRAYS},
            "init_state": str(model_dir.parent / "state") if continues else [],
            **held_out,
        },
        output={
            "model": str(out / "model"),
            "state": str(out / "state"),
            "metrics": str(out / "metrics.jsonl"),
            "loss": str(out / "loss.png"),
            "lr": str(out / "lr.png"),
        },
        wildcards={"phase": phase},
    )


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
