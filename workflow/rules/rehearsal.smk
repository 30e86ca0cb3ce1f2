# Stand-ins for the paper run's raw inputs in their published layouts (abacus_repro.rehearsal), for
# config/rehearsal.yaml: the paper config with only sizes, paths and endpoints changed. These rules run only when
# a config's paths name their outputs; the paper run reads the real dumps at the same places in its own tree.
# The checkpoint in MiniCPM-2B's published layout is rule rehearsal_checkpoint (pretrain.smk).


rule rehearsal_code_dump:
    output:
        dump=directory(REHEARSAL_CODE_DUMP),
    log:
        "logs/rehearsal/code_dump.log",
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("rehearsal_code_dump")
    resources:
        **get_rule_resources("rehearsal_code_dump"),
    params:
        code=get_code_fingerprint("rehearsal_code_dump"),
        settings=get_settings("seed", "code"),
    script:
        "../scripts/rehearsal_code_dump.py"


rule rehearsal_math_corpus:
    output:
        corpus=directory("results/rehearsal/{corpus}"),
    log:
        "logs/rehearsal/{corpus}.log",
    wildcard_constraints:
        corpus="|".join(REHEARSAL_MATH_CORPORA),
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("rehearsal_math_corpus")
    resources:
        **get_rule_resources("rehearsal_math_corpus"),
    params:
        code=get_code_fingerprint("rehearsal_math_corpus"),
        settings=lambda wildcards: {
            "seed": config["seed"],
            "layout": REHEARSAL_MATH_CORPORA[wildcards.corpus],
            "documents": get_rehearsal_corpus_size(wildcards),
        },
    script:
        "../scripts/rehearsal_math_corpus.py"
