"""Source-level slimming of the modules shipped in ``train_gpt.py`` (used by codegen).

Every step works on the ``ast`` of golf's own modules, so the shipped code stays generated
from the code golf runs:

1. ``TOOLKIT`` folding.  ``golf.TOOLKIT`` is ``True`` in the installed toolkit and ``False``
   inside a generated ``train_gpt.py``: blocks that only the toolkit needs (resuming,
   periodic checkpoints, Hub sync, progress bars, metrics.jsonl, config validation with
   long messages) are written as ``if TOOLKIT: ...`` and removed here.  Supported forms:
   ``if TOOLKIT:``/``if not TOOLKIT:`` (with ``else``/``elif``), ``if TOOLKIT and x:``,
   ``a if TOOLKIT else b``, ``TOOLKIT and x``; any other use becomes ``False``.
2. Tree shaking: unused imports, then top-level definitions that no shipped module (nor the
   boot code) refers to, repeated until nothing changes.  Conservative: a name counts as
   used wherever it appears as a name, an attribute or a string constant.
3. A check that every global a shipped module reads is defined there or a builtin
   (``undefined_globals``), so slimming can never leave a dangling reference.
4. Optional renaming of local names with python-minifier (globals are kept: modules import
   each other's names).
"""
from __future__ import annotations

import ast
import builtins
import symtable

FLAG = "TOOLKIT"


class SlimError(ValueError):
    pass


# -- 1. TOOLKIT folding --------------------------------------------------------------------
def _static(node: ast.AST):
    """``True``/``False`` when ``node`` is a TOOLKIT test with a known value in shipped code, else None."""
    if isinstance(node, ast.Name) and node.id == FLAG:
        return False
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        v = _static(node.operand)
        return None if v is None else not v
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        if any(_static(v) is False for v in node.values):
            return False
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        if any(_static(v) is True for v in node.values):
            return True
    return None


class _Fold(ast.NodeTransformer):
    def visit_If(self, node: ast.If):
        self.generic_visit(node)
        v = _static(node.test)
        if v is None:
            if isinstance(node.test, ast.BoolOp):  # `not TOOLKIT and x` -> `x`
                rest = [t for t in node.test.values if _static(t) is not True]
                if len(rest) != len(node.test.values) and isinstance(node.test.op, ast.And):
                    node.test = rest[0] if len(rest) == 1 else ast.BoolOp(op=ast.And(), values=rest)
            return node
        return (node.body if v else node.orelse) or None

    def visit_IfExp(self, node: ast.IfExp):
        self.generic_visit(node)
        v = _static(node.test)
        if v is None:
            return node
        return node.body if v else node.orelse

    def visit_BoolOp(self, node: ast.BoolOp):
        self.generic_visit(node)
        v = _static(node)
        return node if v is None else ast.Constant(v)

    def visit_Name(self, node: ast.Name):
        if node.id == FLAG and isinstance(node.ctx, ast.Load):
            return ast.Constant(False)
        return node


def _fill_empty_bodies(tree: ast.AST) -> None:
    for n in ast.walk(tree):
        for attr in ("body", "orelse", "finalbody"):
            body = getattr(n, attr, None)
            if attr == "body" and isinstance(body, list) and not body and not isinstance(n, ast.Module):
                body.append(ast.Pass())
        if isinstance(n, ast.Try):
            for h in n.handlers:
                if not h.body:
                    h.body.append(ast.Pass())


def fold_toolkit(tree: ast.Module) -> ast.Module:
    """Remove ``TOOLKIT`` blocks (shipped value: False) and the ``from golf import TOOLKIT`` imports."""
    for node in list(tree.body):
        if isinstance(node, ast.ImportFrom) and node.module == "golf":
            node.names = [a for a in node.names if a.name != FLAG]
            if not node.names:
                tree.body.remove(node)
    tree = _Fold().visit(tree)
    _fill_empty_bodies(tree)
    return ast.fix_missing_locations(tree)


# -- 2. tree shaking --------------------------------------------------------------------------
def _bound_names(node: ast.stmt) -> list[str] | None:
    """Names a removable top-level statement binds (None = not removable)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
        return [t.id for t in node.targets]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.simple:
        return [node.target.id]
    return None


def _refs(node: ast.AST, into: set) -> None:
    for x in ast.walk(node):
        if isinstance(x, ast.Name):
            into.add(x.id)
        elif isinstance(x, ast.Attribute):
            into.add(x.attr)
        elif isinstance(x, ast.Constant) and isinstance(x.value, str):
            into.add(x.value)
        elif isinstance(x, ast.alias) and x.name != "*":
            into.add(x.name.split(".")[-1])


def _drop_unused_imports(tree: ast.Module) -> bool:
    used: set = set()
    for node in tree.body:
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            for x in ast.walk(node):
                if isinstance(x, ast.Name):
                    used.add(x.id)
    changed = False
    for node in list(tree.body):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or \
                (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            continue
        keep = [a for a in node.names if (a.asname or a.name.split(".")[0]) in used]
        if len(keep) != len(node.names):
            changed = True
            if keep:
                node.names = keep
            else:
                tree.body.remove(node)
    return changed


def shake(trees: dict[str, ast.Module], roots: list[ast.AST] = ()) -> list[str]:
    """Drop unused imports and unreferenced top-level definitions in place; returns what was dropped."""
    root_refs: set = set()
    for r in roots:
        _refs(r, root_refs)
    dropped: list[str] = []
    changed = True
    while changed:
        changed = False
        for t in trees.values():
            changed |= _drop_unused_imports(t)
        refs: dict[int, set] = {}
        for t in trees.values():
            for node in t.body:
                refs[id(node)] = set()
                _refs(node, refs[id(node)])
        for m, t in trees.items():
            for node in list(t.body):
                names = _bound_names(node)
                if not names or any(n.startswith("__") and n.endswith("__") for n in names) \
                        or root_refs.intersection(names):
                    continue
                if not any(refs[id(stmt)].intersection(names)
                           for other in trees.values() for stmt in other.body if stmt is not node):
                    t.body.remove(node)
                    dropped.append(f"{m}.{names[0]}")
                    changed = True
        changed |= _shake_methods(trees, root_refs, dropped)
    return dropped


# methods that Python or torch call by name without the shipped code spelling it out
_IMPLICIT = {"forward", "extra_repr", "reset_parameters", "step", "zero_grad", "state_dict", "load_state_dict",
             "find_spec", "create_module", "exec_module"}


def _plain_or_property(fn: ast.FunctionDef) -> bool:
    """Undecorated, or a property (getter/setter): safe to drop together when the name is unused."""
    for d in fn.decorator_list:
        if not ((isinstance(d, ast.Name) and d.id == "property")
                or (isinstance(d, ast.Attribute) and d.attr in ("setter", "getter", "deleter")
                    and isinstance(d.value, ast.Name) and d.value.id == fn.name)):
            return False
    return True


def _shake_methods(trees: dict[str, ast.Module], root_refs: set, dropped: list) -> bool:
    """Drop methods whose name appears nowhere else (as an attribute, a name or a string)."""
    methods = []
    for m, t in trees.items():
        for node in t.body:
            if isinstance(node, ast.ClassDef):
                for fn in node.body:
                    if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and _plain_or_property(fn) \
                            and not fn.name.startswith("__") and fn.name not in _IMPLICIT:
                        methods.append((m, node, fn))
    if not methods:
        return False
    everything: dict[str, int] = {}
    for t in trees.values():
        for x in ast.walk(t):
            name = (x.attr if isinstance(x, ast.Attribute) else x.id if isinstance(x, ast.Name)
                    else x.value if isinstance(x, ast.Constant) and isinstance(x.value, str) else None)
            if name is not None:
                everything[name] = everything.get(name, 0) + 1
    changed = False
    for m, cls, fn in methods:
        # uses inside the method itself (recursion) do not count
        inside = sum(1 for x in ast.walk(fn) if isinstance(x, ast.Attribute) and x.attr == fn.name)
        if fn.name in root_refs or everything.get(fn.name, 0) - inside > 0:
            continue
        cls.body.remove(fn)
        if not cls.body:
            cls.body.append(ast.Pass())
        dropped.append(f"{m}.{cls.name}.{fn.name}")
        changed = True
    return changed


# -- 3. dangling-reference check ------------------------------------------------------------------
_BUILTINS = set(dir(builtins)) | {"__file__", "__name__", "__spec__", "__loader__", "__builtins__", "__path__"}


def undefined_globals(src: str, name: str = "<module>") -> set[str]:
    """Global names read somewhere in ``src`` that the module neither defines nor imports."""
    top = symtable.symtable(src, name, "exec")
    tables, stack = [], [top]
    while stack:
        t = stack.pop()
        tables.append(t)
        stack.extend(t.get_children())
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    for t in tables[1:]:  # `global x; x = ...` inside a function also defines x
        defined |= {s.get_name() for s in t.get_symbols() if s.is_declared_global() and s.is_assigned()}
    missing = set()
    for t in tables:
        for s in t.get_symbols():
            if s.is_referenced() and (t is top or s.is_global()) and s.get_name() not in defined:
                missing.add(s.get_name())
    return missing - _BUILTINS


def top_level_names(src: str, name: str = "<module>") -> set[str]:
    return {s.get_name() for s in symtable.symtable(src, name, "exec").get_symbols()
            if s.is_assigned() or s.is_imported() or s.is_namespace()}


def dangling_imports(sources: dict[str, str]) -> list[str]:
    """``from golf.x import y`` / ``mod.y`` uses (``mod`` a shipped golf module) whose ``y`` is gone."""
    tops = {m: top_level_names(src, m) for m, src in sources.items()}
    problems = []
    for m, src in sources.items():
        aliases = {}  # local name -> shipped module it stands for
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "golf":
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    if sub in sources:
                        aliases[a.asname or a.name] = sub
                    elif node.module in tops and a.name not in tops[node.module]:
                        problems.append(f"{m} imports {a.name} from {node.module}, which no longer defines it")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname and a.name in sources:
                        aliases[a.asname] = a.name
        for node in _global_attribute_uses(ast.parse(src), set(aliases)):
            target = aliases[node.value.id]
            if node.attr not in tops[target] and f"{target}.{node.attr}" not in sources:
                problems.append(f"{m} uses {node.value.id}.{node.attr}, which {target} no longer defines")
    return sorted(set(problems))


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
           ast.GeneratorExp)


def _local_names(scope: ast.AST) -> set[str]:
    """Names bound inside ``scope`` itself (parameters, assignments, loop/with/except targets, ...)."""
    out: set = set()
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        a = scope.args
        out |= {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if x is not None}
        body = scope.body if isinstance(scope.body, list) else [scope.body]
    else:
        out |= {n.id for g in scope.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
        body = []
    declared = set()
    stack = list(body)
    while stack:
        n = stack.pop()
        if isinstance(n, (ast.Global, ast.Nonlocal)):
            declared |= set(n.names)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            out.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
            stack.extend(n.decorator_list)
            continue  # a nested scope: its own locals are not ours
        elif isinstance(n, ast.alias):
            out.add((n.asname or n.name).split(".")[0])
        elif isinstance(n, ast.ExceptHandler) and n.name:
            out.add(n.name)
        if not isinstance(n, _SCOPES):
            stack.extend(ast.iter_child_nodes(n))
    return out - declared


def _global_attribute_uses(tree: ast.AST, names: set[str], shadow: frozenset = frozenset()):
    """``name.attr`` nodes whose ``name`` (one of ``names``) resolves to the module-level binding."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, _SCOPES):
            yield from _global_attribute_uses(child, names, shadow | _local_names(child))
            continue
        if isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name) \
                and child.value.id in names and child.value.id not in shadow:
            yield child
        yield from _global_attribute_uses(child, names, shadow)


# -- 4. local renaming ----------------------------------------------------------------------------
def external_names(trees: dict[str, ast.Module], roots: list[ast.AST] = ()) -> set[str]:
    """Names that code outside a module may use: imported names, attribute names, string constants."""
    out: set = set()
    for t in [*trees.values(), *roots]:
        for x in ast.walk(t):
            if isinstance(x, ast.alias):
                out.add(x.name.split(".")[-1])
            elif isinstance(x, ast.Attribute):
                out.add(x.attr)
            elif isinstance(x, ast.Constant) and isinstance(x.value, str):
                out.add(x.value)
    return out


def minify(src: str, keep_globals: set | None = None) -> str | None:
    """Locals (and, given ``keep_globals``, the other module-level names) renamed and whitespace
    squeezed by python-minifier; None when it is not installed."""
    try:
        import python_minifier
    except ImportError:
        return None
    return python_minifier.minify(
        src, remove_annotations=True, remove_pass=True, remove_literal_statements=True,
        combine_imports=True, hoist_literals=False, rename_locals=True,
        rename_globals=keep_globals is not None, preserve_globals=sorted(keep_globals or ()),
        remove_object_base=True, convert_posargs_to_args=False, preserve_shebang=False,
        remove_asserts=False, remove_debug=False, remove_explicit_return_none=True,
        remove_builtin_exception_brackets=True, constant_folding=False)
