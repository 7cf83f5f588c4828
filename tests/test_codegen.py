"""Generation of train_gpt.py: safe stripping, shippable-rule checks, the in-memory importer."""
from __future__ import annotations

import ast
import base64
import lzma
import subprocess
import sys
import sysconfig


from golf.builder import codegen
from golf.config import GolfConfig


def test_strip_source_keeps_semantics():
    src = '''"""module doc"""
from __future__ import annotations
# a comment
def f(a: int, *args: str, b: "float" = 2.0, **kw: dict) -> int:
    """doc"""
    s = """plain string
    keeps    its spaces"""
    return a + len(args) + int(b) + len(kw) + len(s)


class C:
    """only a docstring"""


class D:
    x: int = 3  # annotation kept: dataclasses need it
'''
    out = codegen.strip_source(src)
    assert "doc" not in out and "comment" not in out and "-> int" not in out
    assert "x: int = 3" in out
    ns1, ns2 = {}, {}
    exec(compile(src, "a", "exec"), ns1)
    exec(compile(out, "b", "exec"), ns2)
    assert ns1["f"](1, "x", b=3.0, k=1) == ns2["f"](1, "x", b=3.0, k=1)
    assert ns2["D"].x == 3 and ns2["C"].__doc__ is None


def test_shipped_config_module_behaves_the_same():
    from pathlib import Path
    import golf.config as real

    src = codegen.strip_source(Path(real.__file__).read_text())
    mod = type(sys)("golf_config_copy")
    sys.modules["golf_config_copy"] = mod
    try:
        exec(compile(src, "cfg", "exec"), mod.__dict__)
        assert mod.GolfConfig().to_json() == real.GolfConfig().to_json()
        assert mod.ENV_VARS == real.ENV_VARS
    finally:
        del sys.modules["golf_config_copy"]


def test_check_shippable_flags_bad_imports():
    shipped = {"golf.config", "golf.metric"}
    assert codegen.check_shippable("m", "import os\nimport torch\nfrom golf.config import GolfConfig\n", shipped) == []
    probs = codegen.check_shippable("m", "import tqdm\nfrom golf.verifier import x\nfrom . import y\n", shipped)
    assert len(probs) == 3 and "tqdm" in probs[0] and "golf.verifier" in probs[1] and "relative" in probs[2]
    # lazy imports inside functions are allowed
    assert codegen.check_shippable("m", "def f():\n    import brotli\n", shipped) == []


def test_generated_wrapper_installs_modules_first():
    text, info = codegen.generate(GolfConfig(), "lzma")
    assert info["bytes"] == len(text.encode())
    lines = text.splitlines()
    assert len(lines) == 2 and lines[0] == "import lzma as L,base64 as B"
    b85 = lines[1].split('b85decode("', 1)[1].split('")', 1)[0]
    payload = lzma.decompress(base64.b85decode(b85), format=lzma.FORMAT_RAW,
                              filters=[{"id": lzma.FILTER_LZMA2}]).decode()
    ast.parse(payload)
    assert "sys.meta_path.insert(0," in payload
    assert {"golf.model.gpt", "golf.metric", "golf.builder.container", "golf.builder.entry",
            "golf.config"} <= set(info["modules"])
    # golf's own shippable list must itself be clean (else generate raises CodegenError)
    mods, _, notes = codegen.collect_sources(True)
    assert not any(m.startswith("golf.verifier") or m == "golf.builder.build" for m in mods)


def test_wrapper_runs_without_golf_and_reports_missing_blob(tmp_path):
    text, _ = codegen.generate(GolfConfig(), "lzma")
    (tmp_path / "train_gpt.py").write_text(text)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": sysconfig.get_paths()["purelib"], "GOLF_MODE": "eval"}
    p = subprocess.run([sys.executable, "-S", "-s", "train_gpt.py"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode != 0 and "no model blob" in p.stderr and "Traceback" not in p.stderr
