"""The sandbox: statuses, limits, isolation and clean-up, on the strongest layer this machine offers."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from abacus_repro.sandbox import ISOLATION_LEVELS, detect_isolation, drops_root, run_python

ISOLATION = detect_isolation()


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(os.path.join(entry.path, "cmdline"), "rb") as handle:
                if marker.encode() in handle.read():
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def _wait_until_gone(marker: str, seconds: float = 3.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = _processes_with(marker)
        if not left:
            return []
        time.sleep(0.05)
    return _processes_with(marker)


def test_ok_run_reports_output_and_isolation():
    result = run_python("print(6 * 7)")
    assert result.status == "ok"
    assert result.returncode == 0
    assert result.stdout == "42\n"
    assert result.isolation == ISOLATION
    assert result.isolation in ISOLATION_LEVELS
    assert result.seconds > 0


@pytest.mark.parametrize("level", ISOLATION_LEVELS)
def test_each_available_layer_runs_and_is_recorded(level):
    if level != "rlimits" and ISOLATION_LEVELS.index(level) < ISOLATION_LEVELS.index(ISOLATION):
        pytest.skip(f"{level} does not work on this machine (detected: {ISOLATION})")
    result = run_python("print('hi')", isolation=level)
    assert (result.status, result.stdout, result.isolation) == ("ok", "hi\n", level)


def test_error_status_and_traceback():
    result = run_python("raise ValueError('boom')")
    assert result.status == "error"
    assert result.returncode == 1
    assert "ValueError: boom" in result.stderr


def test_exit_code_is_passed_through():
    result = run_python("import sys; sys.exit(3)")
    assert (result.status, result.returncode) == ("error", 3)


def test_timeout_kills_children_that_left_the_process_group():
    marker = f"abacus-sbx-test-{uuid.uuid4().hex}"
    code = f"""
import os, subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # {marker}"], start_new_session=True)
print("started", flush=True)
time.sleep(60)
"""
    started = time.monotonic()
    result = run_python(code, timeout=1.5)
    assert result.status == "timeout"
    assert "started" in result.stdout
    assert time.monotonic() - started < 10
    assert _wait_until_gone(marker) == []


def test_cpu_bound_loop_times_out():
    result = run_python("while True:\n    pass\n", timeout=1)
    assert result.status == "timeout"
    assert result.seconds < 3


def test_memory_limit():
    result = run_python("x = bytearray(1024 * 1024 * 1024)\nprint(len(x))", memory_mb=256)
    assert result.status == "memory"
    assert "MemoryError" in result.stderr
    assert result.stdout == ""


def test_file_size_limit_caps_output():
    result = run_python("import sys\nsys.stdout.write('x' * (4 * 1024 * 1024))", file_size_mb=1)
    assert result.status != "ok"
    assert len(result.stdout) <= 1024 * 1024


def test_no_network():
    if ISOLATION == "rlimits":
        pytest.skip("no network namespace on this machine (isolation: rlimits)")
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        code = f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=1).close()
    print("connected")
except OSError as err:
    print("refused", type(err).__name__)
try:
    socket.create_connection(("192.0.2.1", 80), timeout=1).close()
    print("connected")
except OSError as err:
    print("refused", type(err).__name__)
"""
        result = run_python(code, timeout=5)
    finally:
        server.close()
    assert result.status == "ok", result.stderr
    assert "connected" not in result.stdout
    assert result.stdout.count("refused") == 2


def test_cannot_write_outside_its_directory(tmp_path):
    if ISOLATION != "bwrap" and not drops_root():
        pytest.skip("without bwrap or a uid of its own, the sandbox can write whatever its caller can")
    beside_tests = Path(__file__).with_name(f"sandbox-escape-{uuid.uuid4().hex}.txt")
    world_writable = tmp_path / "open"
    world_writable.mkdir()
    world_writable.chmod(0o777)
    targets = [beside_tests]
    if ISOLATION == "bwrap":  # only bwrap makes the whole file system read-only; the uid alone cannot
        targets.append(world_writable / "escape.txt")
    code = "\n".join(
        f"try:\n    open({str(t)!r}, 'w').write('x')\n    print('wrote')\nexcept OSError as err:\n    print(err)"
        for t in targets
    )
    code += "\nopen('inside.txt', 'w').write('fine')\nprint(open('inside.txt').read())"
    try:
        result = run_python(code)
        assert result.status == "ok", result.stderr
        assert "wrote" not in result.stdout
        assert result.stdout.rstrip().endswith("fine")
        assert not any(t.exists() for t in targets)
    finally:
        beside_tests.unlink(missing_ok=True)


def test_working_directory_is_thrown_away():
    def ours():
        return {p.name for p in Path(tempfile.gettempdir()).glob("abacus-sandbox-*")}

    before = ours()
    result = run_python("import os\nopen('scratch.txt', 'w').write('x')\nprint(os.getcwd(), os.environ['HOME'])")
    assert result.status == "ok"
    cwd, home = result.stdout.split()
    assert cwd == home
    if ISOLATION == "bwrap":
        assert cwd == "/tmp/sandbox"  # the same path in every run
    assert ours() - before == set()


def test_hash_seed_is_fixed_so_outputs_are_comparable():
    code = "print(list({f'item{i}' for i in range(30)}))"
    assert run_python(code).stdout == run_python(code).stdout


def test_fork_bomb_is_contained():
    if os.geteuid() == 0 and not drops_root():
        pytest.skip("root without a uid of its own for the program: RLIMIT_NPROC does not bind root")
    marker = f"abacus-sbx-bomb-{uuid.uuid4().hex}"
    # A bounded bomb: keeps forking sleeping children until the process limit refuses one.
    code = f"""
import os, sys, time
n = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        print("limited", n, flush=True)
        break
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)  # {marker}"])
    n += 1
time.sleep(60)
"""
    result = run_python(code, timeout=3, processes=8)
    assert result.status == "timeout"
    assert "limited" in result.stdout, result.stderr
    forked = int(result.stdout.split()[1])
    assert forked < 8
    assert _wait_until_gone(marker) == []


def test_stdin_is_closed_unless_data_is_given():
    closed = run_python("print(input())")
    assert closed.status == "error"
    assert "EOFError" in closed.stderr
    fed = run_python("print(input()[::-1])", stdin_data="abc\n")
    assert (fed.status, fed.stdout) == ("ok", "cba\n")


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("ABACUS_TEST_SECRET", "do-not-leak")
    result = run_python("import os\nprint(sorted(os.environ))\nprint(os.environ.get('ABACUS_TEST_SECRET'))")
    assert result.status == "ok"
    assert "do-not-leak" not in result.stdout
    assert "ABACUS_TEST_SECRET" not in result.stdout


def test_runs_a_file_by_path(tmp_path):
    program = tmp_path / "prog.py"
    program.write_text("import sys\nprint('args', sys.argv[1:])\n", encoding="utf-8")
    result = run_python(program, args=["x"])
    assert (result.status, result.stdout) == ("ok", "args ['x']\n")


def test_cli_prints_one_json_object(tmp_path):
    program = tmp_path / "hello.py"
    program.write_text("print('hello from the sandbox')\n", encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "abacus_repro.sandbox.cli", "run", str(program), "--timeout", "5", "--memory", "256"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert {"status", "returncode", "stdout", "stderr", "seconds", "isolation"} <= set(result)
    assert result["status"] == "ok"
    assert result["stdout"] == "hello from the sandbox\n"


def test_cli_reports_failure_status_and_missing_file(tmp_path):
    program = tmp_path / "slow.py"
    program.write_text("import time\ntime.sleep(30)\n", encoding="utf-8")
    cli = [sys.executable, "-m", "abacus_repro.sandbox.cli", "run"]
    slow = subprocess.run([*cli, str(program), "--timeout", "1"], capture_output=True, text=True, check=False)
    assert slow.returncode == 1
    assert json.loads(slow.stdout)["status"] == "timeout"
    missing = subprocess.run([*cli, str(tmp_path / "nope.py")], capture_output=True, text=True, check=False)
    assert missing.returncode == 2
    assert "nope.py" in missing.stderr


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap is not installed")
def test_bwrap_works_for_an_interpreter_that_lives_under_tmp():
    """A CI checkout under /tmp has its venv there: the sandbox's private /tmp must not hide that interpreter
    (the probe would fail and the sandbox would silently fall back to a weaker layer)."""
    venv = Path(tempfile.mkdtemp(prefix="venv-", dir="/tmp"))
    venv.chmod(0o755)  # as a checkout would be: the sandbox uid must read its pyvenv.cfg
    try:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        paths = [str(Path(__file__).resolve().parents[2] / "src"), *[p for p in sys.path if p.endswith("-packages")]]
        probe = (
            "from abacus_repro.sandbox import detect_isolation, run_python\n"
            "r = run_python('import sys; print(sys.prefix)')\n"
            "print(detect_isolation(), r.status, r.stdout.strip())\n"
        )
        out = subprocess.run(
            [str(venv / "bin" / "python"), "-c", probe],
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["bwrap", "ok", str(venv)]
    finally:
        subprocess.run(["rm", "-rf", str(venv)], check=False)
