# Raw inputs become document shards: code by repository, StackExchange Q&A, docs, math.


rule ingest_code:
    input:
        dump=get_code_dump,
    output:
        shards=expand("results/{{exp}}ingest/code/shard-{shard}.parquet", shard=SHARDS),
        docs="results/{exp}ingest/docs/from_code.parquet",
        stats="results/{exp}ingest/code/stats.json",
    log:
        "logs/{exp}ingest/code.log",
    benchmark:
        "benchmarks/rules/{exp}ingest_code.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("ingest_code")
    resources:
        **get_rule_resources("ingest_code"),
    params:
        code=get_code_fingerprint("ingest_code"),
        settings=run_settings(
            lambda cfg, wildcards: {
                "seed": cfg["seed"],
                "shards": cfg["shards"],
                "code": {key: cfg["code"][key] for key in INGEST_CODE_KEYS},
            }
        ),
    script:
        "../scripts/ingest_code.py"


rule ingest_stackexchange:
    input:
        dumps=get_stackexchange_dumps,
    output:
        kept="results/{exp}ingest/stackexchange/qa.parquet",
        dropped="results/{exp}ingest/stackexchange/dropped.parquet",
        stats="results/{exp}ingest/stackexchange/stats.json",
    log:
        "logs/{exp}ingest/stackexchange.log",
    benchmark:
        "benchmarks/rules/{exp}ingest_stackexchange.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("ingest_stackexchange")
    resources:
        **get_rule_resources("ingest_stackexchange"),
    params:
        code=get_code_fingerprint("ingest_stackexchange"),
        settings=get_settings("text.stackexchange"),
    script:
        "../scripts/ingest_stackexchange.py"


rule ingest_docs:
    input:
        from_code=from_run("results/ingest/docs/from_code.parquet"),
        samples=get_docs_sample_files,
    output:
        docs="results/{exp}ingest/docs/docs.parquet",
        stats="results/{exp}ingest/docs/stats.json",
    log:
        "logs/{exp}ingest/docs.log",
    benchmark:
        "benchmarks/rules/{exp}ingest_docs.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("ingest_docs")
    resources:
        **get_rule_resources("ingest_docs"),
    params:
        code=get_code_fingerprint("ingest_docs"),
        settings=get_settings("text.docs"),
    script:
        "../scripts/ingest_docs.py"


rule ingest_math:
    input:
        unpack(get_math_corpus_files),
    output:
        docs="results/{exp}ingest/math/math.parquet",
        stats="results/{exp}ingest/math/stats.json",
    log:
        "logs/{exp}ingest/math.log",
    benchmark:
        "benchmarks/rules/{exp}ingest_math.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("ingest_math")
    resources:
        **get_rule_resources("ingest_math"),
    params:
        code=get_code_fingerprint("ingest_math"),
        settings=get_settings("seed", "math"),
    script:
        "../scripts/ingest_math.py"
