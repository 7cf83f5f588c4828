"""Slimming of the shipped sources: TOOLKIT folding, tree shaking, the dangling-name check."""
from __future__ import annotations

import ast

import pytest

from golf.builder import codegen, slim
from golf.config import GolfConfig


def _fold(src: str) -> str:
    return ast.unparse(slim.fold_toolkit(ast.parse(src)))


def _run(src: str, **ns) -> dict:
    exec(compile(src, "<t>", "exec"), ns)
    return ns


def test_toolkit_blocks_are_folded_as_false():
    src = '''
from golf import TOOLKIT, something
out = []
if TOOLKIT:
    out.append("toolkit")
else:
    out.append("shipped")
if not TOOLKIT:
    out.append("not")
if TOOLKIT and out:
    out.append("and")
elif out:
    out.append("elif")
if not TOOLKIT and out:
    out.append("rest")
out.append("a" if TOOLKIT else "b")
flag = TOOLKIT or len(out) > 100
def f():
    if TOOLKIT:
        return 1
'''
    folded = _fold(src)
    assert "TOOLKIT" not in folded and "from golf import something" in folded
    assert "toolkit" not in folded and "'and'" not in folded
    ns = _run(folded.replace("from golf import something", ""))
    assert ns["out"] == ["shipped", "not", "elif", "rest", "b"]
    assert ns["flag"] is False and ns["f"]() is None
    # and the toolkit itself runs the other branches
    tk = _run(src.replace("from golf import TOOLKIT, something", "TOOLKIT = True"))
    assert tk["out"] == ["toolkit", "and", "a"]


def test_shake_drops_unreferenced_code_transitively_and_keeps_used():
    trees = {
        "a": ast.parse("import os\nimport json\ndef used():\n    return helper()\ndef helper():\n    return 1\n"
                       "def dead():\n    return dead_helper()\ndef dead_helper():\n    return os.sep\n"
                       "class K:\n    def called(self):\n        return 1\n    def never(self):\n        return 2\n"
                       "    def forward(self, x):\n        return x\n"),
        "b": ast.parse("from a import used, K\ndef entry():\n    return used() + K().called()\n"),
    }
    dropped = slim.shake(trees, roots=[ast.parse("from b import entry")])
    assert {"a.dead", "a.dead_helper", "a.K.never"} <= set(dropped)
    src = ast.unparse(trees["a"])
    assert "def used" in src and "def helper" in src and "def called" in src
    assert "def forward" in src  # torch calls it by name
    assert "import os" not in src and "import json" not in src  # no longer used


def test_names_used_only_as_strings_or_attributes_are_kept():
    trees = {"a": ast.parse("def by_attr():\n    pass\ndef by_string():\n    pass\n"),
             "b": ast.parse("import a\ndef entry():\n    return a.by_attr, getattr(a, 'by_string')\n")}
    slim.shake(trees, roots=[ast.parse("entry")])
    assert "by_attr" in ast.unparse(trees["a"]) and "by_string" in ast.unparse(trees["a"])


def test_undefined_globals_are_caught():
    assert slim.undefined_globals("import os\ndef f(x):\n    return os.sep + x + str(len(x))\n") == set()
    assert slim.undefined_globals("def f():\n    return helper()\n") == {"helper"}
    assert slim.undefined_globals("def f():\n    global G\n    G = 1\ndef g():\n    return G\n") == set()
    assert slim.undefined_globals("class C:\n    y = z\n") == {"z"}


@pytest.mark.parametrize("victim", ["_run", "build_byte_luts"])
def test_codegen_refuses_a_dangling_reference(monkeypatch, victim):
    """A definition removed although still used (inside its module, or imported by another) fails the build."""
    real = slim.shake

    def overeager(trees, roots=()):
        out = real(trees, roots)
        t = trees["golf.metric"]
        t.body = [n for n in t.body if getattr(n, "name", "") != victim]
        return out

    monkeypatch.setattr(slim, "shake", overeager)
    with pytest.raises(codegen.CodegenError, match=victim):
        codegen.collect_sources(True)


def test_shipped_sources_are_slim_and_toolkit_free():
    mods, _, notes = codegen.collect_sources(True)
    text = "\n".join(mods.values())
    assert "TOOLKIT" not in text and "metrics.jsonl" not in text and "HubSync" not in text
    assert "save_checkpoint" not in text and "tqdm" not in text
    assert any("unused" in n for n in notes)
    for m, src in mods.items():
        ast.parse(src)
        assert slim.undefined_globals(src, m) == set(), m
    slimmed, _ = codegen.generate(GolfConfig(), "lzma")
    plain, _ = codegen.generate(GolfConfig(), "lzma", slim=False)
    assert len(slimmed) < 0.85 * len(plain)


def test_dangling_imports_follow_scopes():
    sources = {
        "golf.m": "def f():\n    return 1\n",
        "golf.u": ("from golf import m as M\nfrom golf.m import f\n"
                   "def g(M):\n    return M.anything\n"          # a parameter shadows the module alias
                   "def h():\n    return M.f() + f()\n"),
    }
    assert slim.dangling_imports(sources) == []
    sources["golf.u"] += "def k():\n    return M.gone\n"
    sources["golf.v"] = "from golf.m import missing\n"
    bad = slim.dangling_imports(sources)
    assert len(bad) == 2 and any("M.gone" in b for b in bad) and any("missing" in b for b in bad)


def test_generation_is_deterministic():
    a, _ = codegen.generate(GolfConfig(), "brotli")
    b, _ = codegen.generate(GolfConfig(), "brotli")
    assert a == b
