"""Run an artifact's ``train_gpt.py`` in a clean, audited child process.

The child is ``python -I -B bootstrap.py`` started in a fresh copy of the artifact with a
minimal environment.  ``bootstrap.py`` (written by :func:`write_bootstrap`, never part of
the artifact) installs a :func:`sys.addaudithook` hook *before* any artifact code runs,
then executes ``train_gpt.py`` as ``__main__`` (same ``__file__``, ``sys.argv`` and
``sys.path[0]`` as ``python train_gpt.py``).  The hook

- blocks (raises ``PermissionError``) and records every socket connect / send / name
  lookup;
- blocks and records opens of training shards (``fineweb_train_*``) and of anything under
  the user's original ``datasets/`` directory (the child only gets a staged copy of the
  validation shards and tokenizer);
- records every file opened (imports open their source through ``io.open_code``, so
  imported files are covered), every module imported and every process spawned.

Events are appended as JSON lines to an audit log the verifier reads afterwards (written
with ``os.write`` so the log survives a kill).  In addition, where the OS allows it,
the child runs in a new network namespace (``unshare --net``), which also covers native
code and sub-processes that an audit hook cannot see; whether that isolation was applied
is reported.  Wall-clock and memory (``RLIMIT_AS``) limits are enforced.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

BOOTSTRAP = r'''
import os, sys, json
_LOG = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
_SCRIPT = os.path.abspath(sys.argv[2])
_DENY_DIRS = tuple(json.loads(sys.argv[3]))
_SEEN = set()
_NET = {"socket.connect", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo", "socket.gethostbyname",
        "socket.gethostbyname_ex", "socket.gethostbyaddr", "socket.getnameinfo"}
_SPAWN = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
          "pty.spawn"}
_dumps, _write, _fspath, _abspath, _basename = json.dumps, os.write, os.fspath, os.path.abspath, os.path.basename

def _emit(rec):
    try:
        _write(_LOG, (_dumps(rec, default=repr) + "\n").encode("utf-8", "replace"))
    except Exception:
        pass

def _hook(event, args):
    if event == "open":
        path = args[0]
        if isinstance(path, int) or path is None:
            return
        try:
            p = _abspath(_fspath(path))
        except Exception:
            return
        if isinstance(p, bytes):
            p = p.decode("utf-8", "replace")
        name = _basename(p)
        if name.startswith("fineweb_train_") or any(p == d or p.startswith(d + os.sep) for d in _DENY_DIRS):
            _emit({"e": "denied_open", "path": p})
            raise PermissionError(f"golf verify: access to {p} is not allowed during evaluation")
        if p not in _SEEN:
            _SEEN.add(p)
            mode = args[1] if len(args) > 1 else None
            _emit({"e": "open", "path": p, "mode": mode if isinstance(mode, str) else repr(mode)})
    elif event == "import":
        name = args[0]
        if ("m", name) not in _SEEN:
            _SEEN.add(("m", name))
            _emit({"e": "import", "name": name})
    elif event in _NET:
        _emit({"e": "net", "event": event, "args": repr(args[1:] if event.startswith("socket.s") or
                                                        event == "socket.connect" else args)[:300]})
        raise PermissionError(f"golf verify: network access ({event}) is not allowed during evaluation")
    elif event in _SPAWN or event.startswith("os.exec") or event.startswith("os.spawn"):
        _emit({"e": "spawn", "event": event, "args": repr(args)[:300]})

sys.addaudithook(_hook)
_emit({"e": "start", "pid": os.getpid(), "executable": sys.executable})
import runpy
sys.argv = [_SCRIPT]
sys.path.insert(0, os.path.dirname(_SCRIPT))
try:
    runpy.run_path(_SCRIPT, run_name="__main__")
except SystemExit as e:
    _emit({"e": "exit", "code": e.code if isinstance(e.code, int) or e.code is None else repr(e.code)})
    raise
except BaseException as e:
    _emit({"e": "exception", "type": type(e).__name__, "message": str(e)[:2000]})
    raise
_emit({"e": "exit", "code": 0})
'''


def write_bootstrap(path: Path) -> Path:
    path.write_text(BOOTSTRAP, encoding="utf-8")
    return path


@lru_cache(maxsize=None)
def netns_prefix() -> tuple[str, ...]:
    """The ``unshare`` prefix that gives the child its own (empty) network namespace, or ``()``."""
    exe = shutil.which("unshare")
    if not exe:
        return ()
    for opts in (("--net", "--map-current-user"), ("--net", "--map-root-user"), ("--net",)):
        try:
            r = subprocess.run([exe, *opts, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if r.returncode == 0:
            return (exe, *opts)
    return ()


def minimal_env(extra: dict[str, str], home: Path, tmp: Path) -> dict[str, str]:
    """Environment for the child: no tokens or credentials, Hub offline, caches in the temp dir."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    for k in ("CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_HOME",
              "NVIDIA_VISIBLE_DEVICES", "TRITON_PTXAS_PATH"):
        if k in os.environ:
            env[k] = os.environ[k]
    env.update(extra)
    return env


@dataclass
class RunResult:
    returncode: int | None
    timed_out: bool
    wall_s: float
    stdout: str
    stderr: str
    events: list[dict] = field(default_factory=list)
    isolation: str = ""  # description of network isolation applied
    netns: bool = False
    memory_limit_bytes: int | None = None

    @property
    def opened(self) -> list[str]:
        return [e["path"] for e in self.events if e.get("e") == "open"]

    @property
    def denied(self) -> list[str]:
        return [e["path"] for e in self.events if e.get("e") == "denied_open"]

    @property
    def net(self) -> list[dict]:
        return [e for e in self.events if e.get("e") == "net"]

    @property
    def imports(self) -> list[str]:
        return [e["name"] for e in self.events if e.get("e") == "import"]

    @property
    def spawns(self) -> list[dict]:
        return [e for e in self.events if e.get("e") == "spawn"]

    @property
    def exception(self) -> dict | None:
        ex = [e for e in self.events if e.get("e") == "exception"]
        return ex[-1] if ex else None


def _read_events(path: Path) -> list[dict]:
    events = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return events
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill
    return events


def run_isolated(script: Path, work: Path, env: dict[str, str], timeout_s: float, audit_log: Path,
                 deny_dirs: list[str], memory_limit_bytes: int | None = None, use_netns: bool = True,
                 python: str | None = None, on_line=None) -> RunResult:
    """Run ``script`` (inside ``work``) through the audit bootstrap; never raises for artifact failures."""
    boot = write_bootstrap(audit_log.parent / "golf_verify_bootstrap.py")
    prefix = netns_prefix() if use_netns else ()
    cmd = [*prefix, python or sys.executable, "-I", "-B", str(boot), str(audit_log), str(script),
           json.dumps(deny_dirs)]

    def preexec() -> None:  # runs in the child between fork and exec
        if memory_limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    out_path, err_path = audit_log.parent / "stdout.txt", audit_log.parent / "stderr.txt"
    t0 = time.monotonic()
    timed_out = False
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        try:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    preexec_fn=preexec, start_new_session=True)
        except OSError as e:
            return RunResult(None, False, 0.0, "", f"cannot start the child process: {e}",
                             isolation="not started")
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    wall = time.monotonic() - t0
    stdout = out_path.read_bytes().decode("utf-8", errors="replace")
    stderr = err_path.read_bytes().decode("utf-8", errors="replace")
    iso = ("network namespace (" + " ".join(prefix[1:]) + ") + audit hook") if prefix else \
        "audit hook only (no network namespace available on this OS)"
    return RunResult(None if timed_out else proc.returncode, timed_out, wall, stdout, stderr,
                     _read_events(audit_log), iso, bool(prefix), memory_limit_bytes)
