"""The record's (2026 frontier, ../shared/reference/frontier_1.0611/train_gpt.py) serialization and LQER
functions as an oracle: the named top-level definitions are taken from its source with ``ast`` and run
in a namespace of their own (the script itself imports triton/flash-attn, so it is not imported whole).
Nothing is copied into golf: the benchmarks and tests call these to measure golf against them."""
from __future__ import annotations

import ast
import collections
import io
import os
import subprocess
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
FRONTIER = ROOT.parent / "shared" / "reference" / "frontier_1.0611" / "train_gpt.py"
NAMES = {"_similarity_sort_l1", "_lrzip_compress", "_lrzip_decompress", "_pack_streams", "_unpack_streams",
         "_serialize_pergroup", "_deserialize_pergroup", "_lqer_pack_asym", "_lqer_pack", "_GROUP_ORDER",
         "_SIMSORT_KEYS", "_PACK_MAGIC"}


def frontier_script() -> Path | None:
    p = Path(os.environ.get("GOLF_FRONTIER_SCRIPT") or FRONTIER)
    return p if p.is_file() else None


def load_frontier(path: Path | None = None) -> types.SimpleNamespace:
    """The record's pack/LQER functions, by name (see :data:`NAMES`)."""
    path = path or frontier_script()
    tree = ast.parse(Path(path).read_text())
    keep = [n for n in tree.body
            if (isinstance(n, ast.FunctionDef) and n.name in NAMES)
            or (isinstance(n, ast.Assign) and any(getattr(t, "id", "") in NAMES for t in n.targets))]
    ns = {"collections": collections, "io": io, "os": os, "subprocess": subprocess, "torch": torch}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec"), ns)
    return types.SimpleNamespace(**{k: v for k, v in ns.items() if k in NAMES})
