"""The export rules' entry points (``entry(settings, paths)``, called by abacus_repro.rules.run_rule)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ..rules import RulePaths
from ..settings import ExportSettings, Settings
from .modelfile import write_modelfile
from .tensor_types import LLAMA_QUANTIZED_TYPES
from .verify import verify_exports
from .writer import export_gguf, load_hf_model, write_gguf

log = logging.getLogger(__name__)


def export_all(
    model_dir: str | Path,
    gguf_paths: Sequence[str | Path],
    verify_json: str | Path,
    settings: ExportSettings,
    threads: int,
) -> dict:
    """Write one GGUF per type of ``settings.types`` (paths in the same order), then verify them all against the
    model with export.verify; ``threads``: the job's, for verification.

    Files written by this package come first; llama.cpp's K-quants are then made from the F16 file when it is
    among the outputs (the seed's route: convert to F16, then llama-quantize), otherwise from a temporary one.
    """
    types = list(settings.types)
    if len(gguf_paths) != len(types):
        raise ValueError(f"{len(gguf_paths)} output paths for {len(types)} types")
    model = load_hf_model(model_dir)
    jobs = sorted(zip(types, gguf_paths), key=lambda job: job[0] in LLAMA_QUANTIZED_TYPES)
    f16 = next((path for out_type, path in jobs if out_type == "F16"), None)
    records = {}
    for out_type, path in jobs:
        source = f16 if out_type in LLAMA_QUANTIZED_TYPES else None
        records[str(path)] = export_gguf(model_dir, path, out_type, model=model, source=source)
    # The model is handed over: verification replaces its weights by each file's (one copy in memory).
    return verify_exports(
        list(gguf_paths), model_dir, verify_json, settings.verify, threads, model=model, tensor_records=records
    )


def export_gguf_files(settings: ExportSettings, paths: RulePaths) -> dict:
    """Rule export_gguf: one GGUF per export type, verified against the model with llama.cpp."""
    return export_all(paths.input["model"], paths.output["gguf"], paths.output["verify"], settings, paths.threads)


def export_modelfile(settings: ExportSettings, paths: RulePaths) -> Path:
    """Rule export_modelfile: an Ollama Modelfile for the GGUF of export.modelfile_from."""
    return write_modelfile(paths.input["gguf"], paths.output["modelfile"], settings)


class ServerGgufJob(Settings):
    """What rule llm_server_gguf is given: the served model (llm_server.model) and nothing else of llm_server,
    so that changing the server's port, context or timeouts does not re-export the GGUF."""

    model: str | None


def export_server_gguf(settings: ServerGgufJob, paths: RulePaths) -> Path:
    """Rule llm_server_gguf: the model directory llama_cpp is to serve, exported to GGUF F16."""
    path = write_gguf(paths.input["model"], paths.output["gguf"], "F16")
    log.info("exported %s to %s for the LLM server", paths.input["model"], path)
    return path
