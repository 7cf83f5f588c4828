"""Official Parameter Golf token-shard format (SPEC §1.1).

Layout: 256 little-endian int32 header (magic 20240520, version 1, token count N,
zeros), then N little-endian uint16 tokens.  File size must be exactly 1024 + 2·N.

Shipped inside the generated ``train_gpt.py``: numpy + standard library only.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from golf import TOOLKIT
from golf.errors import GolfError
from golf.fsutil import atomic_write

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
MAX_TOKENS = 2**31 - 1
SIDECAR_SPLIT = "val_bytes"  # fineweb_val_bytes_NNNNNN.bin: per-token original bytes of the val tokens
# the record's names for the CaseOps variant: datasets/fineweb10B_sp<V><this>/, tokenizers/fineweb_<V>_bpe<this>.model
CASEOPS_SUFFIX = "_lossless_caps_caseops_v1_reserved"


class ShardError(ValueError, GolfError):
    """A token shard is malformed; the message names the file and the problem."""


def shard_header(num_tokens: int) -> np.ndarray:
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = SHARD_MAGIC, SHARD_VERSION, num_tokens
    return header


def write_shard(path: str | os.PathLike, tokens: np.ndarray) -> int:
    """Write ``tokens`` atomically (temp file in the same dir, then rename); returns bytes written."""
    path = Path(path)
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ShardError(f"{path}: tokens must be 1-D, got shape {tokens.shape}")
    if tokens.size >= 2**31:
        raise ShardError(f"{path}: {tokens.size} tokens do not fit a shard (< 2^31)")
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) > 65535):
        raise ShardError(f"{path}: token ids must lie in [0, 65535]")
    data = tokens.astype("<u2", copy=False)

    def write(f):
        f.write(shard_header(data.size).tobytes())
        f.write(data.tobytes())

    atomic_write(path, write, fsync=True)
    return HEADER_BYTES + 2 * data.size


def read_shard_header(path: str | os.PathLike) -> int:
    """Validate the header and size of a shard; returns its token count."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except OSError as e:
        raise ShardError(f"{path}: cannot read shard ({e.strerror or e})") from None
    if len(raw) < HEADER_BYTES:
        raise ShardError(f"{path}: truncated header ({len(raw)} of {HEADER_BYTES} bytes)")
    header = np.frombuffer(raw, dtype="<i4")
    if int(header[0]) != SHARD_MAGIC:
        raise ShardError(f"{path}: bad magic {int(header[0])} (expected {SHARD_MAGIC})")
    if int(header[1]) != SHARD_VERSION:
        raise ShardError(f"{path}: unsupported version {int(header[1])} (expected {SHARD_VERSION})")
    n = int(header[2])
    if n < 0:
        raise ShardError(f"{path}: negative token count {n}")
    expected = HEADER_BYTES + 2 * n
    if size != expected:
        raise ShardError(f"{path}: {'truncated' if size < expected else 'padded'}: {size} bytes, "
                         f"header promises {n} tokens ({expected} bytes)")
    return n


def read_shard(path: str | os.PathLike, vocab_size: int | None = None, check_tokens: bool = True) -> np.ndarray:
    """Memory-map a shard's tokens (read-only uint16). With ``vocab_size``, ids must be < it."""
    n = read_shard_header(path)
    tokens = np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(n,)) if n else np.zeros(0, "<u2")
    if vocab_size is not None and check_tokens and n:
        top = int(tokens.max())
        if top >= vocab_size:
            pos = int(np.argmax(tokens >= vocab_size))
            raise ShardError(f"{path}: token id {top} >= vocab size {vocab_size} (first bad token at index {pos})")
    return tokens


def list_shards(dataset_dir: str | os.PathLike, split: str) -> list[Path]:
    """Sorted ``fineweb_{split}_NNNNNN.bin`` files (never the ``_bytes_`` sidecars); split ``val_bytes``:
    the validation byte sidecars ``fineweb_val_bytes_NNNNNN.bin`` (CaseOps, SPEC §1.1)."""
    if TOOLKIT and split not in ("train", "val", SIDECAR_SPLIT):  # caller checks: toolkit only
        raise ValueError(f"split must be 'train', 'val' or '{SIDECAR_SPLIT}', got {split!r}")
    d = Path(dataset_dir)
    files = [p for p in d.glob(f"fineweb_{split}_*.bin") if split == SIDECAR_SPLIT or "_bytes_" not in p.name]
    return sorted(files, key=lambda p: p.name)


def manifest_names(root: str | os.PathLike, vocab_size: int) -> tuple[str, str] | None:
    """``(dataset folder, tokenizer model)`` relative to ``root`` as ``root/manifest.json`` names them: its
    dataset of ``vocab_size`` whose folder exists (the official ``fineweb10B_spV`` first); None without one."""
    root = Path(root)
    try:
        m = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        toks = {t["name"]: t.get("model_path") for t in m["tokenizers"]}
        found = [(str(d["path"]), toks[d["tokenizer_name"]]) for d in m["datasets"]
                 if d.get("vocab_size") == vocab_size and (root / str(d["path"])).is_dir()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    found.sort(key=lambda f: Path(f[0]).name != f"fineweb10B_sp{vocab_size}")
    if TOOLKIT and len(found) > 1 and Path(found[0][0]).name != f"fineweb10B_sp{vocab_size}":
        raise ShardError(f"{root}/manifest.json lists several datasets of vocab {vocab_size} "
                         f"({', '.join(f[0] for f in found)}): set DATA_PATH and TOKENIZER_PATH to pick one")
    return found[0] if found and found[0][1] else None


def data_paths(root: str | os.PathLike, vocab_size: int, environ=None) -> tuple[Path, Path]:
    """``(dataset dir, tokenizer path)`` for vocab ``vocab_size`` under a data root: the names its
    ``manifest.json`` gives (:func:`manifest_names`), else the official ones
    (``datasets/fineweb10B_spV/``, ``tokenizers/fineweb_V_bpe.model``; the CaseOps export's names
    with ``CASEOPS_SUFFIX`` when only that folder exists).

    ``DATA_PATH`` / ``TOKENIZER_PATH`` in ``environ`` (default: the process environment) override;
    a root that holds the validation shards itself is taken as the dataset dir.  Nothing is
    required to exist: callers check what they need and say so.
    """
    env = os.environ if environ is None else environ
    root = Path(root)
    ds = root / "datasets" / f"fineweb10B_sp{vocab_size}"
    x = CASEOPS_SUFFIX * (not ds.is_dir() and Path(f"{ds}{CASEOPS_SUFFIX}").is_dir())
    ds, name, cands = Path(f"{ds}{x}"), f"fineweb_{vocab_size}_bpe{x}.model", []
    if TOOLKIT and (named := manifest_names(root, vocab_size)):  # train_gpt.py: the official names only
        ds, name = root / named[0], Path(named[1]).name
        cands = [root / named[1]]
    if env.get("DATA_PATH"):
        ds = Path(env["DATA_PATH"])
    elif not ds.is_dir() and list_shards(root, "val"):
        ds = root
    if env.get("TOKENIZER_PATH"):
        return ds, Path(env["TOKENIZER_PATH"])
    cands += [root / "tokenizers" / name, ds.parent.parent / "tokenizers" / name, ds / name]
    return ds, next((c for c in cands if c.is_file()), cands[0])


def shard_name(split: str, index: int) -> str:
    return f"fineweb_{split}_{index:06d}.bin"
