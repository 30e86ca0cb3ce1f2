"""The rule scripts (decontaminate, mixture, mixture_stats; tokenize, train) read exactly the rule's inputs and
write its outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from abacus_repro.config import resolved_section
from abacus_repro.io import read_docs, write_docs
from abacus_repro.pretrain.data import ARRAYS

from .pretrain_fixtures import (
    CODE_SNIPPETS,
    MATH_SNIPPETS,
    TEXT_SNIPPETS,
    build_model_dir,
    build_tokenizer,
    sft_doc,
    synthetic_corpus,
    training_settings,
)
from .script_fixtures import run_script


def test_decontamination_and_mixture_scripts_chain_from_sources(tmp_path):
    build_tokenizer(tmp_path / "model" / "tokenizer")
    code = [str(tmp_path / f"code{i}.parquet") for i in range(2)]
    corpus = synthetic_corpus(80, CODE_SNIPPETS, "code")
    write_docs(code[0], corpus[:40])
    write_docs(code[1], corpus[40:])
    write_docs(tmp_path / "se.parquet", synthetic_corpus(30, TEXT_SNIPPETS, "se"))
    write_docs(tmp_path / "docs.parquet", synthetic_corpus(10, TEXT_SNIPPETS, "docs"))
    write_docs(tmp_path / "math.parquet", synthetic_corpus(10, MATH_SNIPPETS, "math"))
    sft_pairs = [sft_doc(f"Task {i}", f"def t{i}():\n    return {i}\n") for i in range(30)]
    sft_pairs += [sft_doc(f"Why {i}?", f"Because {i}.", kind="nl") for i in range(10)]
    write_docs(tmp_path / "sft.parquet", sft_pairs)
    mixture = resolved_section(
        "mixture",
        {
            "shares": {"code": 0.7, "math": 0.1, "text": 0.2},
            "tokens": {"base": 3000, "cosine": 2000, "anneal": 1500},
            "anneal_sft_fraction": 0.2,
        },
    )
    tokenizer_json = str(tmp_path / "model" / "tokenizer" / "tokenizer.json")
    # Decontamination against a planted evaluation file: one code document copies its problem.
    problem = "def below_zero(operations):\n    " + " ".join(f"step{i} = operations[{i}] + {i}" for i in range(8))
    write_docs(code[1], read_docs(code[1]) + [{"id": "leak", "text": problem, "source": "code", "meta": "{}"}])
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    (eval_dir / "problems.jsonl").write_text(json.dumps({"task_id": "P/0", "prompt": problem}) + "\n")
    decontamination = {"enabled": True, "ngram": 13, "min_matches": 1, "paths": []}
    dropped = {}
    for group, inputs in {
        "pretrain": {"code": code, "text": [str(tmp_path / "se.parquet")], "math": [str(tmp_path / "math.parquet")]},
        "sft": {"sft": [str(tmp_path / "sft.parquet")]},
    }.items():
        out = {name: str(tmp_path / "decontamination" / f"{group}.{name}") for name in ("dropped", "stats")}
        out = {"dropped": out["dropped"] + ".parquet", "stats": out["stats"] + ".json"}
        params = {
            "settings": {"decontamination": decontamination, "absent_eval_data": [str(tmp_path / "no-such-eval")]}
        }
        inputs = {**inputs, "eval_data": [str(eval_dir)]}
        run_script("decontaminate", tmp_path, {"group": group}, inputs, out, params)
        dropped[group] = out
    assert [d["id"] for d in read_docs(dropped["pretrain"]["dropped"])] == ["leak"]
    assert read_docs(dropped["sft"]["dropped"]) == []
    decontamination_stats = json.loads(Path(dropped["pretrain"]["stats"]).read_text())
    assert decontamination_stats["eval_roots"] == ["eval", "no-such-eval"]
    assert decontamination_stats["missing_eval_roots"] == ["no-such-eval"]  # reported, not fatal
    validation = run_validation_split(tmp_path, code, dropped)
    stats = []
    for phase in ("base", "anneal"):
        sources = {
            "code": code,
            "text": [str(tmp_path / "se.parquet"), str(tmp_path / "docs.parquet")],
            "math": [str(tmp_path / "math.parquet")],
            "tokenizer": tokenizer_json,
            "contaminated": [dropped["pretrain"]["dropped"]],
            "validation": [validation[source] for source in ("code", "math", "text")],
        }
        if phase == "anneal":
            sources["sft"] = [str(tmp_path / "sft.parquet")]
            sources["contaminated"].append(dropped["sft"]["dropped"])
            sources["validation"].append(validation["sft"])
        out = {
            "docs": str(tmp_path / "mixture" / f"{phase}.parquet"),
            "stats": str(tmp_path / "mixture" / f"{phase}.stats.json"),
        }
        run_script("mixture", tmp_path, {"phase": phase}, sources, out, {"settings": {"mixture": mixture, "seed": 3}})
        mixed = read_docs(out["docs"])
        assert mixed and json.loads(Path(out["stats"]).read_text())["phase"] == phase
        assert not any(d["id"].split(".r")[0] == "leak" for d in mixed)
        # No mixture trains on a validation document (repeats carry a .rN suffix on the id).
        held_out = {d["id"] for path in validation.values() for d in read_docs(path)}
        assert held_out and not held_out & {d["id"].split(".r")[0] for d in mixed}
        phase_stats = json.loads(Path(out["stats"]).read_text())
        assert phase_stats["sources"]["code"]["validation_docs"] == 5
        stats.append(out["stats"])
    # The SFT phase leaves the SFT validation pairs out too.
    sft_tokenized = {name: str(tmp_path / "tokenized" / "sft" / f"{name}.npy") for name in ARRAYS}
    run_script(
        "tokenize",
        tmp_path,
        {"phase": "sft"},
        {
            "docs": str(tmp_path / "sft.parquet"),
            "tokenizer": tokenizer_json,
            "contaminated": [dropped["sft"]["dropped"]],
            "held_out": [validation["sft"]],
        },
        {**sft_tokenized, "meta": str(tmp_path / "tokenized" / "sft" / "meta.json")},
        {"settings": {"seed": 3, "pack": {"seq_len": 64}}},
    )
    sft_meta = json.loads((tmp_path / "tokenized" / "sft" / "meta.json").read_text())
    assert sft_meta["validation_docs"] == 4 and sft_meta["documents"] == 40 - 4
    run_script(
        "mixture_stats",
        tmp_path,
        {},
        {"stats": stats, "decontamination": [dropped[g]["stats"] for g in ("pretrain", "sft")]},
        {"stats": str(tmp_path / "mixture" / "stats.json")},
        {"settings": {}},
    )
    summary = json.loads((tmp_path / "mixture" / "stats.json").read_text())
    assert set(summary["phases"]) == {"base", "anneal"}
    assert summary["decontamination"]["pretrain"]["dropped"] == {"eval_ngram_overlap": 1}


def run_validation_split(tmp_path: Path, code: list[str], dropped: dict) -> dict[str, str]:
    """The validation_split rule per source (10%, at most 5): {source: its held-out documents' path}."""
    inputs = {
        "code": code,
        "text": [str(tmp_path / "se.parquet"), str(tmp_path / "docs.parquet")],
        "math": [str(tmp_path / "math.parquet")],
        "sft": [str(tmp_path / "sft.parquet")],
    }
    paths = {}
    for source, docs in inputs.items():
        group = "sft" if source == "sft" else "pretrain"
        out = {
            "docs": str(tmp_path / "validation" / f"{source}.parquet"),
            "stats": str(tmp_path / "validation" / f"{source}.stats.json"),
        }
        contaminated = dropped[group]["dropped"]
        settings = {"settings": {"fraction": 0.1, "max_documents": 5}}
        run_script(
            "validation_split",
            tmp_path,
            {"source": source},
            {"docs": docs, "contaminated": contaminated},
            out,
            settings,
        )
        paths[source] = out["docs"]
    counts = {s: json.loads((tmp_path / "validation" / f"{s}.stats.json").read_text()) for s in inputs}
    # 81 code documents less the leaked one: ceil(8.0) capped at 5; 40 text: 4; 10 math: 1; 40 SFT pairs: 4.
    assert {s: c["validation_docs"] for s, c in counts.items()} == {"code": 5, "text": 4, "math": 1, "sft": 4}
    assert "leak" not in {d["id"] for d in read_docs(paths["code"])}
    return paths


def test_tokenize_and_train_scripts_write_the_rule_outputs(tmp_path):
    build_tokenizer(tmp_path / "model" / "tokenizer")
    init = build_model_dir(tmp_path / "model" / "init", tmp_path / "model" / "tokenizer")
    tokenizer_json = str(tmp_path / "model" / "tokenizer" / "tokenizer.json")
    docs = synthetic_corpus(60, CODE_SNIPPETS + TEXT_SNIPPETS, "mixed") + synthetic_corpus(60, CODE_SNIPPETS, "code")
    write_docs(tmp_path / "mixture" / "base.parquet", docs)
    tokenized = {
        name: str(tmp_path / "tokenized" / "base" / f"{name}.npy") for name in ("tokens", "segments", "loss_mask")
    }
    run_script(
        "tokenize",
        tmp_path,
        {"phase": "base"},
        {
            "docs": str(tmp_path / "mixture" / "base.parquet"),
            "tokenizer": tokenizer_json,
            "contaminated": [],
            "held_out": [],
        },
        {**tokenized, "meta": str(tmp_path / "tokenized" / "base" / "meta.json")},
        {"settings": {"seed": 3, "pack": {"seq_len": 64, "fim": {"rate": 0.5}}}},
    )
    assert np.load(tokenized["tokens"], mmap_mode="r").shape[1] == 64
    fim = json.loads((tmp_path / "tokenized" / "base" / "meta.json").read_text())["fim"]
    assert fim["code_documents"] == 60 and 0 < fim["psm_documents"] + fim["spm_documents"] < 60
    # The validation split of a source, tokenized without FIM (the rule tokenize_validation).
    validation_dir = tmp_path / "tokenized" / "validation" / "code"
    run_script(
        "tokenize_validation",
        tmp_path,
        {"source": "code"},
        {"docs": str(tmp_path / "mixture" / "base.parquet"), "tokenizer": tokenizer_json},
        {**{name: str(validation_dir / f"{name}.npy") for name in ARRAYS}, "meta": str(validation_dir / "meta.json")},
        {"settings": {"seq_len": 64}},
    )
    validation_meta = json.loads((validation_dir / "meta.json").read_text())
    assert validation_meta["documents"] == validation_meta["rows"] == 120 and validation_meta["fim"] is None
    # One row per document: its first tokens, from the row start (no document shares a row).
    segments = np.load(validation_dir / "segments.npy")
    assert segments.shape == (120, 64) and (segments[:, 0] == 0).all() and segments.max() == 0

    settings = training_settings(seed=3)
    train_out = {
        "model": str(tmp_path / "train" / "base" / "model"),
        "metrics": str(tmp_path / "train" / "base" / "metrics.jsonl"),
        "loss": str(tmp_path / "train" / "base" / "loss.png"),
        "lr": str(tmp_path / "train" / "base" / "lr.png"),
        "state": str(tmp_path / "train" / "base" / "state"),
    }
    run_script(
        "train",
        tmp_path,
        {"phase": "base"},
        {"model": str(init), **tokenized, "init_state": []},
        train_out,
        {"settings": settings.model_dump(mode="json")},
    )
    for path in train_out.values():
        assert Path(path).exists(), path
    assert (Path(train_out["model"]) / "trainer_state.json").exists()
