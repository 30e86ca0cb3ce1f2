"""Variants of the recipe side by side (config ``experiments:``): each variant is a set of overrides of the ordinary
config keys, trained once per seed in ``experiments.seeds``. ``runs`` resolves them (kept light: the config code
imports it); abacus_repro.pretrain.experiments compares them."""
