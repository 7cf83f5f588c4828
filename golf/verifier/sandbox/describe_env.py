"""Describe a Python environment for the sandbox (stdlib only; run as ``python -I describe_env.py NAME ...``).

Run by :mod:`golf.verifier.sandbox.environment` with the interpreter the artifact will get, so
the answer is about *that* interpreter's environment.  Prints one JSON object: the
interpreter, its stdlib and site directories, and every distribution reachable from the
names given through ``Requires-Dist`` (markers evaluated for this interpreter, no extras),
each with its version and the files of its ``RECORD``; names not installed are listed as
missing.  Runs in the verifier's trusted environment, never inside the sandbox.
"""
import importlib.metadata as md
import json
import re
import site
import sys
import sysconfig


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def marker_ok(marker):
    try:
        from packaging.markers import Marker
    except ImportError:
        try:
            from pip._vendor.packaging.markers import Marker
        except ImportError:  # no evaluator: only requirements tied to an extra are left out
            return "extra" not in marker
    try:
        return bool(Marker(marker).evaluate({"extra": ""}))
    except Exception:
        return True


def requires(dist):
    out = []
    for req in dist.requires or []:
        head, _, marker = req.partition(";")
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", head)
        if m and (not marker.strip() or marker_ok(marker.strip())):
            out.append(m.group(1))
    return out


def describe(names):
    todo, dists, missing = list(names), {}, []
    while todo:
        name = todo.pop(0)
        key = norm(name)
        if key in dists or key in missing:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            missing.append(key)
            continue
        deps = requires(dist)
        dists[key] = {"name": dist.metadata["Name"] or name, "version": dist.version, "requires": deps,
                      "files": [str(dist.locate_file(f)) for f in (dist.files or [])], "record": dist.files is not None}
        todo += deps
    paths = sysconfig.get_paths()
    return {"executable": sys.executable, "prefix": sys.prefix, "version": sys.version.split()[0],
            "stdlib": sorted({paths["stdlib"], paths["platstdlib"]}), "site": list(site.getsitepackages()),
            "dists": dists, "missing": missing, "installed": installed_modules()}


def installed_modules():
    """{top-level module: [distributions]} of everything installed (to name what an artifact reached for)."""
    try:
        return {k: sorted(set(v)) for k, v in md.packages_distributions().items()}
    except Exception:
        return {}


if __name__ == "__main__":
    print(json.dumps(describe(sys.argv[1:])))
