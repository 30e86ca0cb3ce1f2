"""`abacus-repro plan` arithmetic and the placeholder copy of a config (abacus_repro.plan, abacus_repro.dryrun).

The sizes are checked against the real things they stand for: the parameter count against a built model, the
bytes per packed token against arrays the tokenizer stage writes, the config copy against the original text.
"""

from __future__ import annotations

import glob
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest

from abacus_repro import dryrun, plan
from abacus_repro.config import load_config, read_config_file
from abacus_repro.errors import InputError

from ..conftest import REPO_ROOT
from .pretrain_fixtures import CODE_SNIPPETS, TEXT_SNIPPETS, build_tokenizer, synthetic_corpus

PAPER_CONFIG = REPO_ROOT / "config" / "abacus-2.7b.yaml"


@pytest.fixture(scope="module")
def paper():
    return load_config(PAPER_CONFIG)


def test_paper_steps_follow_the_batch_arithmetic(paper):
    phases = {p["phase"]: p for p in plan.pretrain_phases(paper)}
    # Continuing the published checkpoint: no base phase, as in the DAG.
    assert list(phases) == ["cosine", "anneal"]
    train = paper["train"]
    world = train["launch"]["nodes"] * train["launch"]["gpus_per_node"]
    per_step = train["micro_batch_size"] * train["grad_accum"] * world * paper["pack"]["seq_len"]
    assert plan.world_size(train) == world == 64
    for name, phase in phases.items():
        tokens = paper["mixture"]["tokens"][name]
        assert phase["tokens"] == tokens and phase["tokens_per_step"] == per_step
        # The trainer's own rule: a partial last step still counts.
        assert phase["steps"] == math.ceil(tokens / paper["pack"]["seq_len"] / (per_step // paper["pack"]["seq_len"]))
    # The figures the config's comment and the issue quote: 95e9 / (4*9*64*4096) ~ 10,066, 7e9 / ... ~ 742.
    assert abs(phases["cosine"]["steps"] - 95e9 / (4 * 9 * 64 * 4096)) < 1
    assert abs(phases["anneal"]["steps"] - 7e9 / (4 * 9 * 64 * 4096)) < 1


def test_sft_estimate_from_max_functions_and_epochs(paper):
    sft = plan.sft_phase(paper, tokens_per_example=500)
    examples = paper["sft"]["max_functions"] * (1 + paper["sft"]["code_nl_ratio"])
    assert sft["examples"] == examples and sft["epochs"] == paper["sft"]["epochs"]
    assert sft["tokens"] == examples * 500 * sft["epochs"]
    per_step = paper["sft"]["micro_batch_size"] * paper["train"]["grad_accum"] * 64 * paper["pack"]["seq_len"]
    assert sft["tokens_per_step"] == per_step
    assert sft["steps"] == sft["epochs"] * math.ceil(
        math.ceil(examples * 500 / paper["pack"]["seq_len"]) / (per_step // paper["pack"]["seq_len"])
    )
    assert sft["steps_per_1k_examples_per_epoch"] == pytest.approx(1000 * 500 / per_step)


def test_cpu_world_is_one_process_per_node():
    assert plan.world_size({"launch": {"nodes": 1, "gpus_per_node": 0}}) == 1
    assert plan.world_size({"launch": {"nodes": 2, "gpus_per_node": 0}}) == 2
    assert plan.world_size({"launch": {"nodes": 2, "gpus_per_node": 4}}) == 8


@pytest.mark.parametrize("kv_heads", [None, 2], ids=["mha", "gqa"])
def test_parameter_count_matches_the_built_model(kv_heads):
    from abacus_repro.model.configuration import MiniCPMConfig
    from abacus_repro.model.modeling import MiniCPMForCausalLM

    model_settings = dict(load_config()["model"])
    if kv_heads:
        model_settings["num_key_value_heads"] = kv_heads
    fields = {k: v for k, v in model_settings.items() if k not in ("pretrained", "init_std")}
    vocab = 1000
    model = MiniCPMForCausalLM(MiniCPMConfig(vocab_size=vocab, tie_word_embeddings=True, **fields))
    # parameters() yields the tied embedding once.
    assert plan.count_parameters(model_settings, vocab) == sum(p.numel() for p in model.parameters())


def test_paper_model_is_the_2_7b_one(paper):
    params = plan.count_parameters(paper["model"], paper["tokenizer"]["vocab_size"])
    assert 2.6e9 < params < 2.8e9, params


def test_packed_bytes_per_token_are_what_the_tokenizer_stage_writes(tmp_path):
    from abacus_repro.tokenization import tokenize_and_pack, write_packed

    tokenizer = build_tokenizer(tmp_path / "tok")
    packed = tokenize_and_pack(synthetic_corpus(20, CODE_SNIPPETS + TEXT_SNIPPETS, "mixed"), tokenizer, 64, sft=False)
    names = ["tokens", "segments", "loss_mask"]
    write_packed(packed, *(tmp_path / f"{n}.npy" for n in names), tmp_path / "meta.json")
    arrays = [np.load(tmp_path / f"{n}.npy", mmap_mode="r") for n in names]
    slots = arrays[0].size
    assert sum(a.nbytes for a in arrays) == slots * plan.PACKED_BYTES_PER_TOKEN


def test_disk_estimate_scales_with_tokens_and_parameters(paper):
    phases = plan.pretrain_phases(paper) + [plan.sft_phase(paper, 400)]
    params = plan.count_parameters(paper["model"], paper["tokenizer"]["vocab_size"])
    disk = plan.disk_estimates(paper, phases, params)
    assert disk["tokenized"]["cosine"] == 95_000_000_000 * plan.PACKED_BYTES_PER_TOKEN
    # DeepSpeed bf16: bf16 weights + fp32 master + 2 fp32 moments.
    assert disk["state_bytes_per_param"] == 14
    keep = paper["train"]["keep_checkpoints"]
    per_phase = disk["train_per_phase"]
    assert per_phase["peak_with_checkpoints"] - per_phase["model_and_final_state"] == keep * 14 * params
    assert set(disk["export_gguf"]) == set(paper["export"]["types"])
    assert disk["export_gguf"]["F16"] == pytest.approx(params * 2, rel=0.01)


def test_training_gpu_hours_follow_the_throughput(paper):
    phases = plan.pretrain_phases(paper)
    plan.training_gpu_hours(phases, gpus=64, tokens_per_gpu_second=10_000)
    cosine = phases[0]
    assert cosine["gpu_hours"] == pytest.approx(95e9 / 10_000 / 3600)
    assert cosine["wall_hours"] == pytest.approx(cosine["gpu_hours"] / 64)


def test_config_copy_moves_only_absolute_paths(tmp_path):
    root = tmp_path / "scratch"
    copy = dryrun.write_placeholder_config(PAPER_CONFIG, root)
    original, rewritten = PAPER_CONFIG.read_text(), copy.read_text()
    # Byte for byte the paper config once the scratch prefix is taken out again.
    assert rewritten != original and rewritten.replace(str(root), "") == original
    paths = dryrun.absolute_paths(read_config_file(PAPER_CONFIG))
    assert paths and all(p.startswith("/") for p in paths)
    assert dryrun.absolute_paths(read_config_file(copy)) == sorted(dryrun.remap_path(p, root) for p in paths)
    # Every named path exists as a placeholder: dumps as files, the checkpoint as a directory, globs matched.
    resolved = load_config(copy)
    for path in dryrun.placeholder_paths(resolved, root):
        text = str(path)
        if any(ch in text for ch in "*?["):
            assert glob.glob(text), text
        else:
            assert path.is_file() if path.suffix else path.is_dir(), path
    assert Path(resolved["model"]["pretrained"]).is_dir()
    assert all(Path(dump).is_file() for dump in resolved["text"]["stackexchange"]["dumps"])


def test_placeholders_stay_inside_the_scratch_root(tmp_path):
    with pytest.raises(InputError, match="outside the scratch root"):
        dryrun.create_placeholder(tmp_path / "elsewhere" / "x.7z", tmp_path / "root")


def test_job_stats_and_job_blocks_parse():
    output = textwrap.dedent("""\
        rule code_clean:
            input: a
            wildcards: shard=0
            resources: tmpdir=/tmp, runtime=240, cpus_per_task=4, mem_mb=8000, mem=8 GB

        rule train:
            wildcards: phase=cosine
            resources: tmpdir=/tmp, runtime=10080, nodes=8, gpus=64, gres=gpu:8, mem_mb=480000
        Job stats:
        job           count
        ----------  -------
        code_clean        1
        train             1
        total             2
        """)
    counts, jobs = dryrun.parse_job_counts(output), dryrun.parse_jobs(output)
    assert counts == {"code_clean": 1, "train": 1}
    dryrun.check_jobs_match_counts(jobs, counts)
    assert jobs[1]["resources"]["gres"] == "gpu:8" and dryrun.job_gpus(jobs[1]["resources"]) == 64
    assert jobs[0]["wildcards"] == "shard=0" and dryrun.job_gpus(jobs[0]["resources"]) == 0
    with pytest.raises(ValueError):
        dryrun.check_jobs_match_counts(jobs[:1], counts)
