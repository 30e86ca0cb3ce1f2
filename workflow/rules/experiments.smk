# Variants of the recipe side by side (config `experiments:`): each run's jobs are the rules above with the run's
# {exp} prefix (common.smk), sharing the main run's jobs where nothing differs; here their comparison.


rule experiments_compare:
    input:
        get_comparison_inputs,
    output:
        table=report(
            "results/experiments/comparison.md",
            caption="../report/experiments.rst",
            category="Experiments",
        ),
        json="results/experiments/comparison.json",
        curves=report(
            "results/experiments/validation_loss.png",
            caption="../report/experiments.rst",
            category="Experiments",
        ),
    log:
        "logs/experiments/compare.log",
    conda:
        "../envs/train.yaml"
    threads: get_rule_threads("experiments_compare")
    resources:
        **get_rule_resources("experiments_compare"),
    params:
        code=get_code_fingerprint("experiments_compare"),
        settings=run_settings(get_comparison_settings),
    script:
        "../scripts/experiments_compare.py"
