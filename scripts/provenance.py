"""Rule provenance: the manifest and report for every result of the run."""

from pathlib import Path

from abacus_repro.logging_setup import setup_logging
from abacus_repro.provenance import write_provenance

log = setup_logging(snakemake.log[0])  # noqa: F821
manifest = write_provenance(
    Path("results"),
    dict(snakemake.params.config),  # noqa: F821
    Path.cwd(),
    Path(snakemake.output.manifest),  # noqa: F821
    Path(snakemake.output.report),  # noqa: F821
    html_path=Path(snakemake.output.html),  # noqa: F821
    rules=dict(snakemake.params.rules),  # noqa: F821
    repo_dir=Path(snakemake.scriptdir).parent,  # noqa: F821
    snakefile=snakemake.params.snakefile,  # noqa: F821
)
stale = [o["path"] for o in manifest["outputs"] if o["inputs_changed_since_run"]]
log.info(
    "described %d outputs of %d rules; code %s", len(manifest["outputs"]), len(manifest["rules"]), manifest["code"]
)
if stale:
    log.warning("outputs whose inputs changed after they were made: %s", stale)
