"""Rule mixture_stats: every phase's configured vs achieved shares in results/mixture/stats.json."""

from abacus_repro.io import read_json, write_json
from abacus_repro.logging_setup import setup_logging
from abacus_repro.mixture import collect_phase_stats

smk = snakemake  # noqa: F821  (injected by Snakemake's script directive)
log = setup_logging(smk.log[0])

stats = collect_phase_stats([read_json(path) for path in smk.input.stats])
# What decontamination removed, per source group; the lists are results/mixture/decontamination/*.dropped.parquet.
stats["decontamination"] = {}
for path in smk.input.decontamination:
    group = read_json(path)
    name = "sft" if "sft" in group["sources"] else "pretrain"
    keys = ("enabled", "ngram", "min_matches", "read", "kept", "dropped", "by_benchmark", "missing_eval_roots")
    stats["decontamination"][name] = {key: group[key] for key in keys}
write_json(smk.output.stats, stats)
for phase, entry in stats["phases"].items():
    log.info("%s: %d tokens, max share error %.4f", phase, entry["tokens"], entry["max_share_error"])
