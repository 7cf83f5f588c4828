"""Generate the self-contained ``train_gpt.py`` from golf's own shippable modules (SPEC §5.7).

The generated file is a two-line exec wrapper::

    import lzma as L,base64 as B
    exec(L.decompress(B.b85decode("..."),format=L.FORMAT_RAW,filters=[{"id":L.FILTER_LZMA2}]))

(or the brotli equivalent) whose payload is one flat module: the source text of every
shippable module (read from the installed golf package at build time, docstrings/comments/
annotations stripped with ``ast``), slimmed and merged into one namespace by
:mod:`golf.builder.slim`, then ``main(__file__, CONFIG)`` of ``golf.builder.entry``.  The same
modules are what golf itself runs, so there is no second copy of the model to drift.
"""
from __future__ import annotations

import ast
import base64
import hashlib
import json
import lzma
import sys
from pathlib import Path

import golf
from golf.builder import slim as slim_mod
from golf.errors import GolfError

# Paths relative to the golf package directory; globs allowed.  Order = install order.
SHIPPABLE = (
    "protocol.py",
    "errors.py",
    "fsutil.py",
    "device.py",
    "progress.py",
    "config.py",
    "data/shards.py",
    "data/loader.py",
    "metric.py",
    "model/*.py",
    "trainer/muon.py",
    "trainer/schedule.py",
    "builder/grouped.py",
    "builder/lqer.py",
    "builder/container.py",
    "verifier/scoring/protocol.py",
    "builder/entry.py",
)
# Shipped only when present and shippable-clean: the reproduction (GOLF_MODE=train) path.
TRAIN_PATH = (
    "trainer/checkpoint.py",
    "trainer/ema.py",
    "trainer/optim.py",
    "trainer/runlog.py",
    "data/packing.py",
    "trainer/loop.py",
    "builder/quant.py",
)
ALLOWED_THIRD_PARTY = {"numpy", "torch", "sentencepiece"}

# docs/DESIGN.md's copy of SHIPPABLE / TRAIN_PATH lives between these markers (tests/test_codegen.py checks it)
DESIGN_REGENERATE = "python -m golf.builder.codegen --design"
DESIGN_BEGIN = f"<!-- shipped modules: generated from golf/builder/codegen.py by `{DESIGN_REGENERATE}`; do not edit -->"
DESIGN_END = "<!-- end of shipped modules -->"


class CodegenError(ValueError, GolfError):
    pass


def _strip_node(node: ast.AST) -> None:
    """Remove docstrings (replacing an emptied body by ``pass``) and function annotations, recursively."""
    for n in ast.walk(node):
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = n.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body.pop(0)
                if not body and not isinstance(n, ast.Module):
                    body.append(ast.Pass())
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            n.returns = None
            a = n.args
            for arg in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg]:
                if arg is not None:
                    arg.annotation = None


def _reindent(src: str) -> str:
    """ast.unparse indents by 4 spaces and puts every statement on one line: use 1 space."""
    out = []
    for line in src.splitlines():
        stripped = line.lstrip(" ")
        n = len(line) - len(stripped)
        out.append(" " * (n // 4) + stripped)
    return "\n".join(out) + "\n"


def _source(tree: ast.AST) -> str:
    """``tree`` as compact source (1-space indents); the result is checked to parse back to ``tree``."""
    text = ast.unparse(tree)
    small = _reindent(text)
    if ast.dump(ast.parse(small)) != ast.dump(ast.parse(text)):  # pragma: no cover - safety net
        small = text + "\n"
    return small


def strip_source(src: str, name: str = "<module>") -> str:
    """Comments, docstrings and function annotations removed; semantics checked via the AST."""
    tree = ast.parse(src, filename=name)
    _strip_node(tree)
    return _source(tree)


def _stdlib() -> set:
    return set(getattr(sys, "stdlib_module_names", ())) | {"__future__"}


def check_shippable(modname: str, src: str, shipped: set) -> list[str]:
    """Problems with a module's top-level imports under the shippable rules (empty = clean)."""
    problems = []
    std = _stdlib()
    for node in ast.parse(src).body:
        mods = []
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                problems.append(f"{modname}: relative import (use absolute golf.* imports)")
                continue
            mods = [node.module or ""]
            if node.module == "golf" or (node.module or "").startswith("golf."):
                # `from golf.x import y` may import a submodule y
                mods = [node.module + "." + a.name if node.module + "." + a.name in shipped else node.module
                        for a in node.names]
        for m in mods:
            top = m.split(".")[0]
            if top == "golf":
                if m not in shipped:
                    problems.append(f"{modname}: imports {m}, which is not a shippable module")
            elif top not in std and top not in ALLOWED_THIRD_PARTY:
                problems.append(f"{modname}: top-level import of {m} (only stdlib, numpy, torch, sentencepiece "
                                "and shippable golf modules; import optional packages lazily inside functions)")
    return problems


def _package_dir() -> Path:
    return Path(golf.__file__).resolve().parent


def _expand(patterns, root: Path) -> list[Path]:
    files = []
    for pat in patterns:
        for p in sorted(root.glob(pat)):
            if p.is_file() and p not in files:
                files.append(p)
    return files


def _modname(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = ["golf", *rel.parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _module_sources(include_train: bool) -> tuple[dict, list[str]]:
    """``({module: source as written}, notes)``: the shippable list (+ the train path when clean)
    and the packages around it, checked against the shipping rules."""
    root = _package_dir()
    files = _expand(SHIPPABLE, root)
    mods: dict[str, str] = {}
    for f in files:
        mods[_modname(f, root)] = f.read_text(encoding="utf-8")
    notes = []
    if include_train:
        for f in _expand(TRAIN_PATH, root):
            mods.setdefault(_modname(f, root), f.read_text(encoding="utf-8"))
    packages = set()
    for m in list(mods):
        parts = m.split(".")
        for i in range(1, len(parts)):
            packages.add(".".join(parts[:i]))
    for p in sorted(packages):
        init = root.joinpath(*p.split(".")[1:], "__init__.py")
        mods.setdefault(p, init.read_text(encoding="utf-8") if init.is_file() else "")
    # check the shippable rules; optional train-path modules that break them are dropped
    required = {_modname(f, root) for f in files} | packages
    changed = True
    while changed:
        changed = False
        names = set(mods)
        for m in sorted(mods):
            problems = check_shippable(m, mods[m], names)
            if m in packages and any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.parse(mods[m]).body):
                problems.append(f"{m}: package __init__ of a shipped package must stay docstring-only")
            if problems:
                if m in required:
                    raise CodegenError("shippable module breaks the shipping rules (docs/DESIGN.md): "
                                       + "; ".join(problems))
                notes.append(f"not shipped: {m} ({problems[0]})")
                del mods[m]
                changed = True
    return mods, notes


def top_code(cfg) -> bool:
    """Whether ``train_gpt.py`` keeps the ``TOP_CODE`` branches (golf/__init__.py): the config uses a feature
    of the 2026-04-27 record.  Without them a config asking for one fails loudly (its tensors are missing)."""
    m = cfg.model
    return bool(m.smear_gate or m.sparse_attn_gate or m.parallel_mode == "top" or m.fused_kernels
                or cfg.train.doc_packing)


# Build flags a config folds (names and toolkit values in golf/__init__.py): code behind a flag the
# config leaves off is not shipped in its train_gpt.py.
FEATURE_FLAGS = {
    "TOP_CODE": top_code,
    "POLAR_EXPRESS": lambda cfg: cfg.train.muon_polar_express or cfg.train.muon_bf16_momentum,
    "FRONTIER_QUANT": lambda cfg: cfg.quant.gate_int8 or cfg.quant.control_dtype == "fp16",
    "GROUPED_CODE": lambda cfg: cfg.quant.compressor == "grouped",
    "LQER_CODE": lambda cfg: cfg.quant.lqer_enabled,
    "TTT_CODE": lambda cfg: cfg.eval.ttt_enabled,
}


def feature_flags(cfg=None) -> dict:
    """``{flag: value}`` of :data:`FEATURE_FLAGS` for ``cfg`` (None: every feature on, as the toolkit)."""
    return {k: True if cfg is None else bool(f(cfg)) for k, f in FEATURE_FLAGS.items()}


def shipped_source(include_train: bool = True, slim: bool = True, minify: bool = True,
                   features: dict | None = None) -> tuple[str, list, list]:
    """``(source, modules, notes)``: every shipped module merged into one flat module.

    Always: docstrings/comments/annotations stripped, the build flags folded (``TOOLKIT`` False,
    ``TRAIN_CODE`` = ``include_train``, ``features`` from :func:`feature_flags`, default all on) and the
    modules merged into one namespace
    (golf.builder.slim.flatten, which refuses modules that disagree on a top-level name).
    ``slim`` also inlines the ``golf.protocol`` constants and shakes out unused code; ``minify`` then
    renames names with python-minifier.  The result defines ``main``; nothing in it reads an undefined global.
    """
    mods, notes = _module_sources(include_train)
    trees = {}
    for m, src in mods.items():
        tree = ast.parse(src, filename=m)
        _strip_node(tree)
        trees[m] = slim_mod.fold_toolkit(tree, {"TRAIN_CODE": include_train, **(features or feature_flags())})
    if slim:
        slim_mod.inline_constants(trees, "golf.protocol")
        dropped = slim_mod.shake(trees, roots=[ast.parse(_ENTRY_IMPORT)])
        for tree in trees.values():
            slim_mod.erase_field_types(tree)
        if dropped:
            notes.append(f"not shipped (unused): {len(dropped)} definitions")
    shipped = [m for m in trees if any(not (isinstance(n, ast.ImportFrom) and n.module == "__future__")
                                       for n in trees[m].body)]
    try:
        flat = slim_mod.flatten(trees)
    except slim_mod.SlimError as e:
        raise CodegenError(f"cannot merge the shipped modules: {e}") from None
    text = _source(flat)
    if slim and minify:
        text = slim_mod.minify(text, {"main"}) + "\n"
        if "main" not in slim_mod.top_level_names(text):  # pragma: no cover - python-minifier misbehaving
            raise CodegenError("python-minifier renamed main(); build with minify off")
    bad = slim_mod.undefined_globals(text, "train_gpt")
    if bad:
        raise CodegenError(f"shipped code reads undefined names {sorted(bad)} (a TOOLKIT block or "
                           "unused-code removal left a dangling reference)")
    return text, sorted(shipped, key=lambda m: (m.count("."), m)), notes


_ENTRY_IMPORT = "from golf.builder.entry import main"


# Per-run settings that must not be baked into the shared code: every seed of an entry ships
# the same train_gpt.py (the seed comes from SEED, the paths from DATA_DIR / GOLF_RUN_DIR).
RUN_SPECIFIC = ("seed", "data_dir", "run_dir", "hub_repo")


def code_config(cfg) -> dict:
    """The config embedded in train_gpt.py: the non-default settings minus the run-specific ones."""
    from golf.config import config_delta
    conf = config_delta(cfg)
    train = {k: v for k, v in conf.get("train", {}).items() if k not in RUN_SPECIFIC}
    if train:
        conf["train"] = train
    else:
        conf.pop("train", None)
    return conf


def payload_source(cfg, include_train: bool = True, slim: bool = True,
                   minify: bool = True) -> tuple[str, list[str], list[str]]:
    """``(payload python source, shipped module names, notes)``: the flat source and the call of
    ``main(__file__, CONFIG)``."""
    src, mods, notes = shipped_source(include_train, slim=slim, minify=minify, features=feature_flags(cfg))
    conf = json.dumps(code_config(cfg), sort_keys=True, separators=(",", ":"))
    return src + "main(__file__,%r)\n" % conf, mods, notes


def _lzma_raw(data: bytes) -> bytes:
    best = None
    for lc, lp, pb in ((3, 0, 2), (4, 0, 0), (1, 0, 0), (0, 0, 0)):
        f = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "lc": lc, "lp": lp, "pb": pb}]
        out = lzma.compress(data, format=lzma.FORMAT_RAW, filters=f)
        if best is None or len(out) < len(best):
            best = out
    return best


def wrap(payload: str, compressor: str = "lzma") -> str:
    """The exec wrapper text for ``payload`` (raw LZMA2 or brotli, base85)."""
    raw = payload.encode("utf-8")
    if compressor == "lzma":
        b = base64.b85encode(_lzma_raw(raw)).decode("ascii")
        return ('import lzma as L,base64 as B\nexec(L.decompress(B.b85decode("%s"),format=L.FORMAT_RAW,'
                'filters=[{"id":L.FILTER_LZMA2}]))\n' % b)
    if compressor == "brotli":
        import brotli
        b = base64.b85encode(brotli.compress(raw, quality=11, lgwin=24)).decode("ascii")
        return 'import brotli as R,base64 as B\nexec(R.decompress(B.b85decode("%s")))\n' % b
    raise CodegenError(f"unknown code compressor {compressor!r} (lzma | brotli)")


def build_flags(code_compressor: str, include_train: bool, source_sha256: str | None = None) -> dict:
    """What :func:`regenerate` needs besides the config, plus provenance: recorded in the blob's meta by
    ``golf build``.  ``golf`` (the version) and ``source_sha256`` (generate's ``payload_sha256``) only let
    ``golf verify`` say why a train_gpt.py does not regenerate; they are the builder's claim, never trusted."""
    flags = {"code_compressor": code_compressor, "train_code": bool(include_train), "golf": golf.__version__}
    if source_sha256 is not None:
        flags["source_sha256"] = source_sha256
    return flags


def regenerate_info(meta: dict) -> tuple[str, dict]:
    """``(train_gpt.py, generate's info)`` as the installed golf generates it from a blob's meta."""
    from golf.config import GolfConfig
    flags = meta.get("build") or {}
    cfg = GolfConfig.from_dict(meta["config"])
    return generate(cfg, flags.get("code_compressor", "lzma"), include_train=flags.get("train_code", True))


def regenerate(meta: dict) -> str:
    """``train_gpt.py`` as the installed golf generates it from a blob's meta (config + build flags)."""
    return regenerate_info(meta)[0]


def generate(cfg, compressor: str = "lzma", include_train: bool = True, slim: bool = True,
             minify: bool = True) -> tuple[str, dict]:
    """Return ``(train_gpt.py text, info)``; ``compressor`` may be ``auto`` (smaller of lzma/brotli)."""
    payload, mods, notes = payload_source(cfg, include_train, slim=slim, minify=minify)
    if compressor == "auto":
        cands = [wrap(payload, "lzma")]
        try:
            cands.append(wrap(payload, "brotli"))
        except ImportError:
            pass
        text = min(cands, key=len)
        compressor = "lzma" if text.startswith("import lzma") else "brotli"
    else:
        text = wrap(payload, compressor)
    raw = payload.encode()
    info = {"code_compressor": compressor, "payload_bytes": len(raw), "bytes": len(text.encode()),
            "payload_sha256": hashlib.sha256(raw).hexdigest(), "modules": mods, "notes": notes}
    return text, info


def design_block() -> str:
    """docs/DESIGN.md's list of the shipped modules, from :data:`SHIPPABLE` and :data:`TRAIN_PATH`."""
    def names(paths):
        return ", ".join(f"`golf/{p}`" for p in paths)
    return "\n".join([
        DESIGN_BEGIN,
        "Shipped in every build (evaluation, `SHIPPABLE` in `golf/builder/codegen.py`, in install order): "
        + names(SHIPPABLE) + ".",
        "",
        "Shipped only with the training path (`GOLF_MODE=train`, not in an evaluation-only build; `TRAIN_PATH`, "
        "each only while it keeps the rules above): " + names(TRAIN_PATH) + ".",
        DESIGN_END,
    ]) + "\n"


def design_text(text: str) -> str:
    """``text`` (docs/DESIGN.md) with its shipped-modules block replaced by :func:`design_block`."""
    head, sep, rest = text.partition(DESIGN_BEGIN)
    _, sep2, tail = rest.partition(DESIGN_END + "\n")
    if not sep or not sep2:
        raise CodegenError(f"docs/DESIGN.md has no shipped-modules block ({DESIGN_BEGIN} ... {DESIGN_END})")
    return head + design_block() + tail


if __name__ == "__main__":  # pragma: no cover - exercised by tests/test_codegen.py through design_text
    if sys.argv[1:] != ["--design"]:
        sys.exit(f"usage: {DESIGN_REGENERATE}   (rewrites the shipped-modules block of docs/DESIGN.md)")
    doc = Path(__file__).resolve().parents[2] / "docs" / "DESIGN.md"
    doc.write_text(design_text(doc.read_text(encoding="utf-8")), encoding="utf-8")
