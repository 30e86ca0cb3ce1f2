# Tokenization and packing into fixed-length rows that keep document boundaries (for the block attention mask).


rule tokenize:
    input:
        docs=from_run(get_phase_documents),
        tokenizer="results/model/tokenizer/tokenizer.json",
        # The SFT phase reads the SFT data set directly; the mixtures left contaminated documents out already.
        contaminated=from_run(
            lambda wildcards: (
                ["results/mixture/decontamination/sft.dropped.parquet"] if wildcards.phase == "sft" else []
            )
        ),
        # Likewise the SFT part of the validation split (the mixtures left theirs out already).
        held_out=lambda wildcards: (["results/mixture/validation/sft.parquet"] if wildcards.phase == "sft" else []),
    output:
        tokens="results/{exp}tokenized/{phase}/tokens.npy",
        segments="results/{exp}tokenized/{phase}/segments.npy",
        loss_mask="results/{exp}tokenized/{phase}/loss_mask.npy",
        meta="results/{exp}tokenized/{phase}/meta.json",
    log:
        "logs/{exp}tokenize/{phase}.log",
    benchmark:
        "benchmarks/rules/{exp}tokenize_{phase}.tsv"
    wildcard_constraints:
        phase="base|cosine|anneal|sft",
    conda:
        "../envs/train.yaml"
    threads: get_rule_threads("tokenize")
    resources:
        **get_rule_resources("tokenize"),
    params:
        code=get_code_fingerprint("tokenize"),
        settings=get_settings("seed", "pack"),
    script:
        "../scripts/tokenize.py"


# The validation split of each source, tokenized once for every phase and variant: one row per document (its
# first pack.seq_len tokens), no FIM; SFT pairs score their responses.
rule tokenize_validation:
    input:
        docs="results/mixture/validation/{source}.parquet",
        tokenizer="results/model/tokenizer/tokenizer.json",
    output:
        tokens="results/tokenized/validation/{source}/tokens.npy",
        segments="results/tokenized/validation/{source}/segments.npy",
        loss_mask="results/tokenized/validation/{source}/loss_mask.npy",
        meta="results/tokenized/validation/{source}/meta.json",
    log:
        "logs/tokenize/validation_{source}.log",
    wildcard_constraints:
        source="|".join(VALIDATION_SOURCES),
    conda:
        "../envs/train.yaml"
    threads: get_rule_threads("tokenize_validation")
    resources:
        **get_rule_resources("tokenize_validation"),
    params:
        code=get_code_fingerprint("tokenize_validation"),
        settings=get_settings("pack"),
    script:
        "../scripts/tokenize_validation.py"
