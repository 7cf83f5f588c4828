"""Run an untrusted command isolated from outside the process (the API both verifier halves build on).

``start(spec)`` / ``run(spec)`` run ``python -I -B recorder.py FD <spec.argv>`` in ``spec.work``
through a trusted supervisor (:mod:`golf.verifier.sandbox.launcher`).  Where the OS allows it (user
namespaces, no root needed) the supervisor runs inside ``unshare --user --map-root-user --mount
--pid --net --ipc --uts --fork --kill-child`` and the artifact sees only its work dir, the read-only
``inputs``, a read-only python environment in which golf is masked, ``/dev/{null,zero,random,
urandom}``, ``/proc`` of its own PID namespace and an empty ``/tmp``; it has no network and no
capabilities.  The supervisor is PID 1 of the namespace, so every descendant dies with the run.
If namespaces are refused, :class:`CannotIsolate` is raised unless ``spec.weak_isolation``: then
the same supervisor runs without namespaces and the result says ``weak``.

Limits (:class:`Limits`) are rlimits set on the artifact plus the supervisor's own watch of the
whole process tree (task count, CPU time); the wall clock is enforced here by a watchdog.  Each
breach has its own verdict.  The audit hook (:mod:`golf.verifier.sandbox.recorder`) only records.

``isolation_checks`` / ``limit_checks`` turn a :class:`RunResult` into report checks;
``size_checks`` lives with the inventory (:mod:`golf.verifier.scoring.inventory`).
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from golf.errors import GolfError
from golf.protocol import (
    ENV_SANDBOX_FORCE_NO_NS,
    EXIT_ACCESS,
    EXIT_CANNOT_ISOLATE,
    EXIT_CPU_TIME,
    EXIT_FILE_SIZE,
    EXIT_MEMORY,
    EXIT_NETWORK,
    EXIT_PROCESSES,
    EXIT_RUNTIME,
    EXIT_TIMEOUT,
)
from golf.verifier.report import FAIL, PASS, SKIP, WARN, Check
from golf.verifier.sandbox import cgroup, environment, reads
from golf.verifier.sandbox.environment import Exposure
from golf.verifier.sandbox.launcher import descendants

# ---------------------------------------------------------------------------- settings

NAMESPACES = ("user", "mount", "pid", "net", "ipc", "uts")  # ipc: no System V segments shared with the host
UNSHARE_OPTS = ("--user", "--map-root-user", "--mount", "--pid", "--net", "--ipc", "--uts", "--fork", "--kill-child")
OUTPUT_CAP = 8 << 20           # bytes of stdout / stderr read back
EVENTS_CAP = 64 << 20          # bytes of recorder log read back
READY_TIMEOUT_S = 60.0         # supervisor set-up (mounts) must finish within this
HEARTBEAT_S = 5.0
MIN_TASKS, TASKS_PER_CORE = 64, 8  # default task limit (threads count: torch starts pools per core)
SURVIVOR_WAIT_S = 2.0
TMP_BYTES_DEFAULT = 1 << 30    # size of the private /tmp and /dev/shm
GPU_DEVICE_PREFIXES = ("nvidia", "dri")  # /dev entries bound for device="cuda"
GPU_RO = ("/sys", "/etc/nvidia")           # read-only extras for device="cuda" (PCI topology, driver config)
RECORDER_INSIDE = "/.golf-sandbox/recorder.py"
LAUNCHER = Path(__file__).with_name("launcher.py")
RECORDER = Path(__file__).with_name("recorder.py")

OOM_MESSAGES = ("can't allocate memory", "cannot allocate memory", "out of memory")  # ENOMEM, torch allocators
VERDICTS = ("ok", "exit", "timeout", "memory", "cpu-time", "file-size", "processes", "survivors")


def default_tasks() -> int:
    """Default task limit: 64, or 8 per core where torch's per-core thread pools need more."""
    return max(MIN_TASKS, TASKS_PER_CORE * (os.cpu_count() or 1))


class CannotIsolate(GolfError):
    """Namespaces are refused by the OS and ``weak_isolation`` was not allowed."""


@dataclass
class Limits:
    wall_s: float = 600.0            # wall clock; the run is killed at it -> verdict "timeout"
    cpu_s: float | None = None       # CPU seconds of the whole process tree -> "cpu-time"
    memory_bytes: int | None = None  # address space per process (RLIMIT_AS) -> "memory"
    file_bytes: int | None = 1 << 30  # RLIMIT_FSIZE (also caps stdout/stderr) -> "file-size"
    processes: int | None = field(default_factory=default_tasks)  # max tasks, threads included
    #                                  (torch starts a thread per core) in the sandbox -> "processes"


@dataclass
class SandboxSpec:
    work: Path                       # a fresh copy of the artifact; cwd of the child; writable
    argv: list[str]                  # script + args relative to work, run with the allowed python -I -B
    env: dict[str, str] = field(default_factory=dict)   # extra variables around a minimal env
    inputs: dict[str, Path] = field(default_factory=dict)  # read-only, visible inside at work/<key>
    pass_fds: tuple[int, ...] = ()   # kept open at the same numbers in the child (protocol pipes)
    limits: Limits = field(default_factory=Limits)
    device: str = "cpu"              # "cuda": also bind the NVIDIA device nodes
    weak_isolation: bool = False     # allowed to run without namespaces (every check marked weak)
    private_dir: Path | None = None  # verifier-only dir: stdout/stderr captures, recorder log, config
    python: str | None = None        # the allowed interpreter (default: the verifier's own)
    shared: tuple[Path, ...] = ()    # host dirs visible read-write at their own path (golf verify uses none)
    packages: tuple[str, ...] = ()   # distributions visible besides environment.DEFAULT_PACKAGES (--allow-package)


@dataclass
class RunResult:
    returncode: int | None
    verdict: str        # one of VERDICTS
    wall_s: float
    stdout: str         # capped, read with O_NOFOLLOW from private_dir
    stderr: str
    events: list[dict]  # recorder: files opened, modules imported, processes spawned, tamper signs
    isolation: dict     # {"namespaces": [...], "weak": bool, "how": "..."}
    survivors: int      # processes left after the end (must be 0 before any report is written)
    cpu_s: float | None = None
    max_tasks: int | None = None
    work: str = ""      # the work dir as the artifact saw it
    env_roots: tuple[str, ...] = ()  # what the sandbox binds read-only (environment.Exposure.binds)
    exposure: Exposure | None = None  # the pinned environment the run saw

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("e") == kind]


# ---------------------------------------------------------------------------- environment


def minimal_env(extra: dict[str, str], home: Path | str = "/tmp", tmp: Path | str = "/tmp") -> dict[str, str]:
    """Environment for the child: no tokens or credentials, Hub offline, caches in the temp dir."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(tmp), "LANG": "C.UTF-8",
           "LC_ALL": "C.UTF-8", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
           "USER": "golf", "LOGNAME": "golf"}  # no /etc/passwd inside: getpass.getuser() (torch caches) reads these
    for k in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NVIDIA_VISIBLE_DEVICES"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(extra)
    return env


@lru_cache(maxsize=None)
def namespaces_available() -> tuple[bool, str]:
    """Whether ``unshare`` grants user + mount + PID + network namespaces here (tried once)."""
    exe = shutil.which("unshare")
    if not exe:
        return False, "no unshare(1) binary"
    try:
        r = subprocess.run([exe, *UNSHARE_OPTS, "--mount-proc", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"unshare failed: {e}"
    if r.returncode != 0:
        return False, "unshare refused: " + r.stderr.decode("utf-8", "replace").strip()[:300]
    return True, "unshare " + " ".join(UNSHARE_OPTS)


def _forced_off() -> bool:
    return os.environ.get(ENV_SANDBOX_FORCE_NO_NS, "") not in ("", "0")


def _devices(device: str) -> list[str]:
    if device != "cuda" or not os.path.isdir("/dev"):
        return []
    return sorted(n for n in os.listdir("/dev") if n.startswith(GPU_DEVICE_PREFIXES))


# ---------------------------------------------------------------------------- running


class Running:
    """A started sandbox run; the wall-clock limit is enforced by a watchdog thread."""

    def __init__(self, spec: SandboxSpec, proc: subprocess.Popen, status_r: int, isolation: dict,
                 exposure: Exposure, t0: float):
        self.spec, self._proc, self._status_r, self.isolation = spec, proc, status_r, isolation
        self.pid = proc.pid
        self.exposure = exposure
        self._t0 = t0
        self._timed_out = False
        self._status_buf = b""
        self._result: RunResult | None = None
        self._known: set[int] = set()  # without namespaces: descendants seen when killing
        self._cgroup: Path | None = None
        self._ns_fd: int | None = None
        self._watchdog = threading.Timer(spec.limits.wall_s, self._on_deadline)
        self._watchdog.daemon = True
        self._watchdog.start()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    def _on_deadline(self) -> None:
        if self._proc.poll() is None:
            self._timed_out = True
            self.kill()

    def poll(self) -> int | None:
        return self._proc.poll()

    def kill(self) -> None:
        """Kill every descendant: the supervisor first (namespace: its death kills the namespace; without
        namespaces the supervisor kills its tree, and what it left is killed from here)."""
        if not self.isolation.get("pid_ns") and self._proc.poll() is None:
            self._known |= set(descendants(self._proc.pid))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self._proc.poll() is not None:
                break
            try:
                os.killpg(self._proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self._proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        for pid in self._known:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def wait(self, timeout: float | None = None) -> RunResult:
        """Wait for the end (``timeout``: give up waiting and kill), end everything, build the result."""
        if self._result is not None:
            return self._result
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # the caller's own deadline: same verdict as the watchdog's
            self._timed_out = True
            self.kill()
        self._watchdog.cancel()
        self.kill()
        self._proc.wait()
        wall = self.elapsed
        end = self._read_end()
        survivors = self._count_survivors(end)
        if self._ns_fd is not None:
            os.close(self._ns_fd)
            self._ns_fd = None
        if self._cgroup:
            end["pids_denied"] = cgroup.denied(self._cgroup)
            cgroup.remove(self._cgroup)
        self._result = _result(self, end, wall, survivors)
        return self._result

    def _read_end(self) -> dict:
        msgs = _read_status(self._status_r, 0.5, self._status_buf)
        os.close(self._status_r)
        for m in msgs:
            if "end" in m:
                return m["end"]
        return {}

    def _count_survivors(self, end: dict) -> int:
        ns = self.isolation.get("pid_ns")
        left = int(end.get("survivors") or 0)
        deadline = time.monotonic() + SURVIVOR_WAIT_S
        while True:
            n = _processes_in_pid_ns(ns) if ns else sum(_alive(p) for p in self._known)
            if n == 0 or time.monotonic() > deadline:
                return max(left, n)
            time.sleep(0.05)


def _pin_pid_ns(unshare_pid: int, ns: str | None) -> int | None:
    """An open descriptor of the run's PID namespace (the supervisor is unshare's only child): while it is
    open the namespace's inode number cannot be reused, so the survivor check cannot mistake another run."""
    try:
        with open(f"/proc/{unshare_pid}/task/{unshare_pid}/children") as f:
            kids = f.read().split()
        fd = os.open(f"/proc/{kids[0]}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    except (OSError, IndexError):
        return None
    try:
        if os.readlink(f"/proc/self/fd/{fd}") == ns:
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _processes_in_pid_ns(ns: str) -> int:
    n = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.readlink(f"/proc/{name}/ns/pid") == ns and int(name) != os.getpid():
                    n += 1
            except OSError:
                continue
    return n


def _read_status(fd: int, timeout: float, buf: bytes = b"") -> list[dict]:
    """JSON lines from the supervisor's status pipe until EOF or ``timeout`` without data."""
    while True:
        r, _, _ = select.select([fd], [], [], timeout)
        if not r:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        if timeout == 0:
            break
    out = []
    for line in buf.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _read_first_status(fd: int, timeout: float) -> tuple[dict, bytes]:
    """The supervisor's first message (ready or error), and any bytes after it."""
    buf, deadline = b"", time.monotonic() + timeout
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        r, _, _ = select.select([fd], [], [], max(0.0, left))
        if not r:
            return {"error": f"the sandbox supervisor did not start within {timeout:g} s"}, buf
        chunk = os.read(fd, 65536)
        if not chunk:
            return {"error": "the sandbox supervisor exited during set-up"}, buf
        buf += chunk
    line, rest = buf.split(b"\n", 1)
    try:
        return json.loads(line), rest
    except ValueError:
        return {"error": f"unreadable supervisor message {line[:200]!r}"}, rest


def _read_capped(path: Path, cap: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return b""
    with os.fdopen(fd, "rb") as f:
        return f.read(cap)


def _read_events(path: Path) -> list[dict]:
    events = []
    for line in _read_capped(path, EVENTS_CAP).decode("utf-8", "replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line cut by a kill, or garbage the artifact wrote
        if isinstance(rec, dict):
            events.append(rec)
    return events


def _verdict(end: dict, timed_out: bool, events: list[dict], limits: Limits, survivors: int) -> str:
    rc = end.get("returncode")
    exc = [e for e in events if e.get("e") == "exception"]
    last = exc[-1] if exc else {}
    if survivors:
        return "survivors"
    if timed_out:
        return "timeout"
    if end.get("breach"):
        return end["breach"]
    if rc == -signal.SIGXCPU or (limits.cpu_s and rc == -signal.SIGKILL and (end.get("cpu_s") or 0) >= limits.cpu_s):
        return "cpu-time"
    if rc == -signal.SIGXFSZ or (last.get("errno") == 27):  # EFBIG
        return "file-size"
    if rc not in (0, None) and limits.processes and (end.get("pids_denied") or last.get("errno") == 11 or  # EAGAIN
                                                     "can't start new thread" in str(last.get("message"))):
        return "processes"
    if rc not in (0, None) and limits.memory_bytes and (last.get("type") == "MemoryError" or last.get("errno") == 12
                                                       or any(m in str(last.get("message")).lower()
                                                              for m in OOM_MESSAGES)):
        return "memory"
    if rc is None:
        return "exit"
    return "ok" if rc == 0 else "exit"


def _result(run: Running, end: dict, wall: float, survivors: int) -> RunResult:
    priv = run.spec.private_dir
    events = _read_events(priv / "events.jsonl")
    verdict = _verdict(end, run._timed_out, events, run.spec.limits, survivors)
    return RunResult(returncode=end.get("returncode"), verdict=verdict, wall_s=wall,
                     stdout=_read_capped(priv / "stdout.txt", OUTPUT_CAP).decode("utf-8", "replace"),
                     stderr=_read_capped(priv / "stderr.txt", OUTPUT_CAP).decode("utf-8", "replace"),
                     events=events, isolation=run.isolation, survivors=survivors, cpu_s=end.get("cpu_s"),
                     max_tasks=end.get("max_tasks"), work=str(run.spec.work), env_roots=tuple(run.exposure.binds),
                     exposure=run.exposure)


def _config(spec: SandboxSpec, namespaced: bool, status_w: int, python: str, exposure: Exposure) -> dict:
    work = os.path.realpath(spec.work)
    lim = spec.limits
    return {
        "mode": "ns" if namespaced else "plain", "python": python, "argv": list(spec.argv), "work": work,
        "env": minimal_env(spec.env), "pass_fds": list(spec.pass_fds), "status_fd": status_w,
        "events": str(spec.private_dir / "events.jsonl"), "events_cap": EVENTS_CAP, "recorder_src": str(RECORDER),
        "recorder_inside": RECORDER_INSIDE, "root": str(spec.private_dir / "root"),
        "ro_binds": sorted(set(exposure.binds) | (set(GPU_RO) if spec.device == "cuda" else set())),
        "masks": exposure.masks, "links": exposure.links,
        "rw_binds": sorted({work, *(os.path.realpath(p) for p in spec.shared)}),
        "inputs": [(os.path.join(work, k), os.path.realpath(p)) for k, p in sorted(spec.inputs.items())],
        "devices": _devices(spec.device), "tmp_bytes": lim.file_bytes or TMP_BYTES_DEFAULT,
        "limits": {"cpu_s": lim.cpu_s, "memory_bytes": lim.memory_bytes, "file_bytes": lim.file_bytes,
                   "processes": lim.processes},
    }


def _check_spec(spec: SandboxSpec) -> None:
    if spec.private_dir is None:
        raise ValueError("SandboxSpec.private_dir is required (stdout/stderr captures, recorder log)")
    if not Path(spec.work).is_dir():
        raise ValueError(f"SandboxSpec.work {spec.work}: not a directory")
    if not spec.argv:
        raise ValueError("SandboxSpec.argv is empty (expected e.g. ['train_gpt.py'])")
    for k, p in spec.inputs.items():
        if "/" in k or k in ("", ".", ".."):
            raise ValueError(f"SandboxSpec.inputs key {k!r}: must be a plain name (visible at work/<key>)")
        if not Path(p).exists():
            raise ValueError(f"SandboxSpec.inputs[{k!r}] = {p}: does not exist")
        if _shipped(os.path.join(spec.work, k)):
            raise ValueError(f"SandboxSpec.inputs key {k!r}: the work dir already has {k} (it would be hidden)")
    w = os.path.realpath(spec.work)
    pd = os.path.realpath(spec.private_dir)
    if pd == w or pd.startswith(w + "/") or any(pd.startswith(os.path.realpath(s) + "/") for s in spec.shared):
        raise ValueError(f"SandboxSpec.private_dir {spec.private_dir} must be outside everything the child sees")


def _shipped(path: str) -> bool:
    """Something other than an empty mount point (left by an earlier run over the same work dir)."""
    if os.path.islink(path) or (os.path.isfile(path) and os.path.getsize(path)):
        return True
    return os.path.isdir(path) and bool(os.listdir(path))


def _isolation_mode(spec: SandboxSpec) -> tuple[bool, str]:
    """(namespaced, why) — raises CannotIsolate when refused and weak isolation is not allowed."""
    ok, how = (False, f"{ENV_SANDBOX_FORCE_NO_NS} is set") if _forced_off() else namespaces_available()
    if ok:
        return True, how
    if not spec.weak_isolation:
        raise CannotIsolate(f"cannot isolate the artifact: {how}")
    return False, how


def start(spec: SandboxSpec) -> Running:
    """Start the artifact under the supervisor; returns once the sandbox is set up.

    Raises :class:`CannotIsolate` when namespaces are refused (by the OS, or while setting up
    the mounts) and ``spec.weak_isolation`` is not set."""
    _check_spec(spec)
    namespaced, how = _isolation_mode(spec)
    try:
        return _start(spec, namespaced, how)
    except _SetupFailed as e:
        if not namespaced:
            raise OSError(f"cannot start the sandboxed run: {e}") from None
        if not spec.weak_isolation:
            raise CannotIsolate(f"cannot isolate the artifact: sandbox set-up failed: {e}") from None
        return _start(spec, False, f"namespace set-up failed: {e}")


class _SetupFailed(GolfError):
    pass


def _start(spec: SandboxSpec, namespaced: bool, how: str) -> Running:
    priv = Path(spec.private_dir)
    priv.mkdir(parents=True, exist_ok=True)
    python = spec.python or sys.executable
    exposure = environment.resolve(python, tuple(spec.packages), spec.device)
    status_r, status_w = os.pipe()
    cfg = _config(spec, namespaced, status_w, python, exposure)
    cg = cgroup.create(spec.limits.processes) if spec.limits.processes else None
    cfg["cgroup_procs"] = str(cg / "cgroup.procs") if cg else None
    cfg_path = priv / "sandbox.json"
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    cmd = [os.path.realpath(getattr(sys, "_base_executable", sys.executable)), "-I", "-S", "-B", str(LAUNCHER),
           str(cfg_path)]
    if namespaced:
        cmd = [shutil.which("unshare") or "unshare", *UNSHARE_OPTS, "--", *cmd]
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    out = os.open(priv / "stdout.txt", flags, 0o600)
    err = os.open(priv / "stderr.txt", flags, 0o600)
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                pass_fds=(status_w, *spec.pass_fds), start_new_session=True,
                                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    finally:
        os.close(out)
        os.close(err)
        os.close(status_w)
    first, rest = _read_first_status(status_r, READY_TIMEOUT_S)
    if "ready" not in first:
        _abort(proc, status_r)
        if cg:
            cgroup.remove(cg)
        raise _SetupFailed(first.get("error", "unknown") + ": "
                           + _read_capped(priv / "stderr.txt", 2000).decode("utf-8", "replace").strip())
    in_cg = bool(cg and first["ready"].get("cgroup"))
    isolation = {"namespaces": list(NAMESPACES) if namespaced else [], "weak": not namespaced,
                 "how": (how if namespaced else f"no namespaces ({how}): plain process with rlimits; WEAK")
                 + (f"; task limit: pids cgroup {cg}" if in_cg else "; task limit: RLIMIT_NPROC + supervisor count"),
                 "pid_ns": first["ready"].get("pid_ns"), "pids_cgroup": str(cg) if in_cg else None}
    run = Running(spec, proc, status_r, isolation, exposure, t0)
    run._cgroup = cg
    run._ns_fd = _pin_pid_ns(proc.pid, isolation["pid_ns"]) if namespaced else None
    run._status_buf = rest
    return run


def _abort(proc: subprocess.Popen, status_r: int) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    os.close(status_r)


def run(spec: SandboxSpec, heartbeat: Callable[[float], None] | None = None) -> RunResult:
    """Start, wait (calling ``heartbeat(elapsed_s)`` every few seconds) and return the result."""
    r = start(spec)
    next_beat = HEARTBEAT_S
    while r.poll() is None:
        time.sleep(0.05)
        if heartbeat and r.elapsed >= next_beat:
            heartbeat(r.elapsed)
            next_beat += HEARTBEAT_S
    return r.wait()


# ---------------------------------------------------------------------------- report checks



def _codes() -> dict[str, int]:
    """verdict/check -> exit code (golf.protocol's table)."""
    return {"exit": EXIT_RUNTIME, "timeout": EXIT_TIMEOUT, "network": EXIT_NETWORK, "access": EXIT_ACCESS,
            "memory": EXIT_MEMORY, "cpu-time": EXIT_CPU_TIME, "file-size": EXIT_FILE_SIZE,
            "processes": EXIT_PROCESSES, "survivors": EXIT_PROCESSES, "cannot-isolate": EXIT_CANNOT_ISOLATE}


def _under(path: str, roots) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def outside_code(result: RunResult) -> list[str]:
    """Code files opened from anywhere the pinned environment does not expose (outside the work dir, the
    private /tmp and the recorder): the installed golf, an unlisted distribution, the host's /usr ..."""
    return reads.invisible_code(reads.outside_reads(result))


def _listing(items: list, n: int = 5) -> str:
    return "; ".join(str(x) for x in items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def isolation_checks(result: RunResult) -> list[Check]:
    """How the run was isolated, and what the recorder saw that breaks the rules."""
    codes, iso = _codes(), result.isolation
    weak = bool(iso.get("weak"))
    checks = [Check("isolation.namespaces", WARN if weak else PASS, measured=", ".join(iso.get("namespaces") or [])
                    or "none", message=iso.get("how", "")
                    + ("; every check of this report is weakly isolated" if weak else ""))]
    net = result.of("net")
    none = "no network attempt" + ("" if weak else " (none possible: empty network namespace)")
    checks.append(Check("isolation.network", FAIL if net else PASS, measured=len(net), limit=0,
                        exit_code=codes["network"],
                        message=f"{len(net)} network attempt(s): " + _listing([f"{e.get('event')} {e.get('args')}"
                                                                               for e in net], 3)
                        if net else none))
    checks += _environment_checks(result, codes["access"])
    spawns = result.of("spawn")
    if spawns:
        checks.append(Check("isolation.processes", FAIL if weak else WARN, measured=len(spawns),
                            exit_code=codes["network"], message=f"{len(spawns)} process spawn(s) recorded: "
                            + _listing([e.get("event") for e in spawns], 3)
                            + (": not contained without namespaces" if weak else
                               " (contained: same namespaces and limits, killed with the run)")))
    tamper = result.of("tamper")
    checks.append(Check("isolation.recorder", FAIL if tamper else PASS, measured=len(tamper), limit=0,
                        exit_code=codes["access"], message=("tampering with the recorder: "
                                                            + _listing([e.get("how") for e in tamper], 3))
                        if tamper else "no sign of tampering with the recorder"))
    checks.append(Check("isolation.survivors", FAIL if result.survivors else PASS, measured=result.survivors,
                        limit=0, exit_code=codes["survivors"],
                        message="processes left after the run was ended" if result.survivors else
                        "no process outlived the run"))
    return checks


def _environment_checks(result: RunResult, code: int) -> list[Check]:
    """``isolation.code`` (code only from the work dir and the pinned environment; imports that failed because
    their module is not exposed) and ``isolation.reads`` (non-code files over the limit read from outside)."""
    listed = reads.outside_reads(result)
    bad, missing = reads.invisible_code(listed), reads.failed_imports(result)
    mods = reads.modules(result, listed)
    dists = sorted({f"{m['distribution']} {m['version']}" for m in mods if m["distribution"]})
    where = "listed in the JSON report under runs.<run>.environment"
    if bad or missing:
        msg = "; ".join(filter(None, [
            "code from outside the artifact and the pinned environment: " + _listing(bad) if bad else "",
            "import of a module that is not in the pinned environment: " + _listing(
                [reads.why_missing(m, result.exposure) for m in missing]) if missing else ""]))
    else:
        msg = (f"all code from the artifact or the pinned environment; {len(mods):,} module file(s) from "
               f"{len(dists)} distribution(s) outside the work dir ({_listing(dists, 6)}), {where}")
    big = reads.big_reads(result, listed)
    checks = [Check("isolation.code", FAIL if bad or missing else PASS, measured=len(bad) + len(missing), limit=0,
                    exit_code=code, message=msg)]
    checks.append(Check("isolation.reads", FAIL if big else PASS, measured=len(big), limit=0, exit_code=code,
                        message=(f"non-code file(s) over {reads.READ_LIMIT_BYTES:,} bytes read from outside the "
                                 "work dir: " + _listing([f"{r['path']} ({r['size']:,} B)" for r in big]))
                        if big else f"{len(listed):,} file(s) read from outside the work dir, none of them a "
                                    f"non-code file over {reads.READ_LIMIT_BYTES:,} bytes; {where}"))
    return checks


def limit_checks(result: RunResult, limits: Limits) -> list[Check]:
    """One check per limit (wall, CPU, memory, file size, processes) and the exit status."""
    codes, v = _codes(), result.verdict

    def one(name, verdict, measured, limit, what):
        hit = v == verdict
        return Check(name, FAIL if hit else PASS, measured=measured, limit=limit, exit_code=codes[verdict],
                     message=(f"{what} limit exceeded: the run was stopped" if hit else what))

    checks = [one("limits.wall", "timeout", round(result.wall_s, 3), limits.wall_s, "wall clock"),
              one("limits.cpu", "cpu-time", result.cpu_s, limits.cpu_s, "CPU seconds of the process tree"),
              one("limits.memory", "memory", None, limits.memory_bytes, "address space per process"),
              one("limits.file_size", "file-size", None, limits.file_bytes, "largest file written"),
              one("limits.processes", "processes", result.max_tasks, limits.processes, "tasks (threads included)")]
    if v == "exit":
        ex = result.of("exception")
        why = f"{ex[-1].get('type')}: {ex[-1].get('message')}" if ex else _last_line(result.stderr)
        checks.append(Check("run.exit", FAIL, measured=result.returncode, limit=0, exit_code=codes["exit"],
                            message=f"exited with status {result.returncode}: {why}".strip()))
    else:  # a breach is reported by its own limits.* check (or isolation.survivors), not twice
        checks.append(Check("run.exit", PASS if v == "ok" else SKIP, measured=result.returncode,
                            message=f"finished in {result.wall_s:.2f} s" if v == "ok" else f"stopped: {v}"))
    return checks


def cannot_isolate_check(exc: CannotIsolate) -> Check:
    """The failing check for a run that could not be isolated (the report's only isolation verdict)."""
    return Check("isolation.namespaces", FAIL, measured="none", exit_code=EXIT_CANNOT_ISOLATE,
                 message=f"{exc}; --weak-isolation runs it without namespaces (every check is then marked weak)")


def mark_weak(checks: list[Check]) -> list[Check]:
    """Mark every check as weakly isolated (runs allowed without namespaces)."""
    for c in checks:
        if "[weak isolation]" not in c.message:
            c.message = (c.message + " [weak isolation]").strip()
    return checks


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "(no error output)"
