"""The pinned environment: exactly which host files the sandboxed interpreter can see.

:func:`resolve` decides, from outside the sandbox, what is bound read-only into it:

- the interpreter: its executable (and every symlink on the way to it), ``pyvenv.cfg``, and
  its stdlib directories, minus their ``site-packages`` / ``dist-packages``;
- the files of an allow-list of distributions (:data:`DEFAULT_PACKAGES` + ``extra``, closed
  over ``Requires-Dist``), taken from their ``RECORD``: each top-level entry of a site dir that
  holds an allowed file is bound, and inside it every file that no allowed distribution lists
  (and that is not the ``__pycache__`` of a listed source) is masked, as is every listed
  non-code file over :data:`READ_LIMIT_BYTES` (weights cannot be parked in an allowed package);
- the shared libraries all of that needs (``ldd`` of the executable and of every bound ``.so``),
  and ``/etc/ld.so.cache``.

Nothing else of the verifier's environment, of the base interpreter's prefix or of ``/usr`` is
visible, so a module of an unlisted distribution cannot be imported inside: the enforcement
rests on these binds, not on anything the artifact's process reports.  The distribution
lookup runs in the allowed interpreter (:mod:`golf.verifier.sandbox.describe_env`), and the
result is cached per process.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from golf.errors import GolfError

DEFAULT_PACKAGES = ("torch", "numpy", "sentencepiece", "brotli")
NEVER_ALLOWED = ("golf",)         # the installed golf is no part of any artifact
READ_LIMIT_BYTES = 64 << 10       # a non-code file larger than this is not bound, and reading one fails
CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyw", ".so", ".pth", ".pyd")
SITE_DIRS = ("site-packages", "dist-packages")
SYSTEM_FILES = ("/etc/ld.so.cache",)
CUDA_LIB_PREFIXES = ("libcuda.so", "libnvidia-", "libnvcuvid", "libcudadebugger")  # dlopen()ed driver libraries
DESCRIBE = Path(__file__).with_name("describe_env.py")
MAX_LINKS = 40


class EnvironmentError_(GolfError):  # noqa: N801  (not the builtin EnvironmentError)
    """The allowed environment cannot be resolved (unknown package, a package that is never allowed)."""


def is_code(path: str) -> bool:
    name = os.path.basename(path)
    return name.endswith(CODE_SUFFIXES) or ".so." in name


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Exposure:
    """What the sandbox binds (all host paths, bound at the same path inside)."""
    python: str
    version: str
    binds: list[str] = field(default_factory=list)             # read-only binds (files or dirs, real paths)
    masks: list[str] = field(default_factory=list)             # inside the binds: hidden (empty file / tmpfs)
    links: list[tuple[str, str]] = field(default_factory=list)  # symlinks recreated (path, target)
    owners: dict[str, tuple[str, str]] = field(default_factory=dict)  # allowed file -> (distribution, version)
    packages: dict[str, str] = field(default_factory=dict)     # allowed distribution -> version
    stdlib: list[str] = field(default_factory=list)
    site: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)          # listed non-code files over the limit, masked
    missing: list[str] = field(default_factory=list)           # asked for but not installed
    installed: dict[str, list[str]] = field(default_factory=dict)  # every installed top-level module -> dists

    def visible(self, path: str) -> bool:
        """Whether ``path`` (as seen inside) is a file the binds expose and no mask hides."""
        p = os.path.normpath(path)
        if _under(p, self.masks):
            return False
        return _under(p, self.binds)

    def owner(self, path: str) -> tuple[str, str] | None:
        """(distribution, version) of a visible file: an allowed distribution's, or the interpreter's stdlib."""
        real = os.path.realpath(path)
        if real in self.owners:
            return self.owners[real]
        if self.visible(real) and _under(real, self.stdlib):
            return ("python (stdlib)", self.version)
        return None

    def module(self, path: str) -> str | None:
        """The dotted module name of a code file under a site or stdlib dir."""
        real = os.path.realpath(path)
        for root in sorted(self.site + self.stdlib, key=len, reverse=True):
            if _under(real, [root]):
                rel = os.path.relpath(real, root).split(os.sep)
                if rel[0] == "lib-dynload":
                    rel = rel[1:]
                rel = [p for p in rel if p != "__pycache__"]
                if not rel:
                    return None
                rel[-1] = rel[-1].split(".")[0]
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                return ".".join(rel) or None
        return None

    def summary(self) -> dict:
        return {"python": self.python, "python_version": self.version, "packages": dict(sorted(self.packages.items())),
                "missing": self.missing, "binds": self.binds, "masked": len(self.masks),
                "withheld_large_files": len(self.withheld), "links": [f"{a} -> {b}" for a, b in self.links]}


def _under(path: str, roots) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _chain(path: str, links: dict[str, str], depth: int = 0) -> str:
    """The real path of ``path``; every symlink met on the way is added to ``links`` (at a real parent)."""
    if depth > MAX_LINKS:
        raise EnvironmentError_(f"{path}: too many symlinks")
    parts = [p for p in os.path.abspath(path).split("/") if p]
    cur = "/"
    for i, part in enumerate(parts):
        nxt = os.path.join(cur, part)
        if os.path.islink(nxt):
            target = os.readlink(nxt)
            links[nxt] = target
            rest = "/".join(parts[i + 1:])
            base = os.path.normpath(os.path.join(cur, target))
            return _chain(os.path.join(base, rest) if rest else base, links, depth + 1)
        cur = nxt
    return cur


def _describe(python: str, names: tuple[str, ...]) -> dict:
    r = subprocess.run([python, "-I", str(DESCRIBE), *names], capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    if r.returncode:
        raise EnvironmentError_(f"cannot describe the python environment of {python}: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout)


def _ldd(files: list[str]) -> set[str]:
    """Every shared library (absolute path) the given ELF files load, as ldd resolves them on this host."""
    exe = shutil.which("ldd")
    if not exe or not files:
        return set()
    out = set()
    for i in range(0, len(files), 200):
        r = subprocess.run([exe, *files[i:i + 200]], capture_output=True, text=True, timeout=300,
                           env={"PATH": "/usr/bin:/bin", "LANG": "C"})
        for line in r.stdout.splitlines():
            m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s+(/\S+)\s+\(0x", line)
            if m:
                out.add(m.group(1))
    return out


def _cuda_driver_libs() -> set[str]:
    exe = shutil.which("ldconfig") or "/sbin/ldconfig"
    try:
        r = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=30)
    except OSError:
        return set()
    out = set()
    for line in r.stdout.splitlines():
        name, _, path = line.strip().partition(" => ")
        if name.startswith(CUDA_LIB_PREFIXES) and path.startswith("/"):
            out.add(path)
    return out


def _bind_stdlib(env: Exposure, desc: dict, links: dict, binds: set) -> None:
    for d in desc["stdlib"]:
        real = _chain(d, links)
        env.stdlib.append(real)
        if not os.path.isdir(real):
            continue
        for name in sorted(os.listdir(real)):
            if name in SITE_DIRS:
                continue
            p = os.path.join(real, name)
            if os.path.islink(p):
                links[p] = os.readlink(p)
            else:
                binds.add(p)


def _owned_files(env: Exposure, desc: dict) -> dict[str, set[str]]:
    """{top-level entry of a site dir: the allowed files under it}; fills ``env.owners``."""
    sites = {s: os.path.realpath(s) for s in desc["site"]}
    env.site = sorted(set(sites.values()))
    tops: dict[str, set[str]] = {}
    for info in desc["dists"].values():
        for f in info["files"]:
            f = os.path.normpath(f)
            site = next((s for s in sites if f.startswith(s + "/")), None)
            if site is None:
                continue  # scripts in bin/, headers in include/: not needed inside
            real = sites[site] + f[len(site):]  # (a file behind a symlinked dir is masked by the walk)
            env.owners[real] = (info["name"], info["version"])
            top = os.path.join(sites[site], f[len(site) + 1:].split("/")[0])
            tops.setdefault(top, set()).add(real)
    return tops


def _cache_of_owned(path: str, owned: set[str]) -> bool:
    """``pkg/__pycache__/mod.cpython-311.pyc`` of an owned ``pkg/mod.py``."""
    d, name = os.path.split(path)
    if os.path.basename(d) != "__pycache__" or not name.endswith(".pyc"):
        return False
    return os.path.join(os.path.dirname(d), name.split(".")[0] + ".py") in owned


def _bind_top(env: Exposure, top: str, owned: set[str], binds: set) -> None:
    """Bind one top-level site entry; mask what is not an allowed file, and allowed non-code files over the limit."""
    def too_big(p):
        return not is_code(p) and os.path.getsize(p) > READ_LIMIT_BYTES
    if not os.path.isdir(top):
        if not too_big(top):
            binds.add(top)
        else:
            env.withheld.append(top)
        return
    binds.add(top)
    dirs_owned = {os.path.dirname(p) for p in owned}
    dirs_owned |= {d for p in list(dirs_owned) for d in _parents(p, top)}
    for root, dirs, files in os.walk(top):
        for d in list(dirs):
            p = os.path.join(root, d)
            if os.path.islink(p) or (p not in dirs_owned and d != "__pycache__"):
                env.masks.append(p)
                dirs.remove(d)
        for f in files:
            p = os.path.join(root, f)
            if p in owned and not os.path.islink(p):
                if too_big(p):
                    env.masks.append(p)
                    env.withheld.append(p)
            elif not _cache_of_owned(p, owned):
                env.masks.append(p)


def _parents(path: str, top: str):
    while _under(path, [top]) and path != top:
        path = os.path.dirname(path)
        yield path


@lru_cache(maxsize=8)
def resolve(python: str, extra: tuple[str, ...] = (), device: str = "cpu") -> Exposure:
    """The exposure for ``python`` with the default packages plus ``extra`` (cached per process)."""
    bad = [n for n in extra if _norm(n) in NEVER_ALLOWED]
    if bad:
        raise EnvironmentError_(f"--allow-package {bad[0]}: golf itself is never visible to an artifact")
    desc = _describe(python, tuple(dict.fromkeys(DEFAULT_PACKAGES + tuple(extra))))
    unknown = [n for n in extra if _norm(n) in desc["missing"]]
    if unknown:
        raise EnvironmentError_(f"--allow-package {unknown[0]}: no such distribution is installed for {python}")
    for k in [k for k in desc["dists"] if k in NEVER_ALLOWED]:
        del desc["dists"][k]  # (a dependency of an allowed package never brings golf in)
    env = Exposure(python=python, version=desc["version"], missing=desc["missing"], installed=desc["installed"],
                   packages={i["name"]: i["version"] for i in desc["dists"].values()})
    links: dict[str, str] = {}
    binds: set[str] = {_chain(python, links)}
    cfg = os.path.join(desc["prefix"], "pyvenv.cfg")
    if os.path.isfile(cfg):
        binds.add(_chain(cfg, links))
    _bind_stdlib(env, desc, links, binds)
    for top, owned in sorted(_owned_files(env, desc).items()):
        _bind_top(env, top, owned, binds)
    elf = [p for p in env.owners if is_code(p) and not p.endswith((".py", ".pyc", ".pth"))]
    for d in env.stdlib:
        dyn = os.path.join(d, "lib-dynload")
        if os.path.isdir(dyn):
            elf += [os.path.join(dyn, f) for f in os.listdir(dyn) if f.endswith(".so")]
    elf.append(os.path.realpath(python))
    libs = _ldd(sorted(set(elf))) | set(SYSTEM_FILES) | (_cuda_driver_libs() if device == "cuda" else set())
    for lib in sorted(libs):
        if os.path.exists(lib):
            binds.add(_chain(lib, links))
    env.binds = _outermost(binds)
    env.links = sorted((p, t) for p, t in links.items() if not _under(p, env.binds) and p not in env.binds)
    env.masks = sorted(set(env.masks))
    return env


def _outermost(paths: set[str]) -> list[str]:
    """Sorted, without any path under another one (a bound dir already shows what is below it)."""
    kept = set()
    for p in sorted(paths, key=lambda q: q.count("/")):
        if not any(a in kept for a in _ancestors(p)):
            kept.add(p)
    return sorted(kept)


def _ancestors(path: str):
    while path not in ("/", ""):
        path = os.path.dirname(path)
        yield path
