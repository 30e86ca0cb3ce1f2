"""Runs INSIDE the sandbox, appended to a LiveCodeBench program: one test per call of ``_abacus_lcb_check``.

Standard library only: this text is pasted after the candidate program (and a line that sets
``_ABACUS_LCB = {"kind": "functional"|"stdin", "func_name": ..., "source": ...}``), then the sandbox's batch
harness calls ``_abacus_lcb_check(test_input, expected_output)`` once per test, in order, and reports each
outcome. The call returns True (passed) or False (wrong answer), or raises what the program raised.

Grading follows LiveCodeBench's ``lcb_runner/evaluation/testing_util.py``:
- functional tests: each input line is one JSON argument; the method (of one ``Solution()`` instance when the
  program has ``class Solution``, else the module's function) is called with them; a tuple result counts as
  a list; the result must equal the JSON-decoded expected output;
- stdin tests: the program runs as a script with the input on stdin (``sys.stdin``, ``input()``,
  ``sys.stdin.buffer``, ``open(0)``) and its stdout captured; ``exit()`` ends it normally. Output and expected
  output are compared line by line after stripping: the same number of lines, each line equal as text or,
  failing that, equal as a list of decimal numbers (so ``2.50`` matches ``2.5``).

Like LiveCodeBench, grading stops at the first failed test: later calls raise ``AbacusEarlierTestFailed``
at once, so a program that times out costs one time limit, not one per test.
"""

import builtins as _abacus_builtins
import decimal as _abacus_decimal
import io as _abacus_io
import json as _abacus_json
import sys as _abacus_sys


class AbacusEarlierTestFailed(Exception):
    """An earlier test failed: this one is not run."""


_abacus_state = {"failed": False, "target": None}


def _abacus_lines(text):
    return [line.strip() for line in text.strip().split("\n")]


def _abacus_decimals(line):
    try:
        return [_abacus_decimal.Decimal(token) for token in line.split()]
    except (_abacus_decimal.InvalidOperation, ValueError):
        return None


def _abacus_same_stdout(produced, expected):
    produced_lines, expected_lines = _abacus_lines(produced), _abacus_lines(expected)
    if len(produced_lines) != len(expected_lines):
        return False
    for got, want in zip(produced_lines, expected_lines):
        if got == want:
            continue
        got_numbers, want_numbers = _abacus_decimals(got), _abacus_decimals(want)
        if got_numbers is None or want_numbers is None or got_numbers != want_numbers:
            return False
    return True


def _abacus_functional(test_input, expected):
    if _abacus_state["target"] is None:
        name = _ABACUS_LCB["func_name"]  # noqa: F821 - set by the line before this harness
        if "class Solution" in _ABACUS_LCB["source"]:  # noqa: F821 - LiveCodeBench's own test for LeetCode code
            _abacus_state["target"] = getattr(globals()["Solution"](), name)
        else:
            _abacus_state["target"] = globals()[name]
    arguments = [_abacus_json.loads(line) for line in test_input.split("\n")]
    result = _abacus_state["target"](*arguments)
    if isinstance(result, tuple):
        result = list(result)
    return result == _abacus_json.loads(expected)


def _abacus_open(stdin_bytes):
    real_open = _abacus_builtins.open

    def open_stdin_aware(file, mode="r", *args, **kwargs):
        if file == 0 or file == "/dev/stdin":
            data = _abacus_io.BytesIO(stdin_bytes)
            return data if "b" in mode else _abacus_io.TextIOWrapper(data, encoding="utf-8")
        return real_open(file, mode, *args, **kwargs)

    return open_stdin_aware


def _abacus_stdin(test_input, expected):
    stdin_bytes = test_input.encode("utf-8")
    own_builtins = dict(vars(_abacus_builtins))
    own_builtins["open"] = _abacus_open(stdin_bytes)
    stdin = _abacus_io.TextIOWrapper(_abacus_io.BytesIO(stdin_bytes), encoding="utf-8")
    stdout = _abacus_io.TextIOWrapper(_abacus_io.BytesIO(), encoding="utf-8")
    namespace = dict(_ABACUS_PRELUDE_NAMES)  # noqa: F821 - the prelude's imports, as LiveCodeBench gives them
    # The prelude's `from sys import *` and `from io import *` bound stdin, stdout and open before this test:
    # point them at this test's streams.
    namespace.update(
        {
            "__name__": "__main__",
            "__builtins__": own_builtins,
            "open": own_builtins["open"],
            "stdin": stdin,
            "stdout": stdout,
        }
    )
    saved = _abacus_sys.stdin, _abacus_sys.stdout
    _abacus_sys.stdin, _abacus_sys.stdout = stdin, stdout
    try:
        exec(_ABACUS_COMPILED, namespace)  # noqa: S102, F821 - running the program is the point
    except SystemExit:
        pass
    finally:
        _abacus_sys.stdin, _abacus_sys.stdout = saved
    stdout.flush()
    produced = stdout.buffer.getvalue().decode("utf-8", errors="replace")
    return _abacus_same_stdout(produced, expected)


def _abacus_lcb_check(test_input, expected):
    if _abacus_state["failed"]:
        raise AbacusEarlierTestFailed()
    try:
        if _ABACUS_LCB["kind"] == "functional":  # noqa: F821
            passed = _abacus_functional(test_input, expected)
        else:
            passed = _abacus_stdin(test_input, expected)
    except BaseException:
        _abacus_state["failed"] = True
        raise
    if not passed:
        _abacus_state["failed"] = True
    return passed
