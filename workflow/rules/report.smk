# Provenance: what produced each result, from what, with which code and settings.
#
# RULE_INFO (each script rule's code fingerprint and named parameters) is filled at the end of this file,
# after every rule exists; the provenance rule reads it through its params at run time.
RULE_INFO = {}


rule provenance:
    input:
        outputs=[path for path in get_final_outputs() if not str(path).startswith("results/provenance")],
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
        config=config,
        rules=RULE_INFO,
        snakefile=workflow.main_snakefile,
    script:
        "../scripts/provenance.py"


# Included last, after every rule that produces data: each script rule gets its code fingerprint as a
# parameter, so editing its script or a package module the script imports re-runs that rule (the params
# trigger), while touching a file without changing it does not, with `--rerun-triggers mtime params input
# software-env` (Snakemake's own `code` trigger re-runs a script rule whenever the script's mtime is newer).
for _rule in list(workflow.rules):
    _code = get_code_fingerprints([_rule]).get(_rule.name)
    if _code is not None:
        _params = {k: v for k, v in get_static_params(_rule).items() if v is not RULE_INFO}  # not itself
        RULE_INFO[_rule.name] = {"code": _code, "params": _params}
        _rule.set_params(code_fingerprint=_code["digest"])
