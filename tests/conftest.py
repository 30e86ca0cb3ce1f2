"""Shared test fixtures: where the real public data lives (read in place, never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
# Rules whose jobs run a model (the judge, the embedding classifier, Semi-Instruct generation, SemDeDup's embeddings,
# evaluation by generation): at paper scale each asks for a GPU, and no other rule but train holds one.
MODEL_RULES = frozenset(
    {
        "text_judge",
        "text_classifier_train",
        "text_classifier_apply",
        "sft_semi_instruct",
        "sft_semdedup",
        "eval_code",
        "eval_infill",
        "eval_livecodebench",
        "eval_general",
    }
)


def shared_data_dir() -> Path:
    return Path(os.environ.get("ABACUS_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")).resolve()


def micro_config(absolute_inputs: bool = True) -> dict:
    """tests/integration/micro.yaml with the shared data filled in. Its raw inputs (StackExchange dumps, docs
    samples) are repository paths: made absolute, unless the caller copies them next to the run."""
    config = yaml.safe_load((REPO_ROOT / "tests/integration/micro.yaml").read_text())
    config["shared_data"] = str(shared_data_dir())
    if absolute_inputs:
        se, docs = config["text"]["stackexchange"], config["text"]["docs"]
        se["dumps"] = [str(REPO_ROOT / p) for p in se["dumps"]]
        docs["sample_dir"] = str(REPO_ROOT / docs["sample_dir"])
    return config


def write_micro_config(workdir: Path, config: dict | None = None) -> Path:
    path = workdir / "micro.yaml"
    path.write_text(yaml.safe_dump(config if config is not None else micro_config(), allow_unicode=True))
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path} (set ABACUS_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
