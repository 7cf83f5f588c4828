"""What a sandboxed run read from outside its work dir: the listing for the report, and the checks on it.

The listing comes from the recorder (an audit hook in the artifact's own interpreter), so it is
a *claim*: an artifact can blind it.  The enforcement does not rest on it.  What the artifact
can load is fixed from outside by the binds of :mod:`golf.verifier.sandbox.environment`: an
unlisted distribution is simply absent, and a listed non-code file over the limit is masked.
The recorder's listing is used (1) as information (every module imported from outside the
work dir with its distribution and version, every file read with its size, as the host
sees the bound file), and (2) to fail a run on what it admits: code opened from anywhere not
visible, an import that failed because its module is not in the allowed environment, a
non-code file over :data:`~golf.verifier.sandbox.environment.READ_LIMIT_BYTES` read from
outside.  A lie by omission cannot make a hidden file visible; it can only lose the listing.
"""
from __future__ import annotations

import os
import re

from golf.verifier.sandbox.environment import READ_LIMIT_BYTES, Exposure, is_code

PRIVATE_DIRS = ("/tmp", "/dev/shm")            # the run's own tmpfs: what is there, the artifact wrote
VIRTUAL_DIRS = ("/proc", "/dev", "/sys")       # kernel files: listed, no size
RECORDER_DIR = "/.golf-sandbox"
_NO_MODULE = re.compile(r"No module named '([^']+)'")


def _under(path: str, roots) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def inside_path(path: str, work: str) -> str:
    """``/proc/self/cwd/x`` -> work/x (the cwd the run started in), ``/proc/*/root/x`` -> /x, else as is."""
    parts = path.split("/")
    if len(parts) > 3 and parts[1] == "proc" and parts[3] in ("cwd", "root") and (
            parts[2] in ("self", "thread-self") or parts[2].isdigit()):
        rest = "/".join(parts[4:])
        return os.path.normpath((work if parts[3] == "cwd" else "/") + "/" + rest)
    return os.path.normpath(path)


def outside_reads(result) -> list[dict]:
    """Every path the recorder saw opened outside the work dir and the run's private dirs, once each:
    ``{"path", "size", "code", "visible", "distribution", "version"}`` (size from the host's bound file)."""
    exp: Exposure | None = result.exposure
    out, seen = [], set()
    for e in result.of("open"):
        raw = e.get("path")
        if not isinstance(raw, str):
            continue
        p = inside_path(raw, result.work)
        if p in seen or _under(p, (result.work, RECORDER_DIR)):
            continue
        seen.add(p)
        visible = exp.visible(p) if exp is not None else False
        if _under(p, PRIVATE_DIRS) and not (exp is not None and _under(p, exp.binds)):
            continue  # the run's own /tmp (a bound environment under the host's /tmp is visible, and listed)
        size = None
        if visible and not _under(p, VIRTUAL_DIRS):
            try:
                size = os.stat(p).st_size if os.path.isfile(p) else None
            except OSError:
                size = None
        owner = exp.owner(p) if (exp is not None and visible) else None
        out.append({"path": raw if raw == p else f"{raw} ({p})", "size": size, "code": is_code(p),
                    "visible": visible, "distribution": owner[0] if owner else None,
                    "version": owner[1] if owner else None, "_p": p})
    return out


def modules(result, reads: list[dict]) -> list[dict]:
    """Every module loaded from outside the work dir: ``{"module", "distribution", "version", "path"}``."""
    exp = result.exposure
    out = []
    for r in reads:
        if r["code"] and r["visible"] and exp is not None and r["_p"].endswith((".py", ".pyc", ".so")):
            out.append({"module": exp.module(r["_p"]) or os.path.basename(r["_p"]), "distribution": r["distribution"],
                        "version": r["version"], "path": r["_p"]})
    return out


def failed_imports(result) -> list[str]:
    """Modules whose import ended the run because they are not there (the recorder's record of the uncaught
    exception; an import the artifact catches and survives did not load anything)."""
    names = set()
    for e in result.of("exception"):
        if e.get("type") in ("ModuleNotFoundError", "ImportError"):
            names.update(_NO_MODULE.findall(str(e.get("message", ""))))
    return sorted(names)


def why_missing(module: str, exposure: Exposure | None) -> str:
    """Why a module is not importable inside: which distribution of the allowed interpreter has it, if any."""
    dists = (exposure.installed if exposure is not None else {}).get(module.split(".")[0])
    if dists:
        return (f"'{module}' (distribution {', '.join(dists)}, installed in the verifier's environment but not "
                f"allowed: --allow-package {dists[0]})")
    return f"'{module}' (in no installed distribution)"


def environment_info(result) -> dict:
    """The report's ``environment`` block for one run: what was visible, what was loaded, what was read."""
    reads = outside_reads(result)
    info = {"exposed": result.exposure.summary() if result.exposure is not None else None,
            "modules": modules(result, reads),
            "files_read": [{k: v for k, v in r.items() if not k.startswith("_")} for r in reads],
            "failed_imports": failed_imports(result), "read_limit_bytes": READ_LIMIT_BYTES}
    return info


def invisible_code(reads: list[dict]) -> list[str]:
    """Code files opened from anywhere the binds do not expose (an attempt counts, found or not)."""
    return sorted(r["path"] for r in reads if r["code"] and not r["visible"])


def big_reads(result, reads: list[dict]) -> list[dict]:
    """Non-code files over the limit read from outside the work dir, or tried (they are masked: ``size`` is
    then the host file's)."""
    withheld = set(result.exposure.withheld) if result.exposure is not None else set()
    out = []
    for r in reads:
        if r["_p"] in withheld:
            out.append({**r, "size": os.path.getsize(r["_p"]), "withheld": True})
        elif not r["code"] and (r["size"] or 0) > READ_LIMIT_BYTES:
            out.append(r)
    return out
