"""Run untrusted Python in a separate, limited and (where the machine allows) isolated process.

Layers, strongest first; the one used is recorded in every result's ``isolation``:

- ``bwrap`` (Debian package ``bubblewrap``): new network, PID, IPC and UTS namespaces and a file system of its
  own: the system directories (/usr, /etc, /lib...) and the Python runtime read-only, nothing else of the host
  (no /root, /home, /work, /var), a private size-capped in-memory ``/tmp`` holding the working directory (its
  files are copied in, never bound from the host), a private ``/proc``, a minimal ``/dev`` with a size-capped
  ``/dev/shm``, a new session (no terminal injection); the sandbox dies with its parent.
- ``unshare`` (util-linux): new network and PID namespaces only; the file system is shared.
- ``rlimits``: resource limits and a new session only.

On every layer the process gets resource limits (CPU seconds, address space, file size, open files,
processes), a scrubbed environment, stdin from ``/dev/null`` (or the given data), and a wall-clock timeout
that kills its whole process group. Root is not bound by RLIMIT_NPROC and may write anywhere, so when we run
as root the program runs under a fresh unprivileged uid of its own (a fork bomb then meets RLIMIT_NPROC, and
every process left with that uid is killed afterwards, even ones that escaped the process group).

Where this process may create control groups, each run also gets one (see :mod:`.cgroup`): the memory of all
its processes and in-memory files together, and its process count, are bounded there, and everything in it is
killed at the end. stdout and stderr go to files capped by the file-size limit and are read back capped again,
so a program that prints forever costs the host at most ``file_size_mb`` of disk and ``output_bytes`` of memory.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import resource
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from . import cgroup as cgroups

ISOLATION_LEVELS = ("bwrap", "unshare", "rlimits")
# Overrides automatic detection (tests, or a machine where a layer misbehaves).
ISOLATION_ENV = "ABACUS_SANDBOX_ISOLATION"

STATUSES = ("ok", "error", "timeout", "memory", "killed")
# Inside bwrap the working directory always has this path (in the sandbox's private /tmp), so programs that
# print their own paths print the same thing in every run.
BWRAP_WORKDIR = "/tmp/sandbox"
# What of the host a bwrap sandbox sees (read-only), besides the Python runtime; symlinks (merged /usr) stay links.
BWRAP_SYSTEM_PATHS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

# Unprivileged uids for programs started by root: far above ordinary and subordinate (subuid) ranges.
_UID_BASE = 3_000_000
_uid_counter = itertools.count()
_detected_isolation: str | None = None


@dataclass
class SandboxResult:
    status: str  # one of STATUSES
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    isolation: str
    cgroup: str | None = None  # "v1"/"v2" when the run had a control group of its own

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Limits:
    timeout: float = 5.0
    memory_mb: int = 512
    file_size_mb: int = 16
    open_files: int = 64
    processes: int = 32
    output_bytes: int = 1_000_000
    disk_mb: int = 64  # each in-memory file system of a bwrap sandbox (/tmp with the working dir, /dev/shm)

    def group_memory_bytes(self) -> int:
        """The control group's budget: the program's memory plus its in-memory files."""
        return (self.memory_mb + 2 * self.disk_mb) * 1024 * 1024


def run_python(
    code_or_path: str | Path,
    stdin_data: str | bytes | None = None,
    timeout: float = 5,
    memory_mb: int = 512,
    *,
    args: Sequence[str] = (),
    files: Mapping[str, str | bytes] | None = None,
    file_size_mb: int = 16,
    open_files: int = 64,
    processes: int = 32,
    output_bytes: int = 1_000_000,
    disk_mb: int = 64,
    isolation: str | None = None,
    python: str | None = None,
) -> SandboxResult:
    """Run a Python program (source text, or a ``Path``/``*.py`` file name) in the sandbox.

    ``files`` are extra files written into the working directory first (the program sees them by relative
    name); ``args`` go to the program's ``sys.argv[1:]``. ``isolation`` forces a layer (default: the
    strongest that works here, see :func:`detect_isolation`).
    """
    limits = Limits(timeout, memory_mb, file_size_mb, open_files, processes, output_bytes, disk_mb)
    source = _program_source(code_or_path)
    level = isolation or detect_isolation()
    if level not in ISOLATION_LEVELS:
        raise ValueError(f"unknown sandbox isolation {level!r}; allowed: {', '.join(ISOLATION_LEVELS)}")
    return _run(source, stdin_data, limits, level, list(args), dict(files or {}), python or sys.executable)


def detect_isolation() -> str:
    """The strongest isolation layer that works on this machine (probed once per process)."""
    global _detected_isolation
    forced = os.environ.get(ISOLATION_ENV)
    if forced:
        if forced not in ISOLATION_LEVELS:
            raise ValueError(f"{ISOLATION_ENV}={forced!r}; allowed: {', '.join(ISOLATION_LEVELS)}")
        return forced
    if _detected_isolation is None:
        cgroups.remove_stale()  # groups of sandbox callers that were killed before they could clean up
        _detected_isolation = "rlimits"
        for level in ISOLATION_LEVELS[:-1]:
            if _layer_works(level):
                _detected_isolation = level
                break
    return _detected_isolation


def drops_root(level: str | None = None, python: str | None = None) -> bool:
    """Whether a program started by root runs under its own unprivileged uid (then RLIMIT_NPROC binds it and
    file permissions protect root's files). Always true with bwrap; otherwise only when that uid can reach
    the interpreter. False when we are not root (the program runs as the caller)."""
    if os.geteuid() != 0:
        return False
    level = level or detect_isolation()
    return level == "bwrap" or not _runtime_closed_ancestors(python or sys.executable)


def _layer_works(level: str) -> bool:
    tool = "bwrap" if level == "bwrap" else "unshare"
    if shutil.which(tool) is None:
        return False
    probe = _run("print('ok')", None, Limits(timeout=10), level, [], {}, sys.executable)
    return probe.status == "ok" and probe.stdout.strip() == "ok"


def _program_source(code_or_path: str | Path) -> str:
    if isinstance(code_or_path, Path):
        return code_or_path.read_text(encoding="utf-8")
    looks_like_file = "\n" not in code_or_path and code_or_path.endswith(".py") and os.path.isfile(code_or_path)
    return Path(code_or_path).read_text(encoding="utf-8") if looks_like_file else code_or_path


def _run(
    source: str,
    stdin_data: str | bytes | None,
    limits: Limits,
    level: str,
    args: list[str],
    files: dict[str, str | bytes],
    python: str,
) -> SandboxResult:
    as_root = os.geteuid() == 0
    # Without bwrap the unprivileged uid must be able to reach the interpreter where it lies on disk.
    uid = _fresh_uid() if drops_root(level, python) else None
    # The host-side working directory: the program's own directory on the weaker layers; with bwrap only the
    # source its files are copied from (the program works in its private in-memory /tmp).
    # Named with our pid: whoever checks for leftovers can tell whose they are.
    workdir = Path(tempfile.mkdtemp(prefix=f"abacus-sandbox-{os.getpid()}-")).resolve()
    # stdout/stderr/stdin live outside the working directory: the program cannot tamper with them, and
    # RLIMIT_FSIZE caps how much it can print.
    iodir = Path(tempfile.mkdtemp(prefix=f"abacus-sandbox-io-{os.getpid()}-")).resolve()
    group = cgroups.create(limits.group_memory_bytes(), limits.processes)
    copied: list[tuple[int, str]] = []  # (open file descriptor, path inside the sandbox) for bwrap --file
    try:
        names = {"main.py": source, **files}
        _write_files(workdir, names)
        if uid is not None:
            _chown_tree(workdir, uid)
        os.chmod(workdir, 0o700)
        if level == "bwrap":
            copied = [(os.open(workdir / name, os.O_RDONLY), name) for name in sorted(names)]
        command = _command(level, workdir, python, ["main.py", *args], uid, limits, copied)
        stdin_path = None
        if stdin_data is not None:
            stdin_path = iodir / "stdin"
            stdin_path.write_bytes(stdin_data.encode("utf-8") if isinstance(stdin_data, str) else stdin_data)
        result = _execute(command, workdir, iodir, stdin_path, limits, level, uid, as_root, group, copied)
        uid = None  # _execute has cleaned up after it
        return result
    finally:
        for fd, _ in copied:
            os.close(fd)
        if group is not None:
            group.remove()
        if uid is not None:
            _kill_uid(uid)
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(iodir, ignore_errors=True)


def _execute(
    command: list[str],
    workdir: Path,
    iodir: Path,
    stdin_path: Path | None,
    limits: Limits,
    level: str,
    uid: int | None,
    as_root: bool,
    group: cgroups.Cgroup | None,
    copied: list[tuple[int, str]],
) -> SandboxResult:
    stdout_path, stderr_path = iodir / "stdout", iodir / "stderr"
    nproc = limits.processes if as_root else _own_task_count() + limits.processes
    started = time.monotonic()
    timed_out = False
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL  # noqa: SIM115 - closed below
        prlimit = _prlimit_prefix(limits, nproc)
        full = prlimit + command if prlimit else command
        if group is not None:
            full = group.enter_prefix() + full
        try:
            proc = subprocess.Popen(
                full,
                stdin=stdin,
                stdout=out,
                stderr=err,
                cwd=workdir,
                env=_scrubbed_env(Path(BWRAP_WORKDIR) if level == "bwrap" else workdir),
                start_new_session=True,
                close_fds=True,
                pass_fds=[fd for fd, _ in copied],
                # Without util-linux's prlimit the limits are set between fork and exec, which is only safe
                # in a single-threaded caller (the pool workers are).
                preexec_fn=None if prlimit else lambda: _apply_limits(limits, nproc),  # noqa: PLW1509
            )
            try:
                _wait(proc, limits.timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                if group is not None:
                    group.kill_all()
                # Descendants first, found while the tree is intact: one that left the process group
                # (setsid) is still a child of the program until the program dies.
                _kill_pids(_descendants(proc.pid))
                _kill_group(proc.pid)
                proc.wait()
        finally:
            if stdin is not subprocess.DEVNULL:
                stdin.close()
    seconds = time.monotonic() - started
    if group is not None:
        # Nothing leaves a control group without privileges: killing its members kills everything.
        group.kill_all()
    elif uid is not None:
        _kill_uid(uid)  # the uid is the sandbox's alone: this also finds processes that left the group
    else:
        _kill_group(proc.pid)
    stdout = _read_capped(stdout_path, limits.output_bytes)
    stderr = _read_capped(stderr_path, limits.output_bytes)
    status = _classify(proc.returncode, stderr, timed_out, level)
    if group is not None and status in ("killed", "error") and group.oom_killed():
        status = "memory"  # the kernel killed inside the group because the group's memory was full
    version = group.version if group is not None else None
    return SandboxResult(status, proc.returncode, stdout, stderr, round(seconds, 4), level, version)


def _wait(proc: subprocess.Popen, timeout: float) -> None:
    """Popen.wait(timeout) polls with sleeps of up to 50 ms, a large share of a 60 ms sandbox run; a pidfd
    wakes us the moment the process ends (Linux >= 5.3), else fall back to polling."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        proc.wait(timeout=timeout)
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(max(0, int(timeout * 1000))):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(pidfd)
    proc.wait()


def _command(
    level: str,
    workdir: Path,
    python: str,
    argv: list[str],
    uid: int | None,
    limits: Limits | None = None,
    copied: Sequence[tuple[int, str]] = (),
) -> list[str]:
    # -s: no user site; -P: no script or working directory on sys.path. Not -I: it would also ignore the
    # PYTHON* variables of the scrubbed environment, PYTHONHASHSEED=0 among them.
    program = [python, "-s", "-P", *argv]
    if uid is not None:
        program = _drop_privileges(uid, python) + program
    if level == "bwrap":
        # As root, --unshare-all would add a user namespace that maps only uid 0, and the switch to the
        # unprivileged uid would then fail; the other namespaces are named one by one instead.
        namespaces = (
            ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
            if uid is not None
            else ["--unshare-all"]
        )
        disk = str((limits or Limits()).disk_mb * 1024 * 1024)
        return [
            "bwrap",
            *namespaces,
            "--die-with-parent",
            "--new-session",
            *_bwrap_host_paths(python),
            # A private in-memory /tmp, size-capped: a program that writes files in a loop fills its own
            # budget, never the host's disk. The working directory is inside it.
            *("--perms", "1777", "--size", disk, "--tmpfs", "/tmp"),
            # A runtime that lives under /tmp (a CI checkout's venv) is bound after that tmpfs, which would
            # otherwise hide it.
            *_bwrap_runtime_binds(python, under_tmp=True),
            *("--perms", "0777", "--dir", BWRAP_WORKDIR),
            *_bwrap_copies(copied),
            *("--dev", "/dev"),
            *("--perms", "1777", "--size", disk, "--tmpfs", "/dev/shm"),
            *("--proc", "/proc"),
            # The root bwrap builds (a tmpfs holding the mount points) and /dev: read-only, so the only
            # writable places are the two size-capped ones.
            *("--remount-ro", "/dev", "--remount-ro", "/"),
            "--chdir",
            BWRAP_WORKDIR,
            *program,
        ]
    if level == "unshare":
        user_ns = [] if uid is not None else ["--user", "--map-root-user"]
        return [
            "unshare",
            *user_ns,
            "--net",
            "--pid",
            "--ipc",
            "--uts",
            "--fork",
            "--kill-child",
            "--mount-proc",
            *program,
        ]
    return program


def _bwrap_host_paths(python: str) -> list[str]:
    """Read-only binds of the system directories and the Python runtime; nothing else of the host exists.
    Runtime paths under /tmp are left to _bwrap_runtime_binds(under_tmp=True), after the private /tmp."""
    args: list[str] = []
    for path in BWRAP_SYSTEM_PATHS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args + _bwrap_runtime_binds(python, under_tmp=False)


def _bwrap_runtime_binds(python: str, under_tmp: bool) -> list[str]:
    """Read-only binds of the interpreter's runtime paths below /tmp (``under_tmp``) or elsewhere, with the
    directories above each created traversable (bwrap would make them 0700: the unprivileged uid must pass)."""
    bound = [p for p in BWRAP_SYSTEM_PATHS if os.path.isdir(p) and not os.path.islink(p)]
    args: list[str] = []
    made: set[str] = set()
    for path in _runtime_paths(python):
        if _is_below(path, "/tmp") != under_tmp or any(_is_below(path, b) for b in bound):
            continue
        for parent in reversed(Path(path).parents):
            name = str(parent)
            if name not in ("/", "/tmp") and name not in made and not any(_is_below(name, b) for b in bound):
                args += ["--perms", "0755", "--dir", name]
                made.add(name)
        args += ["--ro-bind", path, path]
        bound.append(path)
    return args


def _is_below(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def _bwrap_copies(copied: Sequence[tuple[int, str]]) -> list[str]:
    """bwrap --file arguments that copy the program's files into its working directory (writable by it)."""
    args: list[str] = []
    made: set[str] = set()
    for fd, name in copied:
        target = Path(BWRAP_WORKDIR) / name
        for parent in reversed(target.parents):
            if str(parent).startswith(BWRAP_WORKDIR + "/") and str(parent) not in made:
                args += ["--perms", "0777", "--dir", str(parent)]
                made.add(str(parent))
        args += ["--perms", "0666", "--file", str(fd), str(target)]
    return args


@functools.lru_cache(maxsize=8)
def _runtime_paths(python: str) -> tuple[str, ...]:
    """Where the interpreter lives: its installation (binary and shared library) and the virtual env."""
    install = os.path.dirname(os.path.dirname(os.path.realpath(python)))
    paths = {install, os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)}
    return tuple(sorted(p for p in paths if p != "/"))


@functools.lru_cache(maxsize=8)
def _runtime_closed_ancestors(python: str) -> tuple[tuple[str, str], ...]:
    """(closed directory, runtime path below it) for runtime paths other users cannot reach, e.g. a Python
    under /root (mode 0700): the unprivileged uid would fail to load its shared library there."""
    found = []
    for path in _runtime_paths(python):
        current = Path("/")
        for part in Path(path).parts[1:]:
            current = current / part
            try:
                mode = os.stat(current).st_mode
            except OSError:
                break
            if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
                found.append((str(current), path))
                break
    return tuple(found)


def _drop_privileges(uid: int, python: str) -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    switch = "import os,sys;os.setgroups([]);os.setgid({0});os.setuid({0});os.execv(sys.argv[1],sys.argv[1:])"
    return [python, "-I", "-S", "-c", switch.format(uid)]


def _rlimits(limits: Limits, nproc: int) -> list[tuple[str, int, int, int]]:
    """(prlimit option, resource, soft, hard) for every limit the sandbox sets."""
    cpu = math.ceil(limits.timeout) + 1  # CPU seconds: a backstop behind the wall-clock timeout
    memory = limits.memory_mb * 1024 * 1024
    fsize = limits.file_size_mb * 1024 * 1024
    return [
        ("cpu", resource.RLIMIT_CPU, cpu, cpu + 1),
        ("as", resource.RLIMIT_AS, memory, memory),
        ("fsize", resource.RLIMIT_FSIZE, fsize, fsize),
        ("nofile", resource.RLIMIT_NOFILE, limits.open_files, limits.open_files),
        ("nproc", resource.RLIMIT_NPROC, nproc, nproc),
        ("core", resource.RLIMIT_CORE, 0, 0),
    ]


def _prlimit_prefix(limits: Limits, nproc: int) -> list[str] | None:
    """util-linux's prlimit sets the limits on itself, then execs the command: no Python code in the child."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return None
    return [prlimit, *(f"--{name}={soft}:{hard}" for name, _, soft, hard in _rlimits(limits, nproc)), "--"]


def _apply_limits(limits: Limits, nproc: int) -> None:
    """The fallback without prlimit: runs in the child between fork and exec."""
    for _, which, soft, hard in _rlimits(limits, nproc):
        resource.setrlimit(which, (soft, hard))


def _scrubbed_env(workdir: Path) -> dict[str, str]:
    home = str(workdir)
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",  # same set/dict-order reprs in every run: outputs are comparable
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        # Numerical libraries reserve per-thread memory at import; one thread keeps them under RLIMIT_AS.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


# How running out of address space shows in stderr: Python, the C library, C++ (abort) and OpenBLAS.
_OUT_OF_MEMORY = ("MemoryError", "Cannot allocate memory", "std::bad_alloc", "Memory allocation still failed")


def _classify(returncode: int, stderr: str, timed_out: bool, level: str) -> str:
    if timed_out:
        return "timeout"
    signum = -returncode if returncode < 0 else None
    # bwrap reports a child killed by signal N as exit status 128 + N.
    if signum is None and level == "bwrap" and 128 < returncode < 128 + 65:
        signum = returncode - 128
    if signum == signal.SIGXCPU:
        return "timeout"
    tail = stderr[-2000:]
    if returncode != 0 and any(sign in tail for sign in _OUT_OF_MEMORY):
        return "memory"
    if signum is not None:
        return "killed"
    return "ok" if returncode == 0 else "error"


def _fresh_uid() -> int:
    # Distinct per process and call, so concurrent sandboxes never share a uid (RLIMIT_NPROC counts per uid,
    # and the clean-up kills by uid).
    return _UID_BASE + (os.getpid() % 4000) * 250 + next(_uid_counter) % 250


def _write_files(workdir: Path, files: Mapping[str, str | bytes]) -> None:
    for name, content in files.items():
        target = (workdir / name).resolve()
        if workdir not in target.parents:
            raise ValueError(f"sandbox file name {name!r} leaves the working directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")


def _chown_tree(root: Path, uid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        os.chown(dirpath, uid, uid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, uid)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(os.path.join(entry.path, "stat"), encoding="ascii", errors="replace") as handle:
                # "pid (comm) state ppid ...": comm may contain spaces, so split after its closing parenthesis.
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _kill_uid(uid: int) -> None:
    """Kill every process running as the sandbox's own uid (only the sandbox ever has it)."""
    for _ in range(5):
        found = False
        for pid in _pids_with_uid(uid):
            found = True
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not found:
            return
        time.sleep(0.01)


def _pids_with_uid(uid: int) -> list[int]:
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        if _real_uid(entry.path) == uid:
            pids.append(int(entry.name))
    return pids


def _real_uid(proc_dir: str) -> int | None:
    # /proc/<pid>/status, not the directory's owner: a process that is not "dumpable" shows root as owner.
    try:
        with open(os.path.join(proc_dir, "status"), encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _own_task_count() -> int:
    """Tasks (threads included) of our uid: a non-root RLIMIT_NPROC must leave room for them."""
    uid = os.getuid()
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry.path).st_uid == uid:
                count += len(os.listdir(os.path.join(entry.path, "task")))
        except OSError:
            continue
    return count


def _read_capped(path: Path, limit: int) -> str:
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    return text + "\n[output truncated]" if len(data) > limit else text
