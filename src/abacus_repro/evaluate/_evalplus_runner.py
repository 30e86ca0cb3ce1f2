"""Run evalplus's evaluator in a child process: ``python -m abacus_repro.evaluate._evalplus_runner ARGS.json``.

Why a child process:
- evalplus reads its dataset override (``HUMANEVAL_OVERRIDE_PATH`` / ``MBPP_OVERRIDE_PATH``) from the
  environment once, at import time, so each evaluation needs a fresh interpreter with its own environment.
- It is started with stdin closed (``subprocess.DEVNULL``): evalplus asks on stdin before overwriting an old
  result file, and a question nobody can answer must fail, not wait. The caller also deletes that file first.
- evalplus leaves a non-daemon watchdog thread sleeping for up to 20 s; ``os._exit`` ends the process once the
  results are written instead of waiting for it.
"""

from __future__ import annotations

import json
import os
import sys
import traceback


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as handle:
        args = json.load(handle)
    from evalplus.evaluate import evaluate

    evaluate(
        dataset=args["dataset"],
        samples=args["samples"],
        parallel=args["parallel"],
        i_just_wanna_run=True,
        base_only=args["base_only"],
        min_time_limit=args["min_time_limit"],
        gt_time_limit_factor=args["gt_time_limit_factor"],
    )
    return 0


if __name__ == "__main__":
    try:
        status = main(sys.argv[1:])
    except BaseException:  # noqa: BLE001 - reported to the caller through the exit status and stderr
        traceback.print_exc()
        status = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
