"""The pinned environment: only the interpreter and the allowed distributions are visible in the sandbox.

The hostile artifact of issue 22 (bytes in the Python environment are free): a tiny ``train_gpt.py``
whose model code and weights sit in a package installed into the verifier's environment.  Here the
environment is a throw-away venv (the real one is never touched) that has the package installed.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from base64 import urlsafe_b64encode
from pathlib import Path

import pytest

from golf.verifier.report import FAIL, PASS
from golf.verifier.sandbox import environment, reads
from golf.verifier.sandbox import run as sb

needs_ns = pytest.mark.skipif(not sb.namespaces_available()[0], reason="namespaces refused on this machine")
ARTIFACT = "import pkg; pkg.serve()  # weights in pkg\n"  # 42 bytes: everything else is in the environment


def _record_line(root: Path, rel: str) -> str:
    data = (root / rel).read_bytes()
    digest = urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{rel},sha256={digest},{len(data)}"


@pytest.fixture(scope="module")
def venv_with_pkg(tmp_path_factory) -> Path:
    """A venv (no pip) with distribution ``evilpkg`` installed the way pip does it: files + dist-info RECORD.
    ``pkg.serve()`` loads its weights (``small.bin`` 32 KiB, or ``big.bin`` 161,659 bytes) and prints a score."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = Path(subprocess.run([str(root / "bin" / "python"), "-c", "import site; print(site.getsitepackages()[0])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "pkg").mkdir()
    (site / "pkg" / "__init__.py").write_text(textwrap.dedent("""
        import os
        def serve():
            name = os.environ.get("PKG_WEIGHTS", "small.bin")
            with open(os.path.join(os.path.dirname(__file__), name), "rb") as f:
                w = f.read()
            print("val_bpb", 0.5, "weights", len(w))
    """))
    (site / "pkg" / "small.bin").write_bytes(b"w" * 32768)
    (site / "pkg" / "big.bin").write_bytes(b"W" * 161_659)
    info = site / "evilpkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: evilpkg\nVersion: 1.0\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "top_level.txt").write_text("pkg\n")
    rels = ["pkg/__init__.py", "pkg/small.bin", "pkg/big.bin", "evilpkg-1.0.dist-info/METADATA",
            "evilpkg-1.0.dist-info/INSTALLER", "evilpkg-1.0.dist-info/top_level.txt"]
    (info / "RECORD").write_text("\n".join([_record_line(site, r) for r in rels]
                                           + ["evilpkg-1.0.dist-info/RECORD,,"]) + "\n")
    return root


def run_in(tmp_path: Path, python: Path, packages=(), **env) -> sb.RunResult:
    work = tmp_path / "work"
    work.mkdir()
    (work / "train_gpt.py").write_text(ARTIFACT)
    assert len(ARTIFACT.encode()) == 42
    spec = sb.SandboxSpec(work=work, argv=["train_gpt.py"], private_dir=tmp_path / "private",
                          python=str(python / "bin" / "python"), packages=tuple(packages), env=env,
                          limits=sb.Limits(wall_s=60))
    return sb.run(spec)


def checks(res) -> dict:
    return {c.name: c for c in sb.isolation_checks(res)}


@needs_ns
def test_installed_package_weights_are_not_visible(venv_with_pkg, tmp_path):
    """Not allowed: the package is simply absent inside, and isolation.code fails naming the module."""
    res = run_in(tmp_path, venv_with_pkg)
    assert res.verdict == "exit" and "val_bpb" not in res.stdout
    c = checks(res)["isolation.code"]
    assert c.status == FAIL and c.exit_code == sb.EXIT_ACCESS, c.message
    assert "'pkg' (distribution evilpkg" in c.message and "--allow-package evilpkg" in c.message
    # nothing of the venv's site-packages but the allowed files (none here) is bound
    exp = res.exposure
    assert not any(exp.visible(str(p)) for p in (venv_with_pkg / "lib").rglob("pkg/*"))


@needs_ns
def test_allowed_package_is_visible_and_listed(venv_with_pkg, tmp_path):
    res = run_in(tmp_path, venv_with_pkg, packages=["evilpkg"])
    assert res.verdict == "ok", res.stderr[-2000:]
    assert "weights 32768" in res.stdout
    c = checks(res)
    assert c["isolation.code"].status == PASS and "evilpkg 1.0" in c["isolation.code"].message
    assert c["isolation.reads"].status == PASS and "listed in the JSON report" in c["isolation.reads"].message
    info = json.loads(json.dumps(reads.environment_info(res)))  # what the report carries
    mods = {m["module"]: m for m in info["modules"]}
    assert mods["pkg"]["distribution"] == "evilpkg" and mods["pkg"]["version"] == "1.0"
    assert any(m["distribution"] == "python (stdlib)" for m in info["modules"])
    small = [f for f in info["files_read"] if f["path"].endswith("pkg/small.bin")]
    assert small and small[0]["size"] == 32768 and small[0]["distribution"] == "evilpkg"
    assert "evilpkg" in info["exposed"]["packages"]


@needs_ns
def test_large_non_code_file_of_an_allowed_package_fails(venv_with_pkg, tmp_path):
    """An allowed package cannot carry the weights either: a non-code file over 64 KiB is masked (empty inside), and the
    attempt to read it fails isolation.reads with its name and size."""
    res = run_in(tmp_path, venv_with_pkg, packages=["evilpkg"], PKG_WEIGHTS="big.bin")
    assert "weights 0" in res.stdout  # masked by an empty file: not one byte of the weights is visible
    c = checks(res)["isolation.reads"]
    assert c.status == FAIL and "pkg/big.bin (161,659 B)" in c.message, c.message


def test_allow_package_refuses_golf_and_unknown_names():
    with pytest.raises(environment.EnvironmentError_, match="golf itself is never visible"):
        environment.resolve(sys.executable, ("golf",))
    with pytest.raises(environment.EnvironmentError_, match="no-such-dist-xyz: no such distribution"):
        environment.resolve(sys.executable, ("no-such-dist-xyz",))


def test_default_exposure_is_the_interpreter_and_the_allowed_distributions():
    """The verifier's own environment: torch, numpy, sentencepiece, brotli and their dependencies; no golf,
    no other package of the venv or of the base prefix, none of /usr but the libraries they load."""
    exp = environment.resolve(sys.executable)
    assert {"torch", "numpy", "sentencepiece", "brotli"} <= {k.lower() for k in exp.packages}
    import click

    import golf
    for mod in (golf, pytest, click):
        assert not exp.visible(str(Path(mod.__file__).resolve())), mod
    assert not exp.visible("/usr/bin/sh") and not exp.visible("/usr/share")
    import torch
    assert exp.visible(str(Path(torch.__file__).resolve()))
    assert exp.owner(str(Path(torch.__file__).resolve()))[0] == "torch"
