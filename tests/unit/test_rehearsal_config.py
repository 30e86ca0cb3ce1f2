"""config/rehearsal.yaml is the paper config shrunk: the two files differ only in the keys named here, each a
size, a path or an endpoint (and the SFT code share an untrained rewriter cannot fill), so the rehearsal exercises the paper run's own code paths and nothing else."""

from __future__ import annotations

import yaml

from ..conftest import REPO_ROOT

PAPER = REPO_ROOT / "config" / "abacus-2.7b.yaml"
REHEARSAL = REPO_ROOT / "config" / "rehearsal.yaml"

# Every key whose value may differ, by why. A key here that does not differ is an error too (the list stays true).
SIZES = {
    "shards.code",
    "code.max_repos",
    "code.max_files_per_repo",
    "code.ruff_batch_size",
    "code.near_dedup.bucket_jobs",
    "text.judge.sample_size",
    "text.judge.concurrency",
    "text.judge.max_chars",
    "math.corpus.0.max_documents",
    "math.corpus.1.max_documents",
    "tokenizer.vocab_size",
    "model.hidden_size",
    "model.num_hidden_layers",
    "model.num_attention_heads",
    "model.num_key_value_heads",
    "model.intermediate_size",
    "model.max_position_embeddings",
    "model.dim_model_base",
    "mixture.tokens.cosine",
    "mixture.tokens.anneal",
    "pack.seq_len",
    "train.grad_accum",
    "train.threads",
    "train.log_every",
    "train.checkpoint_every",
    "train.launch.nodes",
    "train.launch.gpus_per_node",
    "train.launch.cpu_procs_per_node",
    "train.schedule.warmup_steps",
    "train.schedule.cosine_horizon",
    "sft.rewriter.concurrency",
    "sft.rewriter.max_tokens",
    "sft.max_functions",
    "sft.max_tests_per_function",
    "llm_server.n_ctx",
    "llm_server.startup_timeout_s",
    "eval.max_new_tokens",
    "eval.humaneval.limit",
    "eval.mbpp.limit",
    "eval.infill.max_problems",
    "eval.infill.max_spans_per_problem",
    "eval.infill.max_spans",
    "eval.infill.max_new_tokens",
    "eval.livecodebench.max_new_tokens",
    "eval.general.limit",
    "eval.general.max_gen_toks",
}
PATHS = {
    "shared_data",
    "code.path",
    "text.stackexchange.dumps",
    "math.corpus.0.path",
    "math.corpus.1.path",
    "model.pretrained",
    "eval.humaneval.path",
    "eval.mbpp.path",
    "eval.livecodebench.path",
    "eval.livecodebench.fewshot_dir",
    *(
        f"eval.general.data.{task}"
        for task in ("arc_easy", "hellaswag", "mmlu", "ceval", "cmmlu", "bbh", "gsm8k", "gsm8k_fewshot")
    ),
}
# The judge/rewriter server: vLLM with tensor parallelism on GPUs there, llama-cpp-python on the CPU here; and the
# devices the embedding models run on (the GPU the paper's resources give them, the CPU here).
ENDPOINTS = {
    "llm_server.engine",
    "llm_server.model",
    "llm_server.extra_args",
    "text.classifier.device",
    "sft.semdedup.device",
}
# What an untrained judge/rewriter cannot give: no rewrite passes its tests, so the SFT data has no code pairs and
# the anneal phase's SFT part is all NL pairs (the stats of sft_semi_instruct and mixture say so).
UNTRAINED_MODEL = {"mixture.sft_shares.code", "mixture.sft_shares.nl"}
# Per-rule memory, time, CPUs and GPUs: sizes, all of them.
SECTIONS_OF_SIZES = ("resources.",)


def flatten(tree, prefix=""):
    if isinstance(tree, dict) and tree:
        items = tree.items()
    elif isinstance(tree, list) and tree and all(isinstance(x, dict) for x in tree):
        items = enumerate(tree)
    else:
        return {prefix: tree}
    flat = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def differing_keys() -> set[str]:
    paper = flatten(yaml.safe_load(PAPER.read_text(encoding="utf-8")))
    rehearsal = flatten(yaml.safe_load(REHEARSAL.read_text(encoding="utf-8")))
    return {key for key in set(paper) | set(rehearsal) if paper.get(key, "<absent>") != rehearsal.get(key, "<absent>")}


def test_the_rehearsal_differs_from_the_paper_run_only_in_sizes_paths_and_endpoints():
    named = SIZES | PATHS | ENDPOINTS | UNTRAINED_MODEL
    unexplained = {key for key in differing_keys() - named if not key.startswith(SECTIONS_OF_SIZES)}
    assert unexplained == set(), "keys that differ for no named reason"


def test_every_named_difference_is_real():
    assert (SIZES | PATHS | ENDPOINTS | UNTRAINED_MODEL) - differing_keys() == set()


def test_the_rehearsal_keeps_what_makes_it_the_paper_path():
    rehearsal = yaml.safe_load(REHEARSAL.read_text(encoding="utf-8"))
    assert rehearsal["model"]["pretrained"] and rehearsal["code"]["source"] == "stack_dump"
    assert rehearsal["math"]["source"] == "corpus"
    assert rehearsal["text"]["judge"]["backend"] == rehearsal["sft"]["rewriter"]["backend"] == "openai"
    assert rehearsal["train"]["deepspeed"] == "config/deepspeed/zero2.json"
    assert rehearsal["train"]["launch"]["cpu_procs_per_node"] == 2
