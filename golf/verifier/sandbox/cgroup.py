"""A per-run pids cgroup: a kernel-enforced task limit for the whole sandbox tree (best effort).

``RLIMIT_NPROC`` does not bind a verifier running as root (uid 0 is exempt), and the
supervisor's own count of the tree is a 50 ms poll.  Where this process may create a child
cgroup with the pids controller (cgroup v1 ``pids`` hierarchy, or cgroup v2 with ``pids``
enabled in our cgroup's ``subtree_control``), :func:`create` makes one with ``pids.max`` set;
the supervisor moves itself into it before it forks the artifact, so every descendant is
counted and ``fork``/``clone`` fail with ``EAGAIN`` at the limit.  Without it the other two
mechanisms still apply; the result says which were used.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

CONTROLLER = "pids"
PREFIX = "golf-sandbox-"


def _mounts() -> list[tuple[str, str, list[str]]]:
    """(mount point, fs type, super options) of every cgroup mount."""
    out = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        left, _, right = line.partition(" - ")
        parts, rparts = left.split(), right.split()
        if len(parts) > 4 and len(rparts) > 2 and rparts[0] in ("cgroup", "cgroup2"):
            out.append((parts[4], rparts[0], rparts[2].split(",")))
    return out


def _own_paths() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path."""
    out = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, ctrls, path = line.split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                out[c] = path
    except (OSError, ValueError):
        pass
    return out


def _parent_dir() -> Path | None:
    """Where a child cgroup with the pids controller can be created, if anywhere."""
    own = _own_paths()
    for mnt, fstype, opts in _mounts():
        if fstype == "cgroup" and CONTROLLER in opts and CONTROLLER in own:
            d = Path(mnt + own[CONTROLLER])
        elif fstype == "cgroup2" and "" in own:
            d = Path(mnt + own[""])
            try:
                if CONTROLLER not in (d / "cgroup.subtree_control").read_text().split():
                    continue
            except OSError:
                continue
        else:
            continue
        if d.is_dir() and os.access(d, os.W_OK):
            return d
    return None


def create(max_tasks: int) -> Path | None:
    """A fresh cgroup with ``pids.max = max_tasks``; None when not possible here."""
    parent = _parent_dir()
    if parent is None:
        return None
    d = parent / f"{PREFIX}{os.getpid()}-{time.monotonic_ns()}"
    try:
        d.mkdir()
        (d / "pids.max").write_text(str(max_tasks))
    except OSError:
        remove(d)
        return None
    return d


def denied(d: Path) -> int:
    """How many forks the limit refused (``pids.events`` max count)."""
    try:
        for line in (d / "pids.events").read_text().splitlines():
            k, _, v = line.partition(" ")
            if k == "max":
                return int(v)
    except (OSError, ValueError):
        pass
    return 0


def remove(d: Path, wait_s: float = 2.0) -> bool:
    """Remove the cgroup once its processes are gone (killed tasks take a moment to leave)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            d.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
