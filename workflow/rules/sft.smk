# SFT data: Natural-Instruct functions from the cleaned code, rewritten Semi-Instruct style and kept only when
# the rewritten code reproduces the original's outputs in the sandbox; NL pairs from sft.nl_path (default: the
# text stage's StackExchange question-answer documents); SemDeDup over code and NL together, then the mix.
# The SFT training itself is the `train` rule with phase=sft.


rule sft_collect:
    input:
        code=from_run(get_code_shards("kept")),
    output:
        natural="results/{exp}sft/natural.parquet",
        stats="results/{exp}sft/natural.stats.json",
    log:
        "logs/{exp}sft/collect.log",
    benchmark:
        "benchmarks/rules/{exp}sft_collect.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("sft_collect")
    resources:
        **get_rule_resources("sft_collect"),
    params:
        code=get_code_fingerprint("sft_collect"),
        # Only the keys collection reads: editing another SFT setting must not re-run the sandbox work after it.
        settings=get_settings("seed", "sft.max_functions"),
    script:
        "../scripts/sft_collect.py"


# An LLM rewriter's server (sft.rewriter.backend openai, base_url null, llm_server.engine set) lives inside this
# job, as the judge's does in text_judge: the equivalent of a Snakemake service job without group jobs.
rule sft_semi_instruct:
    input:
        unpack(get_llm_server_input(config["sft"]["rewriter"])),
        natural=from_run("results/sft/natural.parquet"),
    output:
        kept="results/{exp}sft/semi_instruct.parquet",
        dropped="results/{exp}sft/semi_instruct.dropped.parquet",
        stats="results/{exp}sft/semi_instruct.stats.json",
    log:
        main="logs/{exp}sft/semi_instruct.log",
        server="logs/{exp}sft/semi_instruct.server.log",
    benchmark:
        "benchmarks/rules/{exp}sft_semi_instruct.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("sft_semi_instruct")
    resources:
        **get_rule_resources("sft_semi_instruct"),
    params:
        code=get_code_fingerprint("sft_semi_instruct"),
        # Only the keys Semi-Instruct reads (the sandbox work is the costly part of the SFT data).
        settings=run_settings(
            lambda cfg, wildcards: {
                "seed": cfg["seed"],
                **{key: cfg["sft"][key] for key in ("rewriter", "sandbox", "max_tests_per_function")},
                "llm_server": get_llm_server_params(cfg["sft"]["rewriter"]),
            }
        ),
    script:
        "../scripts/sft_semi_instruct.py"


rule sft_semdedup:
    input:
        code=from_run("results/sft/semi_instruct.parquet"),
        nl=from_run(get_sft_nl_source),
    output:
        code="results/{exp}sft/semdedup/code.parquet",
        nl="results/{exp}sft/semdedup/nl.parquet",
        dropped="results/{exp}sft/semdedup/dropped.parquet",
        stats="results/{exp}sft/semdedup/stats.json",
        plot=report(
            "results/{exp}sft/semdedup/removed_by_eps.png",
            caption="../report/sft_semdedup.rst",
            category="Data",
            subcategory="SFT",
        ),
    log:
        "logs/{exp}sft/semdedup.log",
    benchmark:
        "benchmarks/rules/{exp}sft_semdedup.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("sft_semdedup")
    resources:
        **get_rule_resources("sft_semdedup"),
    params:
        code=get_code_fingerprint("sft_semdedup"),
        settings=get_settings("seed", "sft.semdedup"),
    script:
        "../scripts/sft_semdedup.py"


rule sft_dataset:
    input:
        code=from_run("results/sft/semdedup/code.parquet"),
        nl=from_run("results/sft/semdedup/nl.parquet"),
    output:
        dataset="results/{exp}sft/dataset.parquet",
        stats="results/{exp}sft/stats.json",
    log:
        "logs/{exp}sft/dataset.log",
    benchmark:
        "benchmarks/rules/{exp}sft_dataset.tsv"
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("sft_dataset")
    resources:
        **get_rule_resources("sft_dataset"),
    params:
        code=get_code_fingerprint("sft_dataset"),
        settings=get_settings("seed", "sft"),
    script:
        "../scripts/sft_dataset.py"
