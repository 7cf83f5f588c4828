"""Static legality scan of a records folder's ``train_gpt.py`` and the sibling modules it imports.

Self-extracting wrappers (``exec(lzma.decompress(base64.b85decode("...")))`` and the
brotli / zlib / bz2, base64 / base85 / ascii85 variants, nested) are decoded first.  The
scan then reads the code's syntax tree, resolves simple aliases (``import lzma as L``,
``f = torch.save``, ``getattr(torch, "save")``, ``__import__("socket")``) and follows
which names hold validation data (a small taint analysis: names assigned from validation
loaders, ``fineweb_val_*`` paths or ``val_*`` names, and everything computed from them).

It reports the patterns the challenge rejected (:data:`PATTERNS`), each with file:line
evidence, as a *warning*: "suspicious, needs a human".  A static pattern is never a hard
failure, and a pattern it did not find is reported as such, together with every dynamic
name it could not resolve (``getattr(x, name)``, ``exec`` of something it cannot decode).
"""
from __future__ import annotations

import ast
import base64
import bz2
import lzma
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from golf.protocol import CODE_NAME
from golf.verifier.report import PASS, SKIP, WARN, Check

PATTERNS = {
    "val_training": "validation tokens used for training or calibration before they are scored",
    "val_cache": "n-gram / cache table filled from the validation stream and used when scoring the same tokens",
    "two_pass": "two-pass rescoring of the validation set",
    "paid_prefix": "validation data stored in the artifact (paid prefix)",
    "eval_io": "network or file access at evaluation time",
}
MAX_DECODE_DEPTH = 3
MAX_DECODED_BYTES = 20_000_000

RE_VAL_NAME = re.compile(r"^(val|valid|validation|eval)_?(tokens?|data|ids|stream|seqs?|set|targets?|inputs?|x|y|"
                         r"batch|chunk|files|shards?)$", re.IGNORECASE)
RE_VAL_STRING = re.compile(r"fineweb_val|_val_\d|/val/|val\.bin", re.IGNORECASE)
RE_VAL_LOADER = re.compile(r"(load|read|get)_?(val|valid|validation)(_|$)", re.IGNORECASE)
RE_SCORE = re.compile(r"(^|[._])(eval|evaluate|score|scoring|nll|bpb|compute_loss)|eval_|_eval|score_", re.IGNORECASE)
RE_CALIB = re.compile(r"calib|hessian|gptq", re.IGNORECASE)
RE_TABLE = re.compile(r"gram|cache|count|table|freq|hist|memo", re.IGNORECASE)
RE_TWO_PASS = re.compile(r"rescor|two_?pass|second_?pass|2nd_?pass", re.IGNORECASE)
RE_EVAL_FN = re.compile(r"eval|score|valid", re.IGNORECASE)
RE_TRAIN_FN = re.compile(r"train", re.IGNORECASE)
RE_QUANTIZE = re.compile(r"^(?!de).*(quantiz|gptq|serializ)", re.IGNORECASE)  # not dequantize / deserialize
NETWORK_MODULES = ("socket", "urllib", "requests", "http", "httpx", "aiohttp", "ftplib", "huggingface_hub",
                   "paramiko", "websocket", "smtplib")
NETWORK_CALLS = re.compile(r"(urlopen|hf_hub_download|snapshot_download|create_connection|\.socket$|"
                           r"^requests\.|^httpx\.|^wget|^curl)", re.IGNORECASE)
STORE_CALLS = re.compile(r"(torch\.save|numpy\.save|np\.save|pickle\.dump|register_buffer|\.write$|"
                         r"lzma\.compress|brotli\.compress|zlib\.compress|savez)", re.IGNORECASE)
TRAIN_CALLS = re.compile(r"\.backward$|(opt|optim|optimizer)[\w]*\.step$", re.IGNORECASE)
# objects whose attributes reach files, processes, the network or the interpreter: a computed getattr on one
# is a warning; on anything else (getattr(torch, dtype_name)) it is only reported
RISKY_OBJECTS = {"os", "sys", "io", "builtins", "__builtins__", "globals", "locals", "vars", "socket", "subprocess",
                 "shutil", "pathlib", "importlib", "urllib", "requests", "http", "pickle", "ctypes", "open"}
SCALAR_CALLS = {"len", "float", "int", "round", "item", "numel", "size", "sum", "mean", "max", "min", "isfinite",
                "exp", "log", "log2", "sqrt", "tolist", "format", "str"}
TABLE_FILL_METHODS = ("update", "index_add_", "scatter_add_", "add_", "put_", "setdefault", "append", "extend")


@dataclass
class Finding:
    pattern: str
    file: str
    line: int
    evidence: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.evidence}"


@dataclass
class ScanResult:
    files: list[str] = field(default_factory=list)
    decoded: list[str] = field(default_factory=list)  # "train_gpt.py: lzma+b85 wrapper"
    findings: list[Finding] = field(default_factory=list)
    legal: list[str] = field(default_factory=list)  # patterns seen in their legal form (score-first, ...)
    unresolved: list[str] = field(default_factory=list)  # dynamic names on I/O-capable objects: warned
    unresolved_benign: list[str] = field(default_factory=list)  # e.g. getattr(torch, dtype_name): reported
    errors: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- wrappers


def _decoders():
    out = [("lzma", lzma.decompress),
           ("lzma-raw", lambda b: lzma.decompress(b, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])),
           ("zlib", zlib.decompress), ("bz2", bz2.decompress)]
    try:
        import brotli
        out.append(("brotli", brotli.decompress))
    except ImportError:  # pragma: no cover - brotli is a dependency of golf
        pass
    return out


TEXT_DECODERS = (("b85", base64.b85decode), ("b64", base64.b64decode), ("a85", base64.a85decode),
                 ("raw", lambda b: b))


def decode_wrapper(code: str) -> tuple[str, str] | None:
    """(decoded source, how) when ``code`` execs a compressed, text-encoded payload; else None.

    Every string/bytes literal of the wrapper is tried with each text decoding and each
    decompressor; the first combination that yields parseable Python wins (so no alias or
    call shape of the wrapper has to be recognised)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    if not any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("exec", "eval")
               for n in ast.walk(tree)):
        return None
    consts = sorted((n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                     and isinstance(n.value, (str, bytes)) and len(n.value) >= 64), key=len, reverse=True)
    for payload in consts[:4]:
        data = payload.encode("latin-1", errors="ignore") if isinstance(payload, str) else payload
        for tname, tdec in TEXT_DECODERS:
            try:
                raw = tdec(data)
            except (ValueError, TypeError):
                continue
            for cname, cdec in _decoders():
                try:
                    out = cdec(raw)
                    if len(out) > MAX_DECODED_BYTES:
                        continue
                    text = out.decode("utf-8")
                    ast.parse(text)
                except Exception:  # noqa: BLE001 - any failure means "not this combination"
                    continue
                return text, f"{cname}+{tname}"
    return None


# ----------------------------------------------------------------------------- analysis of one module


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


class ModuleScan:
    """Aliases, validation taint and the pattern rules for one parsed module."""

    def __init__(self, tree: ast.Module, name: str, res: ScanResult):
        self.tree, self.name, self.res = tree, name, res
        self._walks: dict[int, list[ast.AST]] = {}  # id -> [node, *descendants]
        self._scopes: list[ast.AST] | None = None
        self.parents = {c: n for n in self.walk(tree) for c in ast.iter_child_nodes(n)}
        self.aliases: dict[str, str] = {}
        self.scope: ast.AST = tree
        self._collect_aliases()
        self._collect_taint()

    def walk(self, node: ast.AST) -> list[ast.AST]:
        """``ast.walk`` of a node, memoised (the rules walk the same statements many times)."""
        got = self._walks.get(id(node))
        if got is None or got[0] is not node:  # the node itself is kept, so an id is never reused
            got = self._walks[id(node)] = list(ast.walk(node))
        return got

    # -- names
    def resolve(self, node: ast.AST) -> str:
        d = _dotted(node)
        if d is None:
            if isinstance(node, ast.Call):
                return self.resolve(node.func) + "()"
            return ""
        head, _, rest = d.partition(".")
        for _ in range(5):  # alias chains
            if head in self.aliases:
                full = self.aliases[head]
                head, _, more = full.partition(".")
                rest = ".".join(x for x in (more, rest) if x)
            else:
                break
        return ".".join(x for x in (head, rest) if x)

    def _unresolved(self, node: ast.AST, what: str, risky: bool = True) -> None:
        (self.res.unresolved if risky else self.res.unresolved_benign).append(f"{self.name}:{node.lineno}: {what}")

    def _collect_aliases(self) -> None:
        for n in self.walk(self.tree):
            if isinstance(n, ast.Import):
                for a in n.names:
                    self.aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
            elif isinstance(n, ast.ImportFrom) and n.module:
                for a in n.names:
                    self.aliases[a.asname or a.name] = f"{n.module}.{a.name}"
            elif isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
                self._alias_assign(n.targets[0].id, n.value)
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("exec", "eval"):
                if not (n.args and isinstance(n.args[0], ast.Constant)):
                    self._unresolved(n, f"{n.func.id}() of a computed string (decoded wrappers are scanned; "
                                        "this one is not)")
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "getattr" \
                    and len(n.args) >= 2 and not isinstance(n.args[1], ast.Constant):
                base = self.resolve(n.args[0]) or "<expression>"
                self._unresolved(n, f"getattr({base}, <computed name>)",
                                 risky=base.split(".")[0] in RISKY_OBJECTS or base == "<expression>")

    def _alias_assign(self, target: str, value: ast.AST) -> None:
        if isinstance(value, (ast.Name, ast.Attribute)) and _dotted(value):
            self.aliases.setdefault(target, _dotted(value))
        elif isinstance(value, ast.Call):
            fn = _dotted(value.func) or ""
            args = value.args
            if fn == "getattr" and len(args) >= 2:
                if isinstance(args[1], ast.Constant) and isinstance(args[1].value, str) and _dotted(args[0]):
                    self.aliases.setdefault(target, f"{_dotted(args[0])}.{args[1].value}")
            elif fn in ("__import__", "importlib.import_module") and args:
                if isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                    self.aliases.setdefault(target, args[0].value)
                else:
                    self._unresolved(value, f"{target} = {fn}(<computed module name>)")

    # -- validation taint, per scope (the module and each function)
    @staticmethod
    def own_nodes(scope: ast.AST):
        """Nodes of ``scope`` without descending into nested function definitions (their own scopes)."""
        stack = list(ast.iter_child_nodes(scope))
        while stack:
            n = stack.pop()
            yield n
            if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                stack.extend(ast.iter_child_nodes(n))

    def _names_in(self, node: ast.AST | None) -> tuple[set[str], set[str]]:
        names, attrs = set(), set()
        if node is not None:
            for n in self.walk(node):
                if isinstance(n, ast.Name):
                    names.add(n.id)
                elif isinstance(n, ast.Attribute):
                    attrs.add(n.attr)
        return names, attrs

    def _refs(self, node: ast.AST | None) -> set[str]:
        names, attrs = self._names_in(node)
        return names | attrs

    def is_val(self, node: ast.AST | None, scope: ast.AST | None = None) -> bool:
        """Does ``node`` (read in ``scope``) hold or compute from validation data?

        Flow-sensitive within a scope: a name read at line L has the taint of its last
        assignment before L (inside a loop with none before, of its last one), so a name
        reused for training batches after an evaluation loop is not validation data."""
        if node is None:
            return False
        scope = scope if scope is not None else self.scope
        sites = self.sites.get(scope, {})
        glob = self.sites.get(self.tree, {})
        for n in self.walk(node):
            if isinstance(n, ast.Name):
                if RE_VAL_NAME.match(n.id):
                    return True
                hist = sites.get(n.id) or (glob.get(n.id) if scope is not self.tree else None)
                if hist:
                    line = getattr(n, "lineno", 0)
                    before = [t for ln, t in hist if ln < line]
                    if (before[-1] if before else hist[-1][1]):
                        return True
            elif isinstance(n, ast.Attribute) and n.attr in self.attr_taint:
                return True
            elif isinstance(n, ast.Constant) and isinstance(n.value, str) and RE_VAL_STRING.search(n.value):
                return True
            elif isinstance(n, ast.Call):
                last = self.resolve(n.func).split(".")[-1]
                if RE_VAL_LOADER.search(last):
                    return True
        return False

    def _carries_data(self, value: ast.AST) -> bool:
        """False for values that summarise data instead of holding it (scores, sizes, counts)."""
        if isinstance(value, ast.Call):
            last = self.resolve(value.func).split(".")[-1]
            if RE_SCORE.search(last) or last in SCALAR_CALLS:
                return False
        return not (isinstance(value, ast.Tuple) and value.elts and not any(self._carries_data(e) for e in value.elts))

    def scopes(self) -> list[ast.AST]:
        if self._scopes is None:
            self._scopes = [self.tree] + [n for n in self.walk(self.tree)
                                          if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        return self._scopes

    def _collect_taint(self) -> None:
        self.sites: dict[ast.AST, dict[str, list[tuple[int, bool]]]] = {}
        self.attr_taint: set[str] = set()
        for n in self.walk(self.tree):
            if isinstance(n, ast.Attribute) and RE_VAL_NAME.match(n.attr):
                self.attr_taint.add(n.attr)
        for scope in self.scopes():
            assigns = []
            for n in self.own_nodes(scope):
                if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and n.value is not None:
                    assigns += [(t, n.value, n.lineno) for t in (n.targets if isinstance(n, ast.Assign)
                                                                  else [n.target])]
                elif isinstance(n, ast.For):
                    assigns.append((n.target, n.iter, n.lineno))
                elif isinstance(n, ast.comprehension):
                    assigns.append((n.target, n.iter, n.iter.lineno))
            sites: dict[str, dict[int, bool]] = {}
            for t, _, ln in assigns:
                for name in self._target_names(t):
                    sites.setdefault(name, {})[ln] = False
            self.sites[scope] = {k: sorted(v.items()) for k, v in sites.items()}
            changed = True
            while changed:
                changed = False
                for target, value, ln in assigns:
                    if not (self._carries_data(value) and self.is_val(value, scope)):
                        continue
                    for name in self._target_names(target):
                        if isinstance(target, ast.Attribute):
                            if name not in self.attr_taint:
                                self.attr_taint.add(name)
                                changed = True
                        elif not sites[name][ln]:
                            sites[name][ln] = True
                            self.sites[scope][name] = sorted(sites[name].items())
                            changed = True

    @staticmethod
    def _target_names(t: ast.AST) -> list[str]:
        if isinstance(t, ast.Name):
            return [t.id]
        if isinstance(t, ast.Attribute):
            return [t.attr]
        if isinstance(t, (ast.Tuple, ast.List)):
            return [x for e in t.elts for x in ModuleScan._target_names(e)]
        return []

    # -- helpers for the rules
    def _calls(self, node: ast.AST):
        for n in self.walk(node):
            if isinstance(n, ast.Call):
                yield n, self.resolve(n.func)

    def _is_scoring(self, stmt: ast.AST) -> bool:
        for n in self.walk(stmt):
            if isinstance(n, ast.With):
                for item in n.items:
                    name = self.resolve(item.context_expr.func if isinstance(item.context_expr, ast.Call)
                                        else item.context_expr)
                    if name.endswith(("no_grad", "inference_mode")):
                        return True
            if isinstance(n, ast.Call):
                last = self.resolve(n.func).split(".")[-1]
                if RE_SCORE.search(last) and not TRAIN_CALLS.search("." + last):
                    return True
        return False

    def _is_training(self, stmt: ast.AST) -> bool:
        return any(TRAIN_CALLS.search(name) for _, name in self._calls(stmt))

    def add(self, pattern: str, node: ast.AST, evidence: str) -> None:
        self.res.findings.append(Finding(pattern, self.name, getattr(node, "lineno", 0), evidence))

    # -- the rules
    def run(self) -> None:
        for scope in self.scopes():
            self.scope = scope
            if not isinstance(scope, ast.Module):
                self._function_rules(scope)
            for n in self.own_nodes(scope):
                self._node_rules(n)

    def _node_rules(self, n: ast.AST) -> None:
        if isinstance(n, (ast.For, ast.While)):
            self._loop_rules(n)
        elif isinstance(n, ast.Call):
            self._call_rules(n)
        elif isinstance(n, ast.Assign):
            self._whole_stream_table(n)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""]
            net = [m for m in mods if m.split(".")[0] in NETWORK_MODULES]
            if net:
                self.add("eval_io", n, f"imports {', '.join(net)} (network access)")
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and re.match(r"https?://", n.value):
            self.add("eval_io", n, f"URL {n.value[:80]!r}")

    def _scored_first(self, loop: ast.AST, body: list[ast.stmt], at: int) -> bool:
        """Is there a scoring statement before ``body[at]`` in this loop or an enclosing loop's body?"""
        if any(self._is_scoring(x) for x in body[:at]):
            return True
        child, node = loop, self.parents.get(loop)
        while node is not None and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
            if isinstance(node, (ast.For, ast.While)) and child in node.body:
                i = node.body.index(child)
                if any(self._is_scoring(x) for x in node.body[:i]):
                    return True
            child, node = node, self.parents.get(node)
        return False

    def _enclosing(self, node: ast.AST, kinds) -> ast.AST | None:
        node = self.parents.get(node)
        while node is not None and not isinstance(node, kinds):
            node = self.parents.get(node)
        return node

    def _calls_of(self, fn: ast.AST) -> list[ast.Call]:
        """Every call in the module of the function ``fn`` (by its name, resolved aliases included)."""
        return [c for c, name in self._calls(self.tree) if name.split(".")[-1] == fn.name]

    def _callers_score_first(self, loop: ast.AST) -> bool:
        """Is the function holding ``loop`` called only after scoring, in its callers' loops?

        Phased TTT trains on already-scored documents in a helper (global SGD) that the scoring loop calls
        between phases; the helper's own loop scores nothing.  Legal when the helper is called at least once
        and every call stands in a loop body after a scoring statement (:meth:`_scored_first`)."""
        fn = self._enclosing(loop, (ast.FunctionDef, ast.AsyncFunctionDef))
        if fn is None:
            return False
        calls = self._calls_of(fn)
        if not calls:
            return False
        for call in calls:
            stmt, outer = call, self.parents.get(call)
            while outer is not None and not (isinstance(outer, (ast.For, ast.While)) and stmt in outer.body):
                if isinstance(outer, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)):
                    return False
                stmt, outer = outer, self.parents.get(outer)
            if outer is None or not self._scored_first(outer, outer.body, outer.body.index(stmt)):
                return False
        return True

    def _quantized_after(self, loop: ast.AST) -> tuple[str, int] | None:
        """A quantization call after ``loop`` in its function, or after a call of that function in a caller.

        Score-first ordering makes test-time training legal only when the scores taken in the loop are the
        reported ones; a model quantized after training on validation tokens is scored again, on tokens it has
        seen (pre-quant TTT on val, PR #1735)."""
        fn = self._enclosing(loop, (ast.FunctionDef, ast.AsyncFunctionDef))
        sites = [(fn if fn is not None else self.tree, loop.end_lineno)]  # (scope, the line the search starts after)
        if fn is not None:
            sites += [(self._enclosing(c, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Module)), c.lineno)
                      for c in self._calls_of(fn)]
        for scope, end in sites:
            for c, name in self._calls(scope):
                if c.lineno > end and RE_QUANTIZE.search(name.split(".")[-1]):
                    return name, c.lineno
        return None

    def _whole_stream_table(self, node: ast.Assign) -> None:
        """``counts = build_ngram(val_tokens)`` before the scoring that reads ``counts``: the table knows
        every validation token before any is scored."""
        if not (isinstance(node.value, ast.Call) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and RE_TABLE.search(node.targets[0].id)):
            return
        args = list(node.value.args) + [k.value for k in node.value.keywords]
        if not any(self.is_val(a) for a in args):
            return
        table = node.targets[0].id
        for c, name in self._calls(self.scope):
            if c.lineno > node.lineno and RE_SCORE.search(name.split(".")[-1]) and any(
                    isinstance(n, ast.Name) and n.id == table for a in c.args + [k.value for k in c.keywords]
                    for n in self.walk(a)):
                self.add("val_cache", node, f"{table} is built from the whole validation stream and read by "
                                            f"{name}() at line {c.lineno}")
                return

    def _scores_val(self, stmt: ast.AST) -> bool:
        return any(RE_SCORE.search(name.split(".")[-1]) and any(self.is_val(a) for a in c.args)
                   for c, name in self._calls(stmt))

    def _loop_rules(self, loop: ast.For | ast.While) -> None:
        body = loop.body
        backward_val = any(isinstance(c.func, ast.Attribute) and c.func.attr == "backward"
                           and self.is_val(c.func.value) for s in body for c in self.walk(s)
                           if isinstance(c, ast.Call))
        over_val = (isinstance(loop, ast.For) and self.is_val(loop.iter)) or backward_val
        score_at = next((i for i, s in enumerate(body) if self._is_scoring(s)), None)
        train_at = next((i for i, s in enumerate(body) if self._is_training(s)), None)
        nested = train_at is not None and isinstance(body[train_at], (ast.For, ast.While))
        if over_val and train_at is not None and not nested:
            if not self._scored_first(loop, body, train_at) and not self._callers_score_first(loop):
                self.add("val_training", body[train_at],
                         "trains (backward/optimizer step) on validation data with no scoring before it in the "
                         "loop body (test-time training without score-first ordering)")
            else:
                self.res.legal.append(f"{self.name}:{body[train_at].lineno}: score-first test-time training")
            quant = self._quantized_after(loop)
            if quant:
                self.add("val_training", body[train_at],
                         f"trains on validation data before {quant[0]}() at line {quant[1]} (pre-quantization "
                         "test-time training: the quantized model that is scored has seen every validation token)")
        for i, s in enumerate(body):
            fill = self._table_fill(s)
            if fill:
                if score_at is not None and score_at < i:
                    self.res.legal.append(f"{self.name}:{s.lineno}: {fill} updated after scoring (score-first)")
                else:
                    self.add("val_cache", s, f"{fill} filled from validation data in a loop with no scoring "
                                             "before the update")
        n = self._range_n(loop.iter) if isinstance(loop, ast.For) else 0
        if n >= 2 and any(self._scores_val(s) for s in body):
            self.add("two_pass", loop, f"scores validation data inside `for ... in range({n})` "
                                       "(several passes over the same tokens)")

    @staticmethod
    def _range_n(node: ast.AST) -> int:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
                and len(node.args) == 1 and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, int):
            return node.args[0].value
        return 0

    def _table_fill(self, stmt: ast.AST) -> str | None:
        """The table a statement fills from validation data (``counts[ctx] += 1``, ``cache.update(...)``)."""
        for n in self.walk(stmt):
            if isinstance(n, (ast.AugAssign, ast.Assign)):
                targets = [n.target] if isinstance(n, ast.AugAssign) else n.targets
                for t in targets:
                    if isinstance(t, ast.Subscript) and RE_TABLE.search(_dotted(t.value) or "") and \
                            (self.is_val(t.slice) or self.is_val(n.value)):
                        return _dotted(t.value)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and \
                    n.func.attr in TABLE_FILL_METHODS and RE_TABLE.search(_dotted(n.func.value) or "") and \
                    any(self.is_val(a) for a in n.args):
                return _dotted(n.func.value)
        return None

    def _call_rules(self, call: ast.Call) -> None:
        name = self.resolve(call.func)
        args = list(call.args) + [k.value for k in call.keywords]
        last = name.split(".")[-1]
        if RE_CALIB.search(last) and any(self.is_val(a) for a in args):
            self.add("val_training", call, f"{name}() calibrates on validation data")
        if STORE_CALLS.search(name) and any(self.is_val(a) for a in args):
            self.add("paid_prefix", call, f"{name}() stores validation data")
        if NETWORK_CALLS.search(name):
            self.add("eval_io", call, f"{name}() (network access)")
        if name.startswith("subprocess.") and any(isinstance(c, ast.Constant) and isinstance(c.value, str) and
                                                  re.search(r"\b(curl|wget|scp|rsync)\b", c.value)
                                                  for a in args for c in self.walk(a)):
            self.add("eval_io", call, f"{name}() runs a network tool")

    def _drives_training(self, fn: ast.FunctionDef) -> bool:
        """``train_and_eval()``: a driver named for training that calls a training function; the training
        data it names belongs to its training half, not to evaluation."""
        return bool(RE_TRAIN_FN.search(fn.name)) and any(
            RE_TRAIN_FN.search(name.split(".")[-1]) and name.split(".")[-1] != fn.name
            for _, name in self._calls(fn))

    def _function_rules(self, fn: ast.FunctionDef) -> None:
        if RE_TWO_PASS.search(fn.name):
            self.add("two_pass", fn, f"function {fn.name}() (rescoring)")
        if RE_EVAL_FN.search(fn.name) and not self._drives_training(fn):
            for n in self.walk(fn):
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and re.search(r"fineweb_train|train_\*",
                                                                                          n.value):
                    self.add("eval_io", n, f"{fn.name}() reads training data ({n.value[:60]!r}) at evaluation")
        # the same scoring call on validation data twice, the second fed with the first's result
        results: dict[str, tuple[str, int]] = {}
        for stmt in self.walk(fn):
            if not (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)):
                continue
            call = stmt.value
            name = self.resolve(call.func)
            args = list(call.args) + [k.value for k in call.keywords]
            if not (RE_SCORE.search(name.split(".")[-1]) and any(self.is_val(a) for a in args)):
                continue
            used = self._refs(ast.Tuple(elts=args, ctx=ast.Load()))
            prior = [v for k, v in results.items() if k in used and v[0] == name]
            if prior:
                self.add("two_pass", stmt, f"{name}() scores validation data again, fed with the result of its "
                                           f"call at line {prior[0][1]}")
            for t in stmt.targets:
                for nm in self._target_names(t):
                    results[nm] = (name, stmt.lineno)


# ----------------------------------------------------------------------------- folder


def _entry_files(folder: Path) -> list[Path]:
    main = folder / CODE_NAME
    if main.is_file():
        return [main]
    return sorted(p for p in folder.glob("train*.py") if p.is_file())


def _sibling_imports(tree: ast.Module, folder: Path) -> list[Path]:
    out = []
    for n in ast.walk(tree):
        mods = [a.name for a in n.names] if isinstance(n, ast.Import) else \
            [n.module] if isinstance(n, ast.ImportFrom) and n.module and not n.level else \
            [n.module or ""] if isinstance(n, ast.ImportFrom) else []
        for m in mods:
            p = folder / (m.replace(".", "/") + ".py") if m else None
            if p is not None and p.is_file():
                out.append(p)
    return out


def scan_folder(folder: str | Path) -> ScanResult:
    """Scan the folder's ``train_gpt.py`` (or its ``train*.py`` when it has none) and imported siblings."""
    folder = Path(folder)
    res = ScanResult()
    todo, seen = _entry_files(folder), set()
    while todo:
        p = todo.pop(0)
        if p in seen:
            continue
        seen.add(p)
        rel = str(p.relative_to(folder))
        try:
            text = p.read_text(encoding="utf-8", errors="replace")
        except OSError as e:
            res.errors.append(f"{rel}: cannot read ({e})")
            continue
        res.files.append(rel)
        for _ in range(MAX_DECODE_DEPTH):
            dec = decode_wrapper(text)
            if dec is None:
                break
            text = dec[0]
            res.decoded.append(f"{rel}: {dec[1]} wrapper")
        try:
            tree = ast.parse(text)
        except SyntaxError as e:
            res.errors.append(f"{rel}: not parseable Python (line {e.lineno}: {e.msg})")
            continue
        ModuleScan(tree, rel, res).run()
        todo += _sibling_imports(tree, folder)
    return res


def legality_checks(folder: str | Path) -> list[Check]:
    """``legality.scan`` (what was read, what could not be resolved) and one ``legality.<pattern>`` per pattern."""
    res = scan_folder(folder)
    if not res.files:
        return [Check("legality.scan", SKIP, message="no train_gpt.py (or train*.py) to scan")]
    what = ", ".join(res.files) + (f" (decoded: {'; '.join(res.decoded)})" if res.decoded else "")
    problems = res.errors + [f"could not resolve {u}" for u in res.unresolved[:8]]
    benign = (f"; unresolved, on objects without file/network access: {'; '.join(res.unresolved_benign[:4])}"
              if res.unresolved_benign else "")
    checks = [Check("legality.scan", WARN if problems else PASS, measured=len(res.files),
                    message=f"scanned {what}" + ("; " + "; ".join(problems) if problems else
                                                 ("; every alias resolved" if not benign else "")) + benign)]
    for key, text in PATTERNS.items():
        found = [f for f in res.findings if f.pattern == key]
        if found:
            ev = "; ".join(dict.fromkeys(str(f) for f in found[:6])) + (f"; +{len(found) - 6} more"
                                                                        if len(found) > 6 else "")
            checks.append(Check(f"legality.{key}", WARN, measured=len(found),
                                message=f"suspicious, needs a human: {text}: {ev}"))
        else:
            legal = [x for x in res.legal if key in ("val_training", "val_cache") and
                     (("training" in x) == (key == "val_training"))]
            checks.append(Check(f"legality.{key}", PASS, message=f"no {text} found"
                                + (f" (legal form seen: {'; '.join(legal[:3])})" if legal else "")))
    return checks
