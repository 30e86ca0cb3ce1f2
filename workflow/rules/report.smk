# Provenance: what produced each result, from what, with which code and settings.
#
# RULE_INFO (each script rule's code fingerprint and named parameters) is filled at the end of this file,
# after every rule exists; the provenance rule reads it through its params at run time.
RULE_INFO = {}


rule provenance:
    input:
        outputs=lambda wildcards: [path for path in get_final_outputs() if not path.startswith("results/provenance")],
    output:
        manifest=report(
            "results/provenance/manifest.json",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
        report="results/provenance/report.md",
        html=report(
            "results/provenance/report.html",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
    log:
        "logs/provenance.log",
    conda:
        "../envs/data.yaml"
    threads: get_rule_threads("provenance")
    resources:
        **get_rule_resources("provenance"),
    params:
        code=get_code_fingerprint("provenance"),
        settings={
            "config": config,
            "rules": RULE_INFO,
            "snakefile": workflow.main_snakefile,
            "repo_dir": str(Path(workflow.basedir).parent),
        },
    script:
        "../scripts/provenance.py"


# Included last, after every rule exists: each script rule's code fingerprint (its files, for the manifest; the
# rule's own `code` parameter, get_code_fingerprint in common.smk, is what re-runs it when its code changes) and
# its named parameters. Only read here: no rule is changed after parsing.
for _rule in list(workflow.rules):
    _code = get_code_fingerprints([_rule]).get(_rule.name)
    if _code is not None:
        # The provenance rule's own params hold RULE_INFO and the whole config: not repeated inside it.
        _params = get_static_params(_rule) if _rule.name != "provenance" else {}
        RULE_INFO[_rule.name] = {"code": _code, "params": _params}
