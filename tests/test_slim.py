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
        codegen.shipped_source(True)


def test_shipped_sources_are_slim_and_toolkit_free():
    text, mods, notes = codegen.shipped_source(True)
    assert "TOOLKIT" not in text and "metrics.jsonl" not in text and "HubSync" not in text
    assert "save_checkpoint" not in text and "tqdm" not in text
    assert any("unused" in n for n in notes)
    ast.parse(text)
    assert slim.undefined_globals(text) == set()
    slimmed, _ = codegen.generate(GolfConfig(), "lzma")
    plain, _ = codegen.generate(GolfConfig(), "lzma", slim=False)
    assert len(slimmed) < 0.85 * len(plain)


def test_generation_is_deterministic():
    a, _ = codegen.generate(GolfConfig(), "brotli")
    b, _ = codegen.generate(GolfConfig(), "brotli")
    assert a == b


def _flat(mods: dict[str, str]) -> str:
    return ast.unparse(slim.flatten({m: ast.parse(src) for m, src in mods.items()}))


def test_flatten_merges_modules_into_one_namespace():
    mods = {
        "golf.b": ("from __future__ import annotations\nimport os\nfrom golf.a import f, X as Y\n"
                   "from golf import a as A\n"
                   "def g():\n    from golf.a import E as Err\n    return f() + Y + A.X + issubclass(Err, ValueError)\n"
                   "def k(A):\n    return A.real\n"),  # a parameter shadows the module alias: left alone
        "golf.a": ("from __future__ import annotations\nimport os\nX = 1\n"
                   "def f():\n    return X + len(os.sep)\nclass E(ValueError):\n    pass\n"),
        "golf": "",
    }
    src = _flat(mods)
    assert "golf" not in src and src.count("import os") == 1 and src.startswith("from __future__ import annotations")
    assert src.index("def f") < src.index("def g")  # a module comes after the ones it imports
    assert _run(src)["g"]() == 2 + 1 + 1 + 1 and _run(src)["k"](3) == 3
    assert slim.undefined_globals(src) == set()


@pytest.mark.parametrize("mods, match", [
    ({"golf.a": "X = 1\n", "golf.b": "X = 2\n"}, "'X' means different things in golf.a and golf.b"),
    ({"golf.a": "import numpy as np\n", "golf.b": "np = 3\n"}, "'np'"),
    ({"golf.a": "def open():\n    return 1\n", "golf.b": "def g():\n    return open('f')\n"}, "golf.b reads 'open'"),
    ({"golf.a": "X = 1\n", "golf.b": "import golf.a\n"}, "cannot be shipped"),
    ({"golf.a": "X = 1\n", "golf.b": "from golf.a import Y\ndef g():\n    return Y\n"}, "does not define it"),
    ({"golf.a": "X = 1\n", "golf.b": "def g():\n    from golf.a import X\n    X = 2\n    return X\n"},
     "imports X and also assigns it"),
])
def test_flatten_refuses_modules_that_disagree(mods, match):
    with pytest.raises(slim.SlimError, match=match):
        _flat(mods)


def test_build_flags_fold_and_drop_unreachable_code():
    src = ("def run():\n    if not TRAIN_CODE:\n        print('no training path')\n        return 2\n"
           "    from golf.trainer.loop import train\n    return train()\n")
    off = ast.unparse(slim.fold_toolkit(ast.parse(src), {"TRAIN_CODE": False}))
    assert "train()" not in off and "golf.trainer" not in off and "return 2" in off
    on = ast.unparse(slim.fold_toolkit(ast.parse(src), {"TRAIN_CODE": True}))
    assert "no training path" not in on and "return train()" in on


def test_dead_constant_stores_are_dropped():
    # a class attribute is not a dead store
    src = ("def f(c0):\n    hub = None\n    bar = c = 0\n    n = 0\n    n += 1\n    done = False\n"
           "    def inner():\n        nonlocal done\n        done = True\n    inner()\n    c += c0\n"
           "    class K:\n        unread = 0\n    return c + n + done + K.unread\n")
    tree = ast.parse(src)
    slim.shake({"m": tree}, roots=[ast.parse("f")])
    out = ast.unparse(tree)
    assert "hub" not in out and "bar" not in out and "n = 0" in out and "c = 0" in out and "done = False" in out
    assert "unread = 0" in out
    assert _run(out)["f"](5) == _run(src)["f"](5) == 7


def test_dataclass_field_types_are_erased_but_markers_kept():
    src = ("from dataclasses import dataclass, field\nfrom typing import ClassVar\n@dataclass\nclass C:\n"
           "    a: int = 1\n    b: tuple[int, ...] = ()\n    c: list = field(default_factory=list)\n"
           "    K: ClassVar[int] = 3\n")
    tree = ast.parse(src)
    assert slim.erase_field_types(tree) == 3
    out = ast.unparse(tree)
    assert "ClassVar[int]" in out and "int = 1" not in out
    import dataclasses
    import sys
    import types

    mod = types.ModuleType("erased_fields")
    sys.modules[mod.__name__] = mod  # dataclasses resolves string annotations through the module
    try:
        exec(compile(out, "<t>", "exec"), mod.__dict__)
    finally:
        del sys.modules[mod.__name__]
    C = mod.C
    assert [f.name for f in dataclasses.fields(C)] == ["a", "b", "c"] and C().a == 1 and C.K == 3


def test_protocol_constants_are_inlined_where_read_unless_rebound():
    trees = {"golf.protocol": ast.parse('LIMIT = 16\nNAME = "x.py"\nTABLE = {1: "a"}\n'),
             "golf.a": ast.parse("from golf.protocol import LIMIT, NAME as N, TABLE\n"
                                 "def f(n):\n    return (n <= LIMIT, f'{N}!', TABLE[1])\n"),
             "golf.b": ast.parse("from golf.protocol import NAME\ndef g():\n    NAME = 'y'\n    return NAME\n")}
    assert slim.inline_constants(trees, "golf.protocol") == 2
    a, b = ast.unparse(trees["golf.a"]), ast.unparse(trees["golf.b"])
    assert "from golf.protocol import TABLE" in a and "LIMIT" not in a and " N" not in a  # a dict stays a name
    body = a.split("\n", 1)[1]  # without the import of TABLE
    assert _run(body + "\nout = f(16)", TABLE={1: "a"})["out"] == (True, "x.py!", "a")
    assert b.startswith("from golf.protocol import NAME")  # rebound in g: left alone
    slim.shake(trees, roots=[ast.parse("f\ng")])
    assert [ast.unparse(n) for n in trees["golf.protocol"].body] == ["NAME = 'x.py'", "TABLE = {1: 'a'}"]  # LIMIT: gone


def test_shipped_code_reads_protocol_literals_not_globals():
    src, _, _ = codegen.shipped_source(include_train=False, slim=True, minify=False)
    assert "'GOLF_MODE'" in src and "final_int6_roundtrip" in src and "ENV_MODE" not in src
    assert "LIMIT_BYTES" not in src and "EXIT_NAMES" not in src  # toolkit-only constants are not shipped
