# Code cleaning (recipe steps 1-4), one job per repository shard, then the funnel.


rule code_clean:
    input:
        shard="results/ingest/code/shard-{shard}.parquet",
    output:
        kept="results/code/shards/{shard}/kept.parquet",
        dropped="results/code/shards/{shard}/dropped.parquet",
        stats="results/code/shards/{shard}/stats.json",
    log:
        "logs/code/clean_{shard}.log",
    benchmark:
        "benchmarks/rules/code_clean_{shard}.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("code_clean")
    resources:
        **get_rule_resources("code_clean"),
    params:
        code=get_code_fingerprint("code_clean"),
        settings=get_settings("code"),
    script:
        "../scripts/code_clean.py"


rule code_funnel:
    input:
        stats=expand("results/code/shards/{shard}/stats.json", shard=SHARDS),
    output:
        stats="results/code/stats.json",
        plot=report(
            "results/code/funnel.png",
            caption="../report/code_funnel.rst",
            category="Data",
        ),
    log:
        "logs/code/funnel.log",
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("code_funnel")
    resources:
        **get_rule_resources("code_funnel"),
    params:
        code=get_code_fingerprint("code_funnel"),
        settings=get_settings(),
    script:
        "../scripts/code_funnel.py"
