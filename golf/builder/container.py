"""Pickle-free model container: header + JSON index + raw little-endian arrays, compressed.

Shipped inside the generated ``train_gpt.py``: numpy, torch and the standard library
only (``brotli`` is imported lazily).  Loading parses JSON and calls ``np.frombuffer``;
it can never execute code.

File layout (all integers little-endian)::

    0  4  magic b"GOLF"
    4  1  format version (1)
    5  1  compressor id: 0 none, 1 brotli, 2 lzma (raw LZMA2), 3 zlib, 4 grouped (golf.builder.grouped)
    6  1  flags: bit 0 = per-tensor byte shuffle
    7  1  reserved (0)
    8  8  uint64 payload length (uncompressed)
    16 4  uint32 CRC-32 of the uncompressed payload
    20 .. compressed payload

Payload: uint32 index length, the UTF-8 JSON index
``{"t": [[name, dtype, shape, offset, nbytes], ...], "m": meta}``, then the data region.
With the shuffle flag every array whose item size is > 1 byte is stored as its byte
planes (all first bytes, then all second bytes, ...), which the entropy coder likes.

Quantized state dicts keep their routing in ``meta["q"]``: ``{name: [kind, dtype]}``
with kind ``q`` (``name.q`` int8 values and ``name.s`` fp16 per-row scales, W = q·s),
``ql`` (kind ``q`` plus the LQER factors ``name.lqa``/``.lqas``/``.lqb``/``.lqbs``, W = q·s + (qA·sA)(qB·sB),
golf/builder/lqer.py), ``h`` (``name`` stored fp16) or ``r`` (``name`` stored as is: fp32 control tensors,
integers); every kind is cast back to the original ``dtype`` on load.
"""
from __future__ import annotations

import json
import lzma
import struct
import zlib

import numpy as np
import torch

from golf import GROUPED_CODE, LQER_CODE, TOOLKIT
from golf.builder.grouped import grouped_decode, grouped_encode
from golf.builder.lqer import lqer_correction
from golf.errors import GolfError

MAGIC = b"GOLF"
VERSION = 1
HEADER = struct.Struct("<4sBBBBQI")
COMPRESSORS = {"none": 0, "brotli": 1, "lzma": 2, "zlib": 3, "grouped": 4}
_NAMES = {v: k for k, v in COMPRESSORS.items()}
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9}]
_DTYPES = {
    "float32": ("<f4", torch.float32), "float16": ("<f2", torch.float16), "bfloat16": ("<i2", torch.bfloat16),
    "float64": ("<f8", torch.float64), "int8": ("i1", torch.int8), "uint8": ("u1", torch.uint8),
    "int16": ("<i2", torch.int16), "int32": ("<i4", torch.int32), "int64": ("<i8", torch.int64),
    "bool": ("u1", torch.bool),
}


class ContainerError(ValueError, GolfError):
    """A model blob is malformed, truncated, corrupt or of an unsupported version."""


def available_compressors() -> list[str]:
    out = ["lzma", "zlib", "none"]
    try:
        import brotli  # noqa: F401
        out[:0] = ["brotli", "grouped"]
    except ImportError:
        pass
    return out


def _brotli():
    try:
        import brotli
    except ImportError:
        raise ContainerError("this blob needs brotli, but the brotli module is not installed (pip install brotli)") \
            from None
    return brotli


def compress(raw: bytes, name: str) -> bytes:
    if name == "brotli":
        return _brotli().compress(raw, quality=11, lgwin=24)
    if GROUPED_CODE and name == "grouped":
        return grouped_encode(raw, lambda b: compress(b, "brotli"), lambda b: _brotli().compress(b, quality=5))
    if name == "lzma":
        return lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    if name == "zlib":
        return zlib.compress(raw, 9)
    if name == "none":
        return bytes(raw)
    raise ContainerError(f"unknown compressor {name!r} (known: {', '.join(COMPRESSORS)})")


def decompress(data: bytes, name: str) -> bytes:
    try:
        if name == "brotli":
            return _brotli().decompress(data)
        if GROUPED_CODE and name == "grouped":
            return grouped_decode(data, lambda b: decompress(b, "brotli"))
        if name == "lzma":
            return lzma.decompress(data, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
        if name == "zlib":
            return zlib.decompress(data)
        if name == "none":
            return bytes(data)
    except ContainerError:
        raise
    except Exception as e:  # brotli.error, lzma.LZMAError, zlib.error
        raise ContainerError(f"corrupt {name} data: {e}") from None
    raise ContainerError(f"unknown compressor {name!r}")


def _to_numpy(t) -> tuple[str, np.ndarray]:
    if isinstance(t, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(t))
    if TOOLKIT and not isinstance(t, torch.Tensor):  # packing checks: the artifact packs its own model
        raise ContainerError(f"cannot store object of type {type(t).__name__}")
    dt = str(t.dtype).replace("torch.", "")
    if TOOLKIT and dt not in _DTYPES:
        raise ContainerError(f"unsupported dtype {dt}")
    t = t.detach().cpu().contiguous()
    if dt == "bfloat16":
        t = t.view(torch.int16)
    elif dt == "bool":
        t = t.to(torch.uint8)
    return dt, t.numpy().astype(_DTYPES[dt][0], copy=False)


def _shuffle(b: bytes, itemsize: int) -> bytes:
    if itemsize <= 1:
        return b
    return np.frombuffer(b, np.uint8).reshape(-1, itemsize).T.tobytes()


def _unshuffle(b: bytes, itemsize: int) -> bytes:
    if itemsize <= 1:
        return b
    return np.frombuffer(b, np.uint8).reshape(itemsize, -1).T.tobytes()


def compressed_size(arrays: dict, compressor: str = "brotli", shuffle: bool = True) -> int:
    """Bytes of ``arrays``' data alone (no header/index) after shuffle + compression: for size reports
    (``grouped``: the blob of ``arrays`` alone less an empty blob's)."""
    if GROUPED_CODE and compressor == "grouped":
        return len(pack(arrays, {}, compressor, shuffle)) - len(pack({}, {}, compressor, shuffle))
    chunks = []
    for t in arrays.values():
        _, a = _to_numpy(t)
        chunks.append(_shuffle(a.tobytes(), a.itemsize) if shuffle else a.tobytes())
    return len(compress(b"".join(chunks), compressor))


def pack(arrays: dict, meta: dict | None = None, compressor: str = "brotli", shuffle: bool = True) -> bytes:
    """Serialize ``{name: tensor}`` (in the given order) plus JSON ``meta`` into blob bytes.

    Deterministic: the same input always gives identical bytes.
    """
    if compressor not in COMPRESSORS:
        raise ContainerError(f"unknown compressor {compressor!r} (known: {', '.join(COMPRESSORS)})")
    index, chunks, off = [], [], 0
    for name, t in arrays.items():
        dt, a = _to_numpy(t)
        b = a.tobytes()
        if shuffle:
            b = _shuffle(b, a.itemsize)
        index.append([str(name), dt, list(a.shape), off, len(b)])
        chunks.append(b)
        off += len(b)
    js = json.dumps({"t": index, "m": meta or {}}, sort_keys=True, separators=(",", ":")).encode()
    payload = struct.pack("<I", len(js)) + js + b"".join(chunks)
    head = HEADER.pack(MAGIC, VERSION, COMPRESSORS[compressor], 1 if shuffle else 0, 0, len(payload),
                       zlib.crc32(payload) & 0xFFFFFFFF)
    return head + compress(payload, compressor)


def read_header(data: bytes) -> dict:
    """Parse and check the fixed header; returns version, compressor, shuffle, length, crc."""
    if len(data) < HEADER.size:
        raise ContainerError(f"blob truncated: {len(data)} bytes, shorter than the {HEADER.size}-byte header")
    magic, ver, comp, flags, _, length, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise ContainerError(f"not a golf model blob (bad magic {magic!r}, expected {MAGIC!r})")
    if ver != VERSION:
        raise ContainerError(f"unsupported blob format version {ver} (this loader reads version {VERSION})")
    if comp not in _NAMES:
        raise ContainerError(f"unknown compressor id {comp} in blob header")
    return {"version": ver, "compressor": _NAMES[comp], "shuffle": bool(flags & 1), "length": length, "crc": crc}


def unpack(data: bytes) -> tuple[dict, dict, dict]:
    """Blob bytes -> (``{name: torch.Tensor}``, meta, header info). Raises ContainerError on any defect."""
    info = read_header(data)
    payload = decompress(memoryview(data)[HEADER.size:].tobytes(), info["compressor"])
    if len(payload) != info["length"]:
        raise ContainerError(f"blob truncated or corrupt: payload is {len(payload)} bytes, "
                             f"header says {info['length']}")
    if zlib.crc32(payload) & 0xFFFFFFFF != info["crc"]:
        raise ContainerError("blob corrupt: CRC-32 mismatch")
    try:
        (n,) = struct.unpack_from("<I", payload)
        index = json.loads(payload[4:4 + n].decode("utf-8"))
        entries, meta = index["t"], index["m"]
    except Exception as e:
        raise ContainerError(f"blob corrupt: unreadable index ({e})") from None
    base, arrays = 4 + n, {}
    for e in entries:
        try:
            name, dt, shape, off, nb = e
            npdt, tdt = _DTYPES[dt]
            shape = [int(s) for s in shape]
        except Exception:
            raise ContainerError(f"blob corrupt: bad index entry {e!r}") from None
        isz = np.dtype(npdt).itemsize
        numel = int(np.prod(shape)) if shape else 1
        if nb != numel * isz or off < 0 or base + off + nb > len(payload) or name in arrays:
            raise ContainerError(f"blob corrupt: entry {name!r} is inconsistent with the data")
        b = payload[base + off:base + off + nb]
        if info["shuffle"]:
            b = _unshuffle(b, isz)
        t = torch.from_numpy(np.frombuffer(b, npdt).copy().reshape(shape))
        if dt == "bfloat16":
            t = t.view(torch.bfloat16)
        elif dt == "bool":
            t = t.to(torch.bool)
        arrays[name] = t
    return arrays, meta, info


def dequantize(arrays: dict, meta: dict) -> dict:
    """Rebuild a float state dict from the quantized arrays and ``meta["q"]`` routing."""
    out = {}
    for name, (kind, dt) in meta["q"].items():
        tdt = _DTYPES[dt][1]
        if kind == "q" or LQER_CODE and kind == "ql":
            q, s = arrays[name + ".q"], arrays[name + ".s"]
            w = q.float() * s.float().view(-1, *([1] * (q.dim() - 1)))
            if LQER_CODE and kind == "ql":
                w = w + lqer_correction(*(arrays[name + x] for x in (".lqa", ".lqas", ".lqb", ".lqbs"))).view(w.shape)
            out[name] = w.to(tdt)
        elif kind == "h":
            out[name] = arrays[name].to(tdt)
        elif kind == "r":
            out[name] = arrays[name].to(tdt)
        else:
            raise ContainerError(f"unknown storage kind {kind!r} for tensor {name!r}")
    return out


def load_blob(path) -> tuple[dict, dict, dict]:
    """Read a blob file -> (dequantized state dict, meta, header info)."""
    with open(path, "rb") as f:
        data = f.read()
    arrays, meta, info = unpack(data)
    if "q" not in meta:
        raise ContainerError(f"{path}: blob holds no quantization routing (meta['q'])")
    return dequantize(arrays, meta), meta, info
