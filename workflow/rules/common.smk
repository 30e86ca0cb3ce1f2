# Helpers only: paths and settings the rules share.
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError


def prepend_search_path(variable, directory):
    """Put ``directory`` first on a search-path variable, keeping what the user had set (optional, so no envvars:)."""
    os.environ[variable] = os.pathsep.join(p for p in (directory, os.environ.get(variable)) if p)


# Rule scripts import abacus_repro: in a per-rule conda environment (--sdm conda) the package is not installed, so
# this checkout's src/ goes on PYTHONPATH for every job (jobs inherit it, SLURM jobs included).
prepend_search_path("PYTHONPATH", str(Path(workflow.basedir).parent / "src"))
# ... and for this process too, where Snakemake itself runs outside the project's environment.
if str(Path(workflow.basedir).parent / "src") not in sys.path:
    sys.path.insert(0, str(Path(workflow.basedir).parent / "src"))
from abacus_repro import scheduling

SHARDS = list(range(config["shards"]["code"]))
# The tiny default builds and briefly pretrains its own base model; the paper-scale run starts from the
# published pre-annealing checkpoint instead, so it has no base phase.
STARTS_FROM_CHECKPOINT = bool(config["model"].get("pretrained"))
PRETRAIN_PHASES = (["cosine", "anneal"] if STARTS_FROM_CHECKPOINT else ["base", "cosine", "anneal"])
TRAIN_PHASES = PRETRAIN_PHASES + ["sft"]
# Real public data for tests and evaluation; the environment variable wins so CI can point anywhere.
SHARED_DATA = os.environ.get("ABACUS_SHARED_DATA", config["shared_data"])


def get_rule_threads(rule_name):
    return scheduling.rule_threads(config["resources"], rule_name)


def get_rule_resources(rule_name):
    """What a rule's jobs ask the scheduler for: config `resources:` (abacus_repro.scheduling)."""
    return scheduling.rule_resources(config["resources"], rule_name)


def check_resource_settings(rules):
    """Refuse, before any job runs, a `resources:` entry that names no rule (or train GPUs outside train.launch)."""
    try:
        scheduling.check_resource_settings(config["resources"], [each.name for each in rules])
    except ValueError as err:
        raise WorkflowError(str(err)) from None


def get_shared_path(template):
    """A config path that may name {shared_data}; None stays None."""
    if template is None:
        return None
    return template.format(shared_data=SHARED_DATA)


def get_code_shards(kind="kept"):
    return expand("results/code/shards/{shard}/{kind}.parquet", shard=SHARDS, kind=kind)


def get_stackexchange_dumps():
    return list(config["text"]["stackexchange"]["dumps"])


def get_docs_sample_files():
    root = config["text"]["docs"]["sample_dir"]
    if not root or not os.path.isdir(root):
        return []
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith((".md", ".rst")):
                found.append(os.path.join(dirpath, name))
    return sorted(found)


def get_phase_model(wildcards):
    """Each training phase starts from the previous phase's model."""
    first = "results/model/init"
    previous = {"base": first, "cosine": first if STARTS_FROM_CHECKPOINT else "results/train/base/model",
                "anneal": "results/train/cosine/model", "sft": "results/train/anneal/model"}
    return previous[wildcards.phase]


def get_eval_data():
    lcb = config["eval"]["livecodebench"]
    paths = lcb["path"]
    return {
        "humaneval": get_shared_path(config["eval"]["humaneval"]["path"]),
        "mbpp": get_shared_path(config["eval"]["mbpp"]["path"]),
        "livecodebench": [get_shared_path(p) for p in ([paths] if isinstance(paths, str) else paths or [])],
        "livecodebench_fewshot": get_shared_path(lcb["fewshot_dir"]),
        "shared_data": SHARED_DATA,
    }


def get_eval_models():
    """{name: model reference} in config order: a directory (ours: results/train/sft/model) or a hub id."""
    return {model["name"]: model["path"] for model in config["eval"]["models"]}


def get_eval_model_input(wildcards):
    """The model as a rule input when it is a directory (made by the workflow or on disk); a hub id is not."""
    ref = get_eval_models()[wildcards.model]
    return {"model": ref} if ref.startswith("results/") or os.path.isdir(ref) else {}


def get_eval_model_ref(wildcards):
    return get_eval_models()[wildcards.model]


def get_final_outputs():
    return [
        "results/code/stats.json",
        "results/text/stats.json",
        "results/mixture/stats.json",
        expand("results/train/{phase}/metrics.jsonl", phase=TRAIN_PHASES),
        "results/eval/summary.json",
        "results/eval/summary.md",
        "results/export/verify.json",
        "results/export/Modelfile",
        "results/provenance/manifest.json",
    ]


def get_mixture_sources(wildcards):
    sources = {
        "code": get_code_shards("kept"),
        "text": ["results/text/stackexchange/kept.parquet", "results/text/docs/kept.parquet"],
        "math": ["results/ingest/math/math.parquet"],
        "tokenizer": "results/model/tokenizer/tokenizer.json",
    }
    if wildcards.phase == "anneal":
        sources["sft"] = ["results/sft/dataset.parquet"]
    return sources


def get_phase_documents(wildcards):
    if wildcards.phase == "sft":
        return "results/sft/dataset.parquet"
    return f"results/mixture/{wildcards.phase}.parquet"


def get_code_fingerprints(rules):
    """Each script rule's code fingerprint (its script plus every package module it imports, by content).

    Snakemake notices an edited script only by its mtime and never notices an edited library module; passing
    the fingerprint as a parameter makes the params trigger re-run a rule exactly when its code changed
    (see workflow/rules/report.smk and README "Partial re-runs"). The package is read from this checkout.
    """
    import sys
    from pathlib import Path

    repo_dir = Path(workflow.basedir).parent
    try:
        from abacus_repro.provenance.code import code_fingerprint
    except ImportError:  # snakemake from an environment without the package (e.g. --sdm conda)
        sys.path.insert(0, str(repo_dir / "src"))
        from abacus_repro.provenance.code import code_fingerprint
    found = {}
    for each in rules:
        if not each.script:
            continue
        basedir = each.basedir
        basedir = basedir.get_path_or_uri(secret_free=True) if hasattr(basedir, "get_path_or_uri") else basedir
        found[each.name] = code_fingerprint(Path(basedir) / each.script, repo_dir / "src", repo_dir)
    return found


def get_static_params(each):
    """A rule's parameters that do not depend on wildcards, by name, as the provenance manifest records them."""
    return {name: value for name, value in each.params.items() if not callable(value)}
