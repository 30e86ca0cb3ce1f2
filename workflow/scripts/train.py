"""Rule train: one training phase (base, cosine, anneal, sft) from the previous phase's model.

The job's resources pick the launch: in this process (one node, no GPU), torchrun on one node, or srun plus
torchrun across the nodes of a SLURM allocation (abacus_repro.pretrain.launch).
"""

from abacus_repro.pretrain.trainer import train
from abacus_repro.rules import run_rule

run_rule(snakemake, train)  # noqa: F821  (injected by Snakemake's script directive)
