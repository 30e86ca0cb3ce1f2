"""Google's sanitized MBPP (``sanitized-mbpp.json``) in evalplus's problem layout, for the base tests.

MBPP+ (evalplus's ``MbppPlus.jsonl.gz``) is the file to score MBPP(sanitized) and MBPP+ with: its ``base_input``
are the original MBPP tests, its ``plus_input`` the added ones. Where only Google's file is at hand, this module
turns each of its tasks into an evalplus problem so the very same evaluator scores the base tests:

- ``prompt``: evalplus's MBPP+ prompt shape, a docstring with the task text and its first test;
- ``entry_point``: the function the first test calls (one the reference code defines);
- ``base_input``: the arguments of every test's call, read with ``ast.literal_eval``;
- ``canonical_solution``: the reference code (after the test's own imports, which some references need);
- ``plus_input``: empty. There are no MBPP+ tests in this file, and results say so (``plus_tests: 0``).

evalplus stores inputs as JSON (tuples become lists) and turns them back into tuples by task id
(``mbpp_deserialize_inputs``). A task is kept only when every input comes back exactly as the test wrote it;
otherwise the reference would be called on other values than the test's. Tasks that are dropped are listed
with the reason, never lost silently.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

from ..errors import InputError

GOOGLE_FIELDS = ("task_id", "prompt", "code", "test_list")


def is_google_layout(path: str | Path) -> bool:
    """Google's file is one JSON array (``.json``); evalplus's are JSON lines (``.jsonl``/``.jsonl.gz``)."""
    name = Path(path).name.lower()
    return name.endswith(".json") and not name.endswith(".jsonl")


def _same_value(left, right) -> bool:
    """Equal with the same types all the way down (``(1, 2)`` is not ``[1, 2]``, ``1`` is not ``1.0``)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, (list, tuple)):
        return len(left) == len(right) and all(_same_value(a, b) for a, b in zip(left, right))
    if isinstance(left, dict):
        return list(left) == list(right) and all(_same_value(left[k], right[k]) for k in left)
    if isinstance(left, float) and math.isnan(left):
        return math.isnan(right)
    return left == right


def _defined_functions(code: str) -> list[str]:
    tree = ast.parse(code)
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _calls_to(test: str, names: set[str]) -> list[ast.Call]:
    tree = ast.parse(test)
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names
    ]


def _entry_point(task: dict) -> str:
    defined = set(_defined_functions(task["code"]))
    for call in _calls_to(task["test_list"][0], defined):
        return call.func.id
    raise ValueError("its first test calls no function that its code defines")


def _call_arguments(test: str, entry_point: str) -> list:
    calls = _calls_to(test, {entry_point})
    if len(calls) != 1:
        raise ValueError(f"the test calls {entry_point} {len(calls)} times: {test!r}")
    call = calls[0]
    if call.keywords:
        raise ValueError(f"keyword arguments are not an evalplus input: {test!r}")
    try:
        return [ast.literal_eval(argument) for argument in call.args]
    except (ValueError, SyntaxError, TypeError) as err:
        raise ValueError(f"an argument is not a Python literal: {test!r}") from err


def survives_evalplus_json(task_id: str, inputs: list) -> bool:
    """Whether evalplus, after its JSON round trip and its per-task deserialisation, calls with ``inputs``."""
    from evalplus.data.mbpp import mbpp_deserialize_inputs

    try:
        stored = json.loads(json.dumps(inputs))
    except (TypeError, ValueError):
        return False
    return _same_value(mbpp_deserialize_inputs(task_id, stored), inputs)


def google_task_to_evalplus(task: dict) -> dict:
    """One evalplus problem from one task of sanitized-mbpp.json; ValueError says why it cannot be one."""
    task_id = f"Mbpp/{task['task_id']}"
    if not task["test_list"]:
        raise ValueError("no tests")
    entry_point = _entry_point(task)
    inputs = [_call_arguments(test, entry_point) for test in task["test_list"]]
    if not survives_evalplus_json(task_id, inputs):
        raise ValueError("its inputs do not survive evalplus's JSON layout unchanged (tuples, sets, complex...)")
    imports = "".join(f"{line}\n" for line in task.get("test_imports") or [])
    return {
        "task_id": task_id,
        "prompt": f'"""\n{task["prompt"].strip()}\n{task["test_list"][0].strip()}\n"""\n',
        "entry_point": entry_point,
        "canonical_solution": "\n" + imports + task["code"].rstrip() + "\n",
        "base_input": inputs,
        "plus_input": [],
        "atol": 0,
        "contract": "",  # MBPP+ states input contracts; the original tasks have none
        "assertion": "\n" + "\n".join(task["test_list"]) + "\n",
    }


def load_google_mbpp(path: str | Path) -> tuple[list[dict], dict[str, str]]:
    """(evalplus problems in file order, {task id: why it was left out})."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(path, f"not a JSON array of MBPP tasks ({err})") from err
    if not isinstance(tasks, list) or not tasks:
        raise InputError(path, "expected a non-empty JSON array of MBPP tasks")
    problems, dropped = [], {}
    for number, task in enumerate(tasks, 1):
        missing = [field for field in GOOGLE_FIELDS if not isinstance(task, dict) or field not in task]
        if missing:
            raise InputError(path, f"task {number} lacks MBPP fields {missing}")
        try:
            problems.append(google_task_to_evalplus(task))
        except (ValueError, SyntaxError) as err:
            dropped[f"Mbpp/{task['task_id']}"] = str(err)
    if not problems:
        raise InputError(path, "no MBPP task could be turned into an evalplus problem")
    return problems, dropped
