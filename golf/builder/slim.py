"""Source-level slimming of the modules shipped in ``train_gpt.py`` (used by codegen).

Every step works on the ``ast`` of golf's own modules, so the shipped code stays generated
from the code golf runs:

1. ``TOOLKIT`` folding.  ``golf.TOOLKIT`` is ``True`` in the installed toolkit and ``False``
   inside a generated ``train_gpt.py``: blocks that only the toolkit needs (resuming,
   periodic checkpoints, Hub sync, progress bars, metrics.jsonl, config validation with
   long messages) are written as ``if TOOLKIT: ...`` and removed here.  Supported forms:
   ``if TOOLKIT:``/``if not TOOLKIT:`` (with ``else``/``elif``), ``if TOOLKIT and x:``,
   ``a if TOOLKIT else b``, ``TOOLKIT and x``; any other use becomes ``False``.  Other build
   flags fold the same way (``TRAIN_CODE``: False in an evaluation-only build), and
   statements after an unconditional ``return``/``raise`` are dropped.
2. Tree shaking: unused imports, constant stores nothing reads, then top-level definitions
   that no shipped module (nor the entry call) refers to, repeated until nothing changes.  Conservative:
   a name counts as used wherever it appears as a name, an attribute or a string constant.
3. ``@dataclass`` field annotations erased to ``0`` (``erase_field_types``), and the constants
   imported from ``golf.protocol`` written as literals where they are read (``inline_constants``).
4. ``flatten``: all shipped modules merged into one namespace, with checks that every name
   still means what it meant in its own module.
5. Renaming of locals and globals with python-minifier, then a check that the result reads
   no undefined global (``undefined_globals``), so slimming can never leave a dangling reference.
"""
from __future__ import annotations

import ast
import builtins
import symtable

from golf.errors import GolfError

FLAG = "TOOLKIT"


class SlimError(ValueError, GolfError):
    pass


# -- 1. TOOLKIT folding --------------------------------------------------------------------
def _static(node: ast.AST, flags: dict):
    """``True``/``False`` when ``node`` is a flag test with a known value in shipped code, else None."""
    if isinstance(node, ast.Name) and node.id in flags:
        return flags[node.id]
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        v = _static(node.operand, flags)
        return None if v is None else not v
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        if any(_static(v, flags) is False for v in node.values):
            return False
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
        if any(_static(v, flags) is True for v in node.values):
            return True
    return None


class _Fold(ast.NodeTransformer):
    def __init__(self, flags: dict):
        self.flags = flags

    def visit_If(self, node: ast.If):
        self.generic_visit(node)
        v = _static(node.test, self.flags)
        if v is None:
            if isinstance(node.test, ast.BoolOp):  # `not TOOLKIT and x` -> `x`
                rest = [t for t in node.test.values if _static(t, self.flags) is not True]
                if len(rest) != len(node.test.values) and isinstance(node.test.op, ast.And):
                    node.test = rest[0] if len(rest) == 1 else ast.BoolOp(op=ast.And(), values=rest)
            return node
        return (node.body if v else node.orelse) or None

    def visit_IfExp(self, node: ast.IfExp):
        self.generic_visit(node)
        v = _static(node.test, self.flags)
        if v is None:
            return node
        return node.body if v else node.orelse

    def visit_BoolOp(self, node: ast.BoolOp):
        self.generic_visit(node)
        v = _static(node, self.flags)
        return node if v is None else ast.Constant(v)

    def visit_Name(self, node: ast.Name):
        if node.id in self.flags and isinstance(node.ctx, ast.Load):
            return ast.Constant(self.flags[node.id])
        return node


_EXITS = (ast.Return, ast.Raise, ast.Continue, ast.Break)


def _blocks(tree: ast.AST, skip: tuple = ()):
    """``(owner, field, statements)`` for every statement list (``body``/``orelse``/``finalbody``,
    except-handler bodies included) in ``tree``, not descending into ``skip`` node types.
    The lists may be edited while iterating: children are read after their block is yielded."""
    stack = [tree]
    while stack:
        n = stack.pop()
        for attr in ("body", "orelse", "finalbody"):
            body = getattr(n, attr, None)
            if isinstance(body, list):
                yield n, attr, body
        stack.extend(c for c in ast.iter_child_nodes(n) if not isinstance(c, skip))


def _drop_unreachable(tree: ast.AST) -> None:
    """Statements after a ``return``/``raise``/``continue``/``break`` in the same block never run."""
    for _, _, body in _blocks(tree):
        for i, stmt in enumerate(body):
            if isinstance(stmt, _EXITS):
                del body[i + 1:]
                break


def _fill_empty_bodies(tree: ast.AST) -> None:
    for n, attr, body in _blocks(tree):
        if attr == "body" and not body and not isinstance(n, ast.Module):
            body.append(ast.Pass())


def fold_toolkit(tree: ast.Module, flags: dict | None = None) -> ast.Module:
    """Fold the build flags (default: ``TOOLKIT`` = False) and drop ``from golf import TOOLKIT``.

    ``flags`` maps flag names to their shipped values, e.g. ``{"TOOLKIT": False, "TRAIN_CODE": True}``;
    branches that cannot run are removed, and so are statements after an unconditional exit.
    """
    flags = {FLAG: False, **(flags or {})}
    for node in list(tree.body):
        if isinstance(node, ast.ImportFrom) and node.module == "golf":
            node.names = [a for a in node.names if a.name not in flags]
            if not node.names:
                tree.body.remove(node)
    tree = _Fold(flags).visit(tree)
    _drop_unreachable(tree)
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


def _inert(node: ast.AST) -> bool:
    """An expression whose evaluation has no effect: constants and tuples/lists of them."""
    if isinstance(node, ast.Constant):
        return True
    return isinstance(node, (ast.Tuple, ast.List)) and all(_inert(e) for e in node.elts)


def _drop_dead_stores(tree: ast.Module) -> bool:
    """In functions, drop ``x = <constant>`` targets that nothing in the function reads
    (what folded-away TOOLKIT code leaves behind, e.g. ``hub = None``).  Class bodies are left
    alone: their assignments are attributes."""
    changed = False
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        loads = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Store)}
        loads |= {n.target.id for n in ast.walk(fn) if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name)}
        declared = {name for n in ast.walk(fn) if isinstance(n, (ast.Global, ast.Nonlocal)) for name in n.names}
        if any(isinstance(n, ast.Name) and n.id in ("locals", "vars", "eval", "exec") for n in ast.walk(fn)):
            continue
        for _, _, body in _blocks(fn, skip=(ast.ClassDef,)):
            for stmt in list(body):
                if not (isinstance(stmt, ast.Assign) and _inert(stmt.value)
                        and all(isinstance(t, ast.Name) for t in stmt.targets)):
                    continue
                keep = [t for t in stmt.targets if t.id in loads or t.id in declared]
                if len(keep) != len(stmt.targets):
                    changed = True
                    if keep:
                        stmt.targets = keep
                    else:
                        body.remove(stmt)
    if changed:
        _fill_empty_bodies(tree)
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
            changed |= _drop_dead_stores(t)
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
_IMPLICIT = {"forward", "extra_repr", "reset_parameters", "step", "zero_grad", "state_dict", "load_state_dict"}


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


def erase_field_types(tree: ast.Module) -> int:
    """Replace the annotations of ``@dataclass`` fields by ``0``; returns how many.

    A field's annotation only marks it as a field (golf reads no ``Field.type``: config values
    are coerced by their default's type), so any expression will do, and ``0`` compresses best.
    Annotations naming ``ClassVar``, ``InitVar`` or ``KW_ONLY`` change what dataclasses does
    and are kept.
    """
    n = 0
    for cls in ast.walk(tree):
        if not isinstance(cls, ast.ClassDef) or not any(
                "dataclass" in ast.unparse(d) for d in cls.decorator_list):
            continue
        for stmt in cls.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and not any(
                    k in ast.unparse(stmt.annotation) for k in ("ClassVar", "InitVar", "KW_ONLY")):
                stmt.annotation = ast.Constant(0)
                n += 1
    return n


def _rebound(tree: ast.Module, name: str, imported: ast.alias) -> bool:
    """Whether the module binds ``name`` anywhere other than through the import ``imported``."""
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and n.id == name and not isinstance(n.ctx, ast.Load):
            return True
        if isinstance(n, ast.arg) and n.arg == name or isinstance(n, (ast.Global, ast.Nonlocal)) and name in n.names:
            return True
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == name:
            return True
        if isinstance(n, ast.alias) and n is not imported and (n.asname or n.name.split(".")[0]) == name:
            return True
    return False


def inline_constants(trees: dict[str, ast.Module], source: str) -> int:
    """Write the literal of every constant that a module imports from module ``source`` where it is
    read, and drop the import; returns how many names were inlined.

    ``source`` is a constants-only module (``golf.protocol``): each constant stays written once in
    golf, while the shipped code reads ``"GOLF_MODE"`` as before instead of a global bound to it
    (a global costs more compressed bytes than the literal it names).  Only ``NAME = <str/int/float>``
    assignments are inlined, and only where the importing module never rebinds the name."""
    consts = {t.id: n.value.value for n in trees.get(source, ast.Module(body=[])).body
              if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
              and isinstance(n.value.value, (str, int, float)) for t in n.targets if isinstance(t, ast.Name)}
    count = 0
    for m, tree in trees.items():
        for imp in [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == source and m != source]:
            names = {(a.asname or a.name): a for a in imp.names
                     if a.name in consts and not _rebound(tree, a.asname or a.name, a)}
            for node in ast.walk(tree):
                for field, value in ast.iter_fields(node):
                    if isinstance(value, ast.Name) and value.id in names:
                        setattr(node, field, ast.copy_location(ast.Constant(consts[names[value.id].name]), value))
                    elif isinstance(value, list):
                        value[:] = [ast.copy_location(ast.Constant(consts[names[v.id].name]), v)
                                    if isinstance(v, ast.Name) and v.id in names else v for v in value]
            imp.names = [a for a in imp.names if (a.asname or a.name) not in names]
            count += len(names)
            if not imp.names:
                tree.body.remove(imp)
    return count


# -- 3. dangling-reference check ------------------------------------------------------------------
_BUILTINS = set(dir(builtins)) | {"__file__", "__name__", "__spec__", "__loader__", "__builtins__", "__path__"}


def _tables(src: str, name: str) -> list:
    """The module's symbol table first, then every nested one."""
    tables, stack = [], [symtable.symtable(src, name, "exec")]
    while stack:
        t = stack.pop()
        tables.append(t)
        stack.extend(t.get_children())
    return tables


def _global_reads(tables: list) -> set[str]:
    """Every global name the module reads (defined in it or not, builtins included)."""
    return {s.get_name() for t in tables for s in t.get_symbols()
            if s.is_referenced() and (t is tables[0] or s.is_global())}


def undefined_globals(src: str, name: str = "<module>") -> set[str]:
    """Global names read somewhere in ``src`` that the module neither defines nor imports."""
    tables = _tables(src, name)
    defined = {s.get_name() for s in tables[0].get_symbols() if s.is_assigned() or s.is_imported() or s.is_namespace()}
    for t in tables[1:]:  # `global x; x = ...` inside a function also defines x
        defined |= {s.get_name() for s in t.get_symbols() if s.is_declared_global() and s.is_assigned()}
    return _global_reads(tables) - defined - _BUILTINS


def top_level_names(src: str, name: str = "<module>") -> set[str]:
    return {s.get_name() for s in symtable.symtable(src, name, "exec").get_symbols()
            if s.is_assigned() or s.is_imported() or s.is_namespace()}


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


# -- 4. renaming ----------------------------------------------------------------------------
def minify(src: str, keep_globals: set | None = None) -> str:
    """Locals (and, given ``keep_globals``, the other module-level names) renamed and whitespace
    squeezed by python-minifier (a required dependency)."""
    import python_minifier

    return python_minifier.minify(
        src, remove_annotations=True, remove_pass=True, remove_literal_statements=True,
        combine_imports=True, hoist_literals=False, rename_locals=True,
        rename_globals=keep_globals is not None, preserve_globals=sorted(keep_globals or ()),
        remove_object_base=True, convert_posargs_to_args=False, preserve_shebang=False,
        remove_asserts=False, remove_debug=False, remove_explicit_return_none=True,
        remove_builtin_exception_brackets=True, constant_folding=False)


# -- 5. one namespace ------------------------------------------------------------------------------
def _is_golf(module: str | None) -> bool:
    return module == "golf" or (module or "").startswith("golf.")


def _order(trees: dict[str, ast.Module]) -> list[str]:
    """Modules so that each comes after the golf modules its top level imports."""
    deps = {}
    for m, t in trees.items():
        deps[m] = set()
        for n in t.body:
            if isinstance(n, ast.ImportFrom) and _is_golf(n.module):
                deps[m] |= {f"{n.module}.{a.name}" if f"{n.module}.{a.name}" in trees else n.module for a in n.names}
    out: list[str] = []
    state: dict[str, int] = {}

    def visit(m: str) -> None:
        if state.get(m) == 2:
            return
        if state.get(m) == 1:
            raise SlimError(f"import cycle through {m}")
        state[m] = 1
        for d in sorted(deps[m] & set(trees)):
            visit(d)
        state[m] = 2
        out.append(m)

    for m in trees:
        visit(m)
    return out


def _binding(a: ast.alias, node: ast.stmt) -> tuple[str, tuple]:
    """``(bound name, what it is)`` for one non-golf import alias."""
    if isinstance(node, ast.ImportFrom):
        return a.asname or a.name, ("import", node.module, a.name)
    if a.asname:
        return a.asname, ("import", a.name)
    return a.name.split(".")[0], ("import", a.name.split(".")[0])


def _assign(local: str, name: str, like: ast.AST) -> ast.Assign:
    return ast.copy_location(ast.Assign(targets=[ast.Name(id=local, ctx=ast.Store())],
                                        value=ast.Name(id=name, ctx=ast.Load())), like)


class _Rewrite(ast.NodeTransformer):
    """In one module: ``alias.attr`` (alias of a shipped golf module) -> ``attr``; golf imports ->
    nothing (same name) or an assignment (imported ``as`` another name)."""

    def __init__(self, m: str, modules: set, attr_ids: dict, via: dict):
        self.m, self.modules, self.ids, self.via = m, modules, attr_ids, via
        self.fns: list[ast.AST] = []
        self.removed: list[tuple] = []  # (function, name) whose import was dropped

    def visit_Attribute(self, node: ast.Attribute):
        if id(node) in self.ids:
            self.via.setdefault(node.attr, set()).add(self.ids[id(node)])
            return ast.copy_location(ast.Name(id=node.attr, ctx=node.ctx), node)
        return self.generic_visit(node)

    def _scope(self, node):
        self.fns.append(node)
        self.generic_visit(node)
        self.fns.pop()
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _scope

    def visit_ImportFrom(self, node: ast.ImportFrom):
        if not _is_golf(node.module):
            return node
        out = []
        for a in node.names:
            if f"{node.module}.{a.name}" in self.modules:
                if self.fns:
                    raise SlimError(f"{self.m}: imports the module {node.module}.{a.name} inside a function; "
                                    "import the names it needs instead")
                continue  # a top-level module alias: its uses became plain names
            if node.module not in self.modules:
                raise SlimError(f"{self.m}: imports {a.name} from {node.module}, which is not shipped")
            self.via.setdefault(a.name, set()).add(node.module)
            if a.asname and a.asname != a.name:
                out.append(_assign(a.asname, a.name, node))
                if not self.fns:  # a top-level binding: kept once in the namespace
                    out[-1].golf_alias = ("alias", node.module, a.name)
            elif self.fns:
                self.removed.append((self.fns[-1], a.name))
        return out or None

    def visit_Import(self, node: ast.Import):
        if any(_is_golf(a.name) for a in node.names):
            raise SlimError(f"{self.m}: `import golf...` cannot be shipped; use `from golf.x import name`")
        return node


class _Namespace:
    """The one namespace of the flattened module: what binds each top-level name, and where."""

    def __init__(self, modules: set):
        self.modules = modules
        self.owner: dict[str, tuple] = {}  # flat name -> what binds it
        self.where: dict[str, str] = {}    # flat name -> module binding it first
        self.binds: dict[str, dict] = {}   # module -> {name: what its own top level binds}
        self.via: dict[str, dict] = {}     # module -> {name: {golf modules it imports the name from}}
        self.reads: dict[str, set] = {}
        self.futures: list[ast.alias] = []
        self.body: list[ast.stmt] = []

    def bind(self, name: str, what: tuple, m: str) -> bool:
        """Record a top-level binding; False when the same import/alias is already bound."""
        if name in self.owner:
            if self.owner[name] == what and what[0] != "def":
                return False
            raise SlimError(f"top-level name {name!r} means different things in {self.where[name]} and {m}; "
                            "shipped modules share one namespace in train_gpt.py, rename one")
        self.owner[name], self.where[name] = what, m
        return True

    def _rewrite(self, m: str, t: ast.Module) -> ast.Module:
        """``t`` without ``__future__`` imports (collected once) and golf imports (``_Rewrite``)."""
        for node in [n for n in t.body if isinstance(n, ast.ImportFrom) and n.module == "__future__"]:
            self.futures += [a for a in node.names if a.name not in {f.name for f in self.futures}]
            t.body.remove(node)
        mod_alias = {a.asname or a.name: f"{n.module}.{a.name}" for n in t.body
                     if isinstance(n, ast.ImportFrom) and _is_golf(n.module)
                     for a in n.names if f"{n.module}.{a.name}" in self.modules}
        ids = {id(n): mod_alias[n.value.id] for n in _global_attribute_uses(t, set(mod_alias))}
        rw = _Rewrite(m, self.modules, ids, self.via[m])
        t = ast.fix_missing_locations(rw.visit(t))
        for fn, name in rw.removed:
            if name in _local_names(fn):
                raise SlimError(f"{m}: {getattr(fn, 'name', 'lambda')} imports {name} and also assigns it")
        return t

    def add(self, m: str, t: ast.Module) -> None:
        """Append module ``m``'s statements, binding its top-level names (a repeated import is kept once)."""
        self.binds[m], self.via[m] = {}, {}
        t = self._rewrite(m, t)
        src = ast.unparse(t)
        defined = top_level_names(src, m) if src.strip() else set()
        self.reads[m] = _global_reads(_tables(src, m)) if src.strip() else set()
        for node in t.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                keep = []
                for a in node.names:
                    name, what = _binding(a, node)
                    self.binds[m][name] = what
                    if self.bind(name, what, m) or (isinstance(node, ast.Import) and "." in a.name and not a.asname):
                        keep.append(a)
                if keep:
                    node.names = keep
                    self.body.append(node)
                continue
            what = getattr(node, "golf_alias", None)
            if what is not None:
                self.binds[m][node.targets[0].id] = what
                if not self.bind(node.targets[0].id, what, m):
                    continue
            self.body.append(node)
        for name in sorted(defined - set(self.binds[m])):
            self.binds[m][name] = ("def", m)
            self.bind(name, ("def", m), m)

    def resolve(self, mod: str, name: str, seen: tuple = ()) -> tuple:
        if name in self.binds[mod]:
            return self.binds[mod][name]
        src = self.via[mod].get(name, ())
        if len(src) != 1 or mod in seen:
            raise SlimError(f"{name} is imported from {mod}, which does not define it")
        return self.resolve(next(iter(src)), name, seen + (mod,))

    def check_reads(self, m: str) -> None:
        """Every global ``m`` reads must mean in the namespace what it meant in ``m``."""
        for name in sorted(self.reads[m]):
            src = self.via[m].get(name, set())
            if len(src) > 1:
                raise SlimError(f"{m} imports {name} from several modules: {sorted(src)}")
            if src and name not in self.binds[m]:
                expected = self.resolve(next(iter(src)), name)
            else:
                expected = self.binds[m].get(name)
            if self.owner.get(name) != expected:
                what = "a builtin" if expected is None else f"{expected}"
                raise SlimError(f"{m} reads {name!r} as {what}, but in one namespace it is {self.where[name]}'s "
                                f"{self.owner[name]}")


def flatten(trees: dict[str, ast.Module]) -> ast.Module:
    """All shipped modules as one module: one namespace, no import machinery, no golf imports.

    Sound only when the modules agree on their top-level names, which is checked: a name
    has one meaning across all modules (the same import may repeat; it is kept once), and
    every global a module reads resolves to what it resolved to before -- its own binding,
    the binding of the golf module it imports it from (``from golf.x import y`` or ``x.y``
    on a module alias), or a builtin that no module redefines.  Otherwise ``SlimError``
    names the module and the name.
    """
    ns = _Namespace(set(trees))
    order = _order(trees)
    for m in order:
        ns.add(m, trees[m])
    for m in order:
        ns.check_reads(m)
    head = [ast.ImportFrom(module="__future__", names=ns.futures, level=0)] if ns.futures else []
    return ast.fix_missing_locations(ast.Module(body=head + ns.body, type_ignores=[]))
