# Per-phase mixtures by token shares (cosine: code/math/text; anneal: pretraining plus SFT data), after
# decontamination: documents sharing long n-grams with an evaluation set are listed once and left out everywhere.

# Two lists, so the pretraining mixtures need not wait for the SFT data: the pretraining sources (what every
# mixture draws from) and the SFT data set (the anneal mixture's SFT part and the SFT phase).
DECONTAMINATION_INPUTS = {
    "pretrain": {
        "code": get_code_shards("kept"),
        "text": ["results/text/stackexchange/kept.parquet", "results/text/docs/kept.parquet"],
        "math": ["results/ingest/math/math.parquet"],
    },
    "sft": {"sft": ["results/sft/dataset.parquet"]},
}


rule decontaminate:
    input:
        unpack(lambda wildcards: DECONTAMINATION_INPUTS[wildcards.group]),
        eval_data=get_decontamination_eval_data,
    output:
        dropped="results/mixture/decontamination/{group}.dropped.parquet",
        stats="results/mixture/decontamination/{group}.stats.json",
    log:
        "logs/mixture/decontaminate_{group}.log",
    benchmark:
        "benchmarks/rules/decontaminate_{group}.tsv"
    wildcard_constraints:
        group="pretrain|sft",
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("decontaminate")
    resources:
        **get_rule_resources("decontaminate"),
    params:
        code=get_code_fingerprint("decontaminate"),
        # The evaluation roots that do not exist are named in the stats, not fatal, like the evaluation rules.
        settings=lambda wildcards: {
            "decontamination": get_settings("mixture.decontamination"),
            "absent_eval_data": get_absent_decontamination_roots(wildcards),
        },
    script:
        "../scripts/decontaminate.py"


rule mixture:
    input:
        unpack(get_mixture_sources),
        contaminated=lambda wildcards: expand(
            "results/mixture/decontamination/{group}.dropped.parquet",
            group=["pretrain", "sft"] if wildcards.phase == "anneal" else ["pretrain"],
        ),
    output:
        docs="results/mixture/{phase}.parquet",
        stats="results/mixture/{phase}.stats.json",
    log:
        "logs/mixture/{phase}.log",
    wildcard_constraints:
        phase="base|cosine|anneal",
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("mixture")
    resources:
        **get_rule_resources("mixture"),
    params:
        code=get_code_fingerprint("mixture"),
        settings=get_settings("seed", "mixture"),
    script:
        "../scripts/mixture.py"


rule mixture_stats:
    input:
        stats=expand("results/mixture/{phase}.stats.json", phase=PRETRAIN_PHASES),
        decontamination=expand("results/mixture/decontamination/{group}.stats.json", group=["pretrain", "sft"]),
    output:
        stats="results/mixture/stats.json",
    log:
        "logs/mixture/stats.log",
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("mixture_stats")
    resources:
        **get_rule_resources("mixture_stats"),
    params:
        code=get_code_fingerprint("mixture_stats"),
        settings=get_settings(),
    script:
        "../scripts/mixture_stats.py"
