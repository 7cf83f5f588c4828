"""House rules that the code itself can check (docs/DESIGN.md, "Conventions").

(a) A function reads on one screen: none in ``golf/`` is longer than 120 lines unless its
    docstring says why, with the words ``long because``.
(b) A protocol constant is written once: the byte limit, the artifact's file names, the printed
    labels, the environment names and the exit codes appear as literals only in
    ``golf/protocol.py``; every other module imports them from there.
"""
from __future__ import annotations

import ast
from pathlib import Path

import golf
from golf import protocol

GOLF = Path(golf.__file__).resolve().parent
MAX_LINES = 120
LONG_MARKER = "long because"

# golf/verifier/sandbox/launcher.py runs as a stdlib-only script inside the sandbox with golf masked, so it
# cannot import golf.protocol; it holds none of these constants today, and is the one exception.
EXEMPT = {"protocol.py", "verifier/sandbox/launcher.py"}
# Literals still written in modules that parallel branches rewrite (issue 17); the lead removes each
# entry when merging moves the literal to golf.protocol.  An entry that no longer occurs fails too.
PENDING: dict[str, set] = {}


def _modules():
    for path in sorted(GOLF.rglob("*.py")):
        yield path.relative_to(GOLF).as_posix(), ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _length(fn: ast.AST) -> int:
    first = min([fn.lineno] + [d.lineno for d in fn.decorator_list])
    return fn.end_lineno - first + 1


def test_functions_read_on_one_screen():
    long = []
    for rel, tree in _modules():
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and _length(fn) > MAX_LINES \
                    and LONG_MARKER not in (ast.get_docstring(fn) or ""):
                long.append(f"golf/{rel}:{fn.name}:{_length(fn)} lines")
    assert not long, (f"over {MAX_LINES} lines without '{LONG_MARKER} ...' in the docstring "
                      "(split it into named steps):\n" + "\n".join(long))


def _docstrings(tree: ast.Module) -> set[int]:
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    return {id(n.body[0].value) for n in nodes
            if n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def _protocol_literals(tree: ast.Module):
    """The protocol constants ``tree`` writes as literals: the byte limit, a file/env name or label as a
    whole string, a label opening a printed line (``f"final_int6_roundtrip val_loss:..."``), and an
    exit code other than 0/1 given to ``SystemExit`` / ``sys.exit``."""
    strings = {v for k, v in vars(protocol).items() if k.isupper() and isinstance(v, str)}
    labels = {v + " " for k, v in vars(protocol).items() if k.startswith("LABEL_")}
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in skip:
            v = node.value
            if isinstance(v, int) and not isinstance(v, bool) and v == protocol.LIMIT_BYTES:
                yield v
            elif isinstance(v, str) and v in strings:
                yield v
            elif isinstance(v, str):
                yield from (lab for lab in labels if v.startswith(lab))
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("SystemExit", "sys.exit") and node.args \
                and isinstance(node.args[0], ast.Constant) and node.args[0].value not in (0, 1, None):
            yield f"exit {node.args[0].value}"


def test_protocol_constants_are_written_once():
    found, stale = [], []
    for rel, tree in _modules():
        if rel in EXEMPT:
            continue
        lits = set(_protocol_literals(tree))
        pending = PENDING.get(rel, set())
        found += [f"golf/{rel}: {v!r}" for v in sorted(lits - pending, key=repr)]
        stale += [f"golf/{rel}: {v!r}" for v in sorted(pending - lits, key=repr)]
    assert not found, "write these as golf.protocol constants (import them):\n" + "\n".join(found)
    assert not stale, "gone from the code: drop them from PENDING:\n" + "\n".join(stale)


def test_protocol_is_constants_only():
    """golf/protocol.py is shipped in train_gpt.py: no imports, one plain constant assignment per name
    (the slimmer inlines the ones the shipped code reads and drops the rest)."""
    tree = ast.parse((GOLF / "protocol.py").read_text(encoding="utf-8"))
    for node in tree.body[1:]:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), \
            ast.unparse(node)
        assert node.targets[0].id.isupper(), node.targets[0].id
    assert len(set(protocol.EXIT_NAMES)) == len(protocol.EXIT_NAMES) == len(
        {k for k in vars(protocol) if k.startswith("EXIT_") and k not in ("EXIT_NAMES", "EXIT_USAGE", "EXIT_BAD_BLOB",
                                                                         "EXIT_NO_DATA", "EXIT_INTERRUPTED")})


def _golf_imports(path: Path) -> set[str]:
    """Every golf module ``path`` imports, at top level or inside a function (absolute names)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("golf"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("golf") and not node.level:
            out.update(f"{node.module}.{a.name}" for a in node.names)
            out.add(node.module)
    return out


def test_verifier_scoring_and_lint_do_not_import_each_other():
    """The verifier is three packages (scoring, sandbox, lint); scoring and the lint share only report/logparse."""
    pkgs = {"scoring": "golf.verifier.lint", "lint": "golf.verifier.scoring"}
    bad = []
    for pkg, forbidden in pkgs.items():
        for path in sorted((GOLF / "verifier" / pkg).rglob("*.py")):
            bad += [f"{path.relative_to(GOLF.parent)} imports {m}" for m in sorted(_golf_imports(path))
                    if m == forbidden or m.startswith(forbidden + ".")]
    assert not bad, "\n".join(bad)


def _import_graph() -> dict[str, dict[str, int]]:
    """``{module: {golf module it imports: line}}``, imports inside functions included; a ``from a import b``
    counts as an import of ``a.b`` when that is a module, else of ``a``; a module's own packages are left out
    (Python runs them first, whoever imports it)."""
    modules = list(_modules())
    names = {}
    for rel, _ in modules:
        parts = ["golf", *Path(rel).with_suffix("").parts]
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = rel

    def known(name: str) -> str | None:
        while name and name not in names:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, dict[str, int]] = {}
    module_of = {rel: m for m, rel in names.items()}
    for rel, tree in modules:
        me = module_of[rel]
        pkg = me if rel.endswith("__init__.py") else me.rpartition(".")[0]
        edges = graph.setdefault(me, {})
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                m = known(t)
                if m and m != me and not me.startswith(m + "."):
                    edges.setdefault(m, node.lineno)
    return graph


def test_no_import_cycle_counting_imports_inside_functions():
    """A function-local import hides a cycle from Python but not from a reader: none may close one."""
    graph = _import_graph()
    assert "golf.trainer.loop" in graph and graph["golf.trainer.cli"], "the graph misses golf's modules"
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    detail = ["; ".join(f"{a} -> {b} (line {graph[a][b]})" for a in comp for b in comp if b in graph[a])
              for comp in cycles]
    assert not cycles, "import cycles:\n" + "\n".join(detail)
