"""Rule train: one training phase (base, cosine, anneal, sft) from the previous phase's model.

The job's resources pick the launch: in this process (one node, no GPU), torchrun on one node, or srun plus
torchrun across the nodes of a SLURM allocation (abacus_repro.pretrain.launch).
"""

from abacus_repro.logging_setup import setup_logging
from abacus_repro.pretrain.launch import plan_from_resources, run_phase

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])

resources = {
    key: getattr(smk.resources, key) for key in ("nodes", "gres", "gpu", "gpus") if hasattr(smk.resources, key)
}
plan = plan_from_resources(resources, smk.params.train["launch"])
spec = {
    "phase": smk.wildcards.phase,
    "model_dir": str(smk.input.model),
    "data_dir_or_paths": {
        "tokens": str(smk.input.tokens),
        "segments": str(smk.input.segments),
        "loss_mask": str(smk.input.loss_mask),
    },
    "out_dir": str(smk.output.model),
    "metrics_path": str(smk.output.metrics),
    "settings": {"train": dict(smk.params.train), "sft": dict(smk.params.sft)},
    "seed": int(smk.params.seed),
    "loss_plot": str(smk.output.loss),
    "lr_plot": str(smk.output.lr),
    "state_dir": str(smk.output.state),
    # An empty input list when the phase does not continue another phase's optimizer.
    "init_state_dir": str(smk.input.init_state) if getattr(smk.input, "init_state", None) else None,
}
state = run_phase(spec, plan)
log.info("trainer state: %s", state)
