# Text data: an LLM judge labels a seeded sample of StackExchange Q&A, a classifier trained on the labels filters
# the whole dump; technical docs are kept by language and Python code blocks.


# The judge's server (text.judge.backend openai with base_url null, llm_server.engine set) lives inside this job:
# started when it begins, stopped when it ends, even on error. That is what a Snakemake service job would give,
# without the group jobs the SLURM executor runs poorly; on SLURM the server uses this job's GPUs and node.
rule text_judge:
    input:
        unpack(get_llm_server_input(config["text"]["judge"])),
        qa=from_run("results/ingest/stackexchange/qa.parquet"),
    output:
        labels="results/{exp}text/judge/labels.parquet",
        stats="results/{exp}text/judge/stats.json",
    log:
        main="logs/{exp}text/judge.log",
        server="logs/{exp}text/judge.server.log",
    benchmark:
        "benchmarks/rules/{exp}text_judge.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("text_judge")
    resources:
        **get_rule_resources("text_judge"),
    params:
        code=get_code_fingerprint("text_judge"),
        # llm_server only when this job serves the judge's model: editing it re-runs no other judge.
        settings=run_settings(
            lambda cfg, wildcards: {
                "seed": cfg["seed"],
                "judge": cfg["text"]["judge"],
                "llm_server": get_llm_server_params(cfg["text"]["judge"]),
            }
        ),
    script:
        "../scripts/text_judge.py"


# llama_cpp serves GGUF files: a model directory in llm_server.model (e.g. one the workflow made) is exported
# to F16 first, by the exporter of rule export_gguf.
rule llm_server_gguf:
    input:
        model=get_llm_server_source,
    output:
        gguf=LLM_SERVER_GGUF,
    log:
        "logs/llm_server/gguf.log",
    conda:
        "../envs/export.yaml"
    threads: get_rule_threads("llm_server_gguf")
    resources:
        **get_rule_resources("llm_server_gguf"),
    params:
        code=get_code_fingerprint("llm_server_gguf"),
        # llm_server.model alone: the server's other settings do not change the file (no re-export on them).
        settings=run_settings(lambda cfg, wildcards: {"model": cfg["llm_server"]["model"]}),
    script:
        "../scripts/llm_server_gguf.py"


rule text_classifier_train:
    input:
        labels=from_run("results/text/judge/labels.parquet"),
    output:
        classifier="results/{exp}text/classifier/classifier.json",
        metrics="results/{exp}text/classifier/metrics.json",
    log:
        "logs/{exp}text/classifier_train.log",
    benchmark:
        "benchmarks/rules/{exp}text_classifier_train.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("text_classifier_train")
    resources:
        **get_rule_resources("text_classifier_train"),
    params:
        code=get_code_fingerprint("text_classifier_train"),
        settings=get_settings("seed", "text.judge", "text.classifier"),
    script:
        "../scripts/text_classifier_train.py"


# With text.classifier.enabled false the job has no classifier input and keeps every thread (the quality filter
# off); nothing then needs text_judge or text_classifier_train, which do not run.
rule text_classifier_apply:
    input:
        unpack(from_run(get_quality_filter_input)),
        qa=from_run("results/ingest/stackexchange/qa.parquet"),
    output:
        kept="results/{exp}text/stackexchange/kept.parquet",
        dropped="results/{exp}text/stackexchange/dropped.parquet",
        stats="results/{exp}text/stackexchange/stats.json",
    log:
        "logs/{exp}text/classifier_apply.log",
    benchmark:
        "benchmarks/rules/{exp}text_classifier_apply.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("text_classifier_apply")
    resources:
        **get_rule_resources("text_classifier_apply"),
    params:
        code=get_code_fingerprint("text_classifier_apply"),
        settings=get_settings("text.classifier"),
    script:
        "../scripts/text_classifier_apply.py"


rule docs_filter:
    input:
        docs=from_run("results/ingest/docs/docs.parquet"),
    output:
        kept="results/{exp}text/docs/kept.parquet",
        dropped="results/{exp}text/docs/dropped.parquet",
        stats="results/{exp}text/docs/stats.json",
    log:
        "logs/{exp}text/docs_filter.log",
    benchmark:
        "benchmarks/rules/{exp}docs_filter.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("docs_filter")
    resources:
        **get_rule_resources("docs_filter"),
    params:
        code=get_code_fingerprint("docs_filter"),
        settings=get_settings("text.docs"),
    script:
        "../scripts/docs_filter.py"


rule text_stats:
    input:
        unpack(from_run(get_text_stats_inputs)),
    output:
        stats="results/{exp}text/stats.json",
    log:
        "logs/{exp}text/stats.log",
    benchmark:
        "benchmarks/rules/{exp}text_stats.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("text_stats")
    resources:
        **get_rule_resources("text_stats"),
    params:
        code=get_code_fingerprint("text_stats"),
        settings=get_settings(),
    script:
        "../scripts/text_stats.py"
