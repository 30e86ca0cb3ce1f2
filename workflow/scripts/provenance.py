"""Rule provenance: the manifest and report for every result of the run."""

from pathlib import Path

from abacus_repro.logging_setup import setup_logging
from abacus_repro.provenance import write_provenance

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])
manifest = write_provenance(
    Path("results"),
    dict(smk.params.config),
    Path.cwd(),
    Path(smk.output.manifest),
    Path(smk.output.report),
    html_path=Path(smk.output.html),
    rules=dict(smk.params.rules),
    repo_dir=Path(smk.scriptdir).parent,
    snakefile=smk.params.snakefile,
)
stale = [o["path"] for o in manifest["outputs"] if o["inputs_changed_since_run"]]
log.info(
    "described %d outputs of %d rules; code %s", len(manifest["outputs"]), len(manifest["rules"]), manifest["code"]
)
if stale:
    log.warning("outputs whose inputs changed after they were made: %s", stale)
