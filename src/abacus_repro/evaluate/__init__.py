"""Evaluation of a model: the seed's code-generation and general-ability tables, for any model.

- ``benchmark``: the contract every benchmark fills in (prepare, prompts, score) and the one run of a code
  benchmark through a model (``evaluate_with_model``).
- ``generation``: load a model (directory or hub id) and decode greedily in batches (chat or base prompts); the
  shared generation settings (``GenerationSettings``).
- ``humaneval``: HumanEval(+) and MBPP(+) samples from the model, scored by the real evalplus evaluator
  (``mbpp`` turns Google's sanitized-mbpp.json into evalplus problems when MBPP+'s file is not at hand).
- ``infill``: HumanEval infilling (fill-in-the-middle of single lines and multi-line blocks of the canonical
  solutions, PSM prompts with the tokenizer's FIM tokens), scored by HumanEval's own tests through ``humaneval``.
- ``livecodebench``: LiveCodeBench problems from the official release files, in a contest-date window, graded
  in the project's sandbox (``_lcb_check`` is the harness that runs inside it).
- ``general``: MMLU, HellaSwag, ARC-e, BBH, C-Eval, CMMLU and GSM8K through the real lm-eval harness on local
  files in the benchmarks' original layouts (task definitions in ``tasks/``, document shaping in ``lm_eval_docs``).
- ``summary``: every model's scores next to the published Abacus tables (``published.json``), and a plot.
"""
