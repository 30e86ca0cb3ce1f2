"""What each workflow rule is, for the audit: its stage, and whether its outputs are byte-reproducible.

A rule is *deterministic* when the same inputs, parameters, code and package versions give byte-identical
outputs; ``abacus-repro audit --rerun`` re-executes those of the data stage and compares bytes. The other
rules name the output and the reason bytes may differ between two runs, so the audit can say "expected"
instead of "tampered" when one of them drifts after a re-run. The lists were established by running the
workflow twice and comparing every output's sha256 (tests/integration/test_reruns.py keeps them honest
for the data stage).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatch

DATA, MODEL, TRAIN, EVAL, EXPORT, REPORT = "data", "model", "train", "eval", "export", "report"
RUN_PREFIX = re.compile(r"^results/experiments/[^/]+/(?:seed-\d+/)?")


@dataclass(frozen=True)
class RuleKind:
    stage: str
    # output glob (relative to the run directory) -> why its bytes may differ between identical runs
    nondeterministic: dict[str, str] = field(default_factory=dict)

    def why_nondeterministic(self, path: str) -> str | None:
        # A variant's run (results/experiments/<variant>[/seed-<s>]/...) has the main run's layout below its prefix.
        path = RUN_PREFIX.sub("results/", path)
        for pattern, reason in self.nondeterministic.items():
            if fnmatch(path, pattern):
                return reason
        return None


WALL_CLOCK = "records wall-clock time"
EVAL_WORK = "a work file of the evaluation tool (caches, timing-dependent execution records)"

RULES: dict[str, RuleKind] = {
    "ingest_code": RuleKind(DATA),
    "ingest_stackexchange": RuleKind(DATA),
    "ingest_docs": RuleKind(DATA),
    "ingest_math": RuleKind(DATA),
    "code_clean": RuleKind(DATA),
    "code_minhash": RuleKind(DATA),
    "code_lsh": RuleKind(DATA),
    "code_near_clusters": RuleKind(DATA),
    "code_finish": RuleKind(DATA),
    "code_funnel": RuleKind(DATA),
    "text_judge": RuleKind(DATA),
    # The judge's and the rewriter's model as GGUF F16 for llama_cpp (llm_server): the exporter's bytes.
    "llm_server_gguf": RuleKind(EXPORT),
    # Stand-ins for the paper run's raw inputs (config/rehearsal.yaml), deterministic like any data rule.
    "rehearsal_code_dump": RuleKind(DATA),
    "rehearsal_math_corpus": RuleKind(DATA),
    "rehearsal_checkpoint": RuleKind(DATA),
    "text_classifier_train": RuleKind(DATA),
    "text_classifier_apply": RuleKind(DATA),
    "docs_filter": RuleKind(DATA),
    "text_stats": RuleKind(DATA),
    "sft_collect": RuleKind(DATA),
    "sft_semi_instruct": RuleKind(
        DATA,
        {
            # Candidates whose two executions disagree are dropped, and the detail quotes both outputs; for code that
            # makes random ids (uuid4) those differ in every run. The kept data is reproducible.
            "results/sft/semi_instruct.dropped.parquet": "quotes the differing outputs of non-deterministic candidate "
            "functions (random ids) in the detail of dropped records",
        },
    ),
    "sft_semdedup": RuleKind(DATA),
    "sft_dataset": RuleKind(DATA),
    "decontaminate": RuleKind(DATA),
    "validation_split": RuleKind(DATA),
    "mixture": RuleKind(DATA),
    "mixture_stats": RuleKind(DATA),
    "train_tokenizer": RuleKind(DATA),
    "tokenize": RuleKind(DATA),
    "tokenize_validation": RuleKind(DATA),
    "init_model": RuleKind(MODEL),
    "train": RuleKind(
        TRAIN,
        {
            "results/train/*/metrics.jsonl": f"{WALL_CLOCK} per logged step (seconds, steps per second)",
            # The weights in it (and in model/) are reproducible; the bookkeeping next to them is not.
            "results/train/*/state": "progress.json records wall-clock seconds per step, and random_states_0.pkl "
            "holds Python's global random state, which other libraries draw from",
        },
    ),
    # Evaluation tools leave work files (caches, execution records, task copies) next to their results.
    "eval_code": RuleKind(EVAL, {"results/eval/*/work/*": EVAL_WORK}),
    "eval_infill": RuleKind(EVAL, {"results/eval/*/work/*": EVAL_WORK}),
    "eval_livecodebench": RuleKind(EVAL, {"results/eval/*/work/*": EVAL_WORK}),
    "eval_general": RuleKind(EVAL, {"results/eval/*/work/*": EVAL_WORK}),
    "eval_summary": RuleKind(EVAL),
    # The comparison of the variants' runs quotes their cost, read from Snakemake's benchmark files (timings).
    "experiments_compare": RuleKind(
        EVAL,
        {
            "results/experiments/comparison.md": "quotes each variant's cost (wall and CPU seconds of its jobs)",
            "results/experiments/comparison.json": "quotes each variant's cost (wall and CPU seconds of its jobs)",
        },
    ),
    "export_gguf": RuleKind(EXPORT),
    "export_modelfile": RuleKind(EXPORT),
    "provenance": RuleKind(
        REPORT,
        {
            "results/provenance/*": "records when it was written and the run's start and end times",
        },
    ),
}

UNKNOWN = RuleKind("unknown")


def kind_of(rule: str | None) -> RuleKind:
    """A rule this table does not know is assumed deterministic: an unexplained drift is then reported."""
    return RULES.get(rule or "", UNKNOWN)


def nondeterminism_reason(rule: str | None, path: str) -> str | None:
    return kind_of(rule).why_nondeterministic(path)


def is_data_rule(rule: str | None) -> bool:
    return kind_of(rule).stage == DATA
