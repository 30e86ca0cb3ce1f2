# Tokenization and packing into fixed-length rows that keep document boundaries (for the block attention mask).


rule tokenize:
    input:
        docs=get_phase_documents,
        tokenizer="results/model/tokenizer/tokenizer.json",
        # The SFT phase reads the SFT data set directly; the mixtures left contaminated documents out already.
        contaminated=lambda wildcards: (
            ["results/mixture/decontamination/sft.dropped.parquet"] if wildcards.phase == "sft" else []
        ),
    output:
        tokens="results/tokenized/{phase}/tokens.npy",
        segments="results/tokenized/{phase}/segments.npy",
        loss_mask="results/tokenized/{phase}/loss_mask.npy",
        meta="results/tokenized/{phase}/meta.json",
    log:
        "logs/tokenize/{phase}.log",
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
