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
        unpack(from_run(lambda wildcards: DECONTAMINATION_INPUTS[wildcards.group])),
        eval_data=get_decontamination_eval_data,
    output:
        dropped="results/{exp}mixture/decontamination/{group}.dropped.parquet",
        stats="results/{exp}mixture/decontamination/{group}.stats.json",
    log:
        "logs/{exp}mixture/decontaminate_{group}.log",
    benchmark:
        "benchmarks/rules/{exp}decontaminate_{group}.tsv"
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
        settings=run_settings(
            lambda cfg, wildcards: {
                "decontamination": cfg["mixture"]["decontamination"],
                "absent_eval_data": get_absent_decontamination_roots(wildcards),
            }
        ),
    script:
        "../scripts/decontaminate.py"


# Each source's documents, by source name (code, text, math, sft).
SOURCE_DOCUMENTS = {**DECONTAMINATION_INPUTS["pretrain"], **DECONTAMINATION_INPUTS["sft"]}


# The held-out validation documents of each source: ranked by a hash of their id (no seed), so every variant of
# the run is scored on the same ones (abacus_repro.mixture.validation); no mixture and no SFT phase takes them.
# One job per source, so the pretraining mixtures still need not wait for the SFT data.
rule validation_split:
    input:
        docs=lambda wildcards: SOURCE_DOCUMENTS[wildcards.source],
        contaminated=lambda wildcards: "results/mixture/decontamination/{}.dropped.parquet".format(
            "sft" if wildcards.source == "sft" else "pretrain"
        ),
    output:
        docs="results/mixture/validation/{source}.parquet",
        stats="results/mixture/validation/{source}.stats.json",
    log:
        "logs/mixture/validation_{source}.log",
    wildcard_constraints:
        source="|".join(VALIDATION_SOURCES),
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("validation_split")
    resources:
        **get_rule_resources("validation_split"),
    params:
        code=get_code_fingerprint("validation_split"),
        settings=get_settings("mixture.validation"),
    script:
        "../scripts/validation_split.py"


rule mixture:
    input:
        unpack(from_run(get_mixture_sources)),
        contaminated=from_run(
            lambda wildcards: expand(
                "results/mixture/decontamination/{group}.dropped.parquet",
                group=["pretrain", "sft"] if wildcards.phase == "anneal" else ["pretrain"],
            )
        ),
        # The validation split's documents of the sources this phase draws from.
        validation=lambda wildcards: expand(
            "results/mixture/validation/{source}.parquet",
            source=[s for s in VALIDATION_SOURCES if s != "sft" or wildcards.phase == "anneal"],
        ),
    output:
        docs="results/{exp}mixture/{phase}.parquet",
        stats="results/{exp}mixture/{phase}.stats.json",
    log:
        "logs/{exp}mixture/{phase}.log",
    benchmark:
        "benchmarks/rules/{exp}mixture_{phase}.tsv"
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
        stats=from_run(expand("results/mixture/{phase}.stats.json", phase=PRETRAIN_PHASES)),
        decontamination=from_run(
            expand("results/mixture/decontamination/{group}.stats.json", group=["pretrain", "sft"])
        ),
    output:
        stats="results/{exp}mixture/stats.json",
    log:
        "logs/{exp}mixture/stats.log",
    benchmark:
        "benchmarks/rules/{exp}mixture_stats.tsv"
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
