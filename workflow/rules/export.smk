# Export: GGUF files that llama.cpp loads, checked against our model, and an Ollama Modelfile.


rule export_gguf:
    input:
        model="results/train/sft/model",
    output:
        gguf=expand("results/export/model-{type}.gguf", type=config["export"]["types"]),
        verify="results/export/verify.json",
    log:
        "logs/export/gguf.log",
    conda:
        "../envs/export.yaml"
    threads: get_rule_threads("export_gguf")
    resources:
        **get_rule_resources("export_gguf"),
    params:
        code=get_code_fingerprint("export_gguf"),
        settings=get_settings("export"),
    script:
        "../scripts/export_gguf.py"


rule export_modelfile:
    input:
        gguf=f"results/export/model-{config['export']['modelfile_from']}.gguf",
    output:
        modelfile="results/export/Modelfile",
    log:
        "logs/export/modelfile.log",
    conda:
        "../envs/export.yaml"
    threads: get_rule_threads("export_modelfile")
    resources:
        **get_rule_resources("export_modelfile"),
    params:
        code=get_code_fingerprint("export_modelfile"),
        settings=get_settings("export"),
    script:
        "../scripts/export_modelfile.py"
