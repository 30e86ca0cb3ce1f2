# Tokenizer and tiny base model (the full config loads MiniCPM-2B instead), then the training phases:
# base (brief pretraining of the tiny model), cosine, anneal, and SFT: one train rule runs every phase with the same
# trainer (abacus_repro.pretrain.trainer; the SFT phase's batch, epochs and schedule: abacus_repro.sft.train).

# Training resources come from train.launch: one node and no GPU runs in the job's own process (the tiny
# default); GPUs per node start torchrun; several nodes start one torchrun per node with srun inside the SLURM
# allocation (abacus_repro.pretrain.launch). The SLURM executor reads nodes, gres, tasks, tasks_per_gpu and mpi
# (mpi: the job's script runs on the first node and starts the srun step itself).
TRAIN_LAUNCH = config["train"]["launch"]
TRAIN_NODES = int(TRAIN_LAUNCH["nodes"])
TRAIN_GPUS_PER_NODE = int(TRAIN_LAUNCH["gpus_per_node"])
TRAIN_RESOURCES = {
    **get_rule_resources("train"),
    "nodes": TRAIN_NODES,
    "gpus": TRAIN_NODES * TRAIN_GPUS_PER_NODE,
    "gres": f"gpu:{TRAIN_GPUS_PER_NODE}" if TRAIN_GPUS_PER_NODE else "",
    **({"mpi": "srun", "tasks": TRAIN_NODES, "tasks_per_gpu": 0} if TRAIN_NODES > 1 else {}),
}


rule train_tokenizer:
    input:
        # With model.pretrained: the checkpoint's tokenizer files only (the job waits on no cleaning);
        # otherwise the code, text, math and SFT documents it is trained on.
        unpack(get_tokenizer_inputs),
    output:
        tokenizer="results/model/tokenizer/tokenizer.json",
        config="results/model/tokenizer/tokenizer_config.json",
    log:
        "logs/model/tokenizer.log",
    conda:
        "../envs/train.yaml"
    threads: get_rule_threads("train_tokenizer")
    resources:
        **get_rule_resources("train_tokenizer"),
    params:
        code=get_code_fingerprint("train_tokenizer"),
        # A run that starts from a published checkpoint (model.pretrained) keeps that checkpoint's tokenizer.
        settings=get_settings("seed", "tokenizer", "model.pretrained"),
    script:
        "../scripts/train_tokenizer.py"


rule init_model:
    input:
        unpack(get_init_model_inputs),
    output:
        model=directory("results/{exp}model/init"),
    log:
        "logs/{exp}model/init.log",
    benchmark:
        "benchmarks/rules/{exp}init_model.tsv"
    conda:
        "../envs/train.yaml"
    threads: get_rule_threads("init_model")
    resources:
        **get_rule_resources("init_model"),
    params:
        code=get_code_fingerprint("init_model"),
        # The training seed (train.seed, else the run's): experiments.seeds vary the tiny model's initialisation.
        # A published checkpoint is copied whatever the seed, so it keeps the run's own and is shared by every seed.
        settings=run_settings(
            lambda cfg, wildcards: {
                "seed": cfg["seed"] if STARTS_FROM_CHECKPOINT else training_seed(cfg),
                "model": cfg["model"],
            }
        ),
    script:
        "../scripts/init_model.py"


# A checkpoint laid out exactly like the published MiniCPM-2B one (config.json keys, bf16 safetensors names,
# SentencePiece tokenizer.model and its Llama tokenizer files) at the model section's tiny size: the rehearsal's
# model.pretrained names this directory, so the paper run's loading code runs on it. Reached only then.
rule rehearsal_checkpoint:
    input:
        # The repository's own sample documents (with the standard library's sources: the tokenizer's text),
        # found from the workflow, whatever the working directory.
        samples=str(Path(workflow.basedir).parent / "data" / "samples"),
    output:
        checkpoint=directory("results/rehearsal/MiniCPM-2B-layout"),
    log:
        "logs/rehearsal/checkpoint.log",
    conda:
        "../envs/train.yaml"
    threads: get_rule_threads("rehearsal_checkpoint")
    resources:
        **get_rule_resources("rehearsal_checkpoint"),
    params:
        code=get_code_fingerprint("rehearsal_checkpoint"),
        # tokenizer.vocab_size: the SentencePiece vocabulary trained here; with model.pretrained it documents the
        # checkpoint's vocabulary (and the tokenizer rule checks it).
        settings=get_settings("seed", "model", "tokenizer.vocab_size"),
    script:
        "../scripts/rehearsal_checkpoint.py"


rule train:
    input:
        # The held-out validation rows of each source the phase scores, by source directory.
        **{f"validation_{name}": get_phase_validation(name) for name in ("tokens", "segments", "loss_mask")},
        model=from_run(get_phase_model),
        tokens=from_run("results/tokenized/{phase}/tokens.npy"),
        segments=from_run("results/tokenized/{phase}/segments.npy"),
        loss_mask=from_run("results/tokenized/{phase}/loss_mask.npy"),
        # The anneal phase continues the cosine phase's optimizer (AdamW moments and step counts), not only its
        # weights, unless train.continue_optimizer is false.
        init_state=from_run(get_phase_init_state),
    output:
        model=directory("results/{exp}train/{phase}/model"),
        # The final training state (weights, optimizer, RNG): what the next phase continues from. Checkpoints
        # taken during the phase go to results/train/{phase}/checkpoints/ (not an output, so a failed job keeps
        # them and its rerun resumes); they are removed when the phase completes.
        state=directory("results/{exp}train/{phase}/state"),
        metrics="results/{exp}train/{phase}/metrics.jsonl",
        loss=report(
            "results/{exp}train/{phase}/loss.png",
            caption="../report/loss.rst",
            category="Training",
            subcategory="{phase}",
        ),
        lr=report(
            "results/{exp}train/{phase}/lr.png",
            caption="../report/lr.rst",
            category="Training",
            subcategory="{phase}",
        ),
    log:
        "logs/{exp}train/{phase}.log",
    benchmark:
        "benchmarks/rules/{exp}train_{phase}.tsv"
    wildcard_constraints:
        phase="base|cosine|anneal|sft",
    conda:
        "../envs/train.yaml"
    threads: get_rule_threads("train")
    resources:
        **TRAIN_RESOURCES,
    params:
        code=get_code_fingerprint("train"),
        # The training seed (train.seed, else the run's) orders the rows; the data keep the run's seed.
        settings=run_settings(
            lambda cfg, wildcards: {"seed": training_seed(cfg), "train": cfg["train"], "sft": cfg["sft"]}
        ),
    script:
        "../scripts/train.py"
