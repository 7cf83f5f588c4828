"""The pickle-free model container: exact round-trips, determinism, clear errors, no pickle."""
from __future__ import annotations

import ast
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from golf.builder import container as C

ALL_DTYPES = {
    "f32": torch.randn(3, 4),
    "f16": torch.randn(5).half(),
    "bf16": torch.randn(2, 7).bfloat16(),
    "f64": torch.randn(3, dtype=torch.float64),
    "i8": torch.randint(-31, 32, (10, 10), dtype=torch.int8),
    "u8": torch.randint(0, 256, (6,), dtype=torch.uint8),
    "i16": torch.randint(-30000, 30000, (4,), dtype=torch.int16),
    "i32": torch.randint(-2**31, 2**31 - 1, (4,), dtype=torch.int32),
    "i64": torch.tensor([-(2**62), 0, 2**62]),
    "bool": torch.tensor([True, False, True]),
    "scalar": torch.tensor(3.25),
    "empty": torch.zeros(0, 3),
    "special": torch.tensor([float("inf"), float("-inf"), -0.0, 1e-45]),
}


def _bits(t: torch.Tensor) -> bytes:
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


@pytest.mark.parametrize("compressor", ["brotli", "lzma", "zlib", "none"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_roundtrip_all_dtypes_exact(compressor, shuffle):
    blob = C.pack(ALL_DTYPES, {"note": "x", "n": [1, 2]}, compressor, shuffle)
    arrays, meta, info = C.unpack(blob)
    assert list(arrays) == list(ALL_DTYPES)
    for k, v in ALL_DTYPES.items():
        assert arrays[k].dtype == v.dtype and arrays[k].shape == v.shape, k
        assert _bits(arrays[k]) == _bits(v), k  # bitwise
    assert meta == {"note": "x", "n": [1, 2]}
    assert info["compressor"] == compressor and info["shuffle"] == shuffle
    # nan survives bit-exactly too
    nan = torch.tensor([float("nan")])
    assert torch.isnan(C.unpack(C.pack({"n": nan}, {}, compressor))[0]["n"]).all()


def test_deterministic_bytes():
    a = C.pack(ALL_DTYPES, {"b": 1, "a": 2}, "brotli")
    b = C.pack({k: v.clone() for k, v in ALL_DTYPES.items()}, {"a": 2, "b": 1}, "brotli")
    assert a == b


def test_shuffle_helps_fp16():
    w = (torch.randn(256, 256) * 0.02).half()
    assert len(C.pack({"w": w}, {}, "zlib", True)) < len(C.pack({"w": w}, {}, "zlib", False))


def test_dequantize_kinds():
    q = torch.tensor([[1, -2], [3, 0]], dtype=torch.int8)
    s = torch.tensor([0.5, 0.25]).half()
    arrays = {"w.q": q, "w.s": s, "h": torch.tensor([1.5, 2.0]).half(), "r": torch.tensor([7, 8])}
    meta = {"q": {"w": ["q", "float32"], "h": ["h", "bfloat16"], "r": ["r", "int64"]}}
    sd = C.dequantize(*C.unpack(C.pack(arrays, meta))[:2])
    assert torch.equal(sd["w"], torch.tensor([[0.5, -1.0], [0.75, 0.0]]))
    assert sd["h"].dtype == torch.bfloat16 and torch.equal(sd["h"].float(), torch.tensor([1.5, 2.0]))
    assert torch.equal(sd["r"], torch.tensor([7, 8]))


def _blob():
    return C.pack({"w.q": torch.randint(-31, 32, (64, 64), dtype=torch.int8), "w.s": torch.rand(64).half()},
                  {"q": {"w": ["q", "float32"]}}, "brotli")


def test_truncated_blob_clear_error():
    blob = _blob()
    for cut in (3, 10, C.HEADER.size, len(blob) // 2, len(blob) - 1):
        with pytest.raises(C.ContainerError, match="truncated|corrupt"):
            C.unpack(blob[:cut])


def test_corrupt_blob_clear_error():
    blob = bytearray(_blob())
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(C.ContainerError, match="corrupt|truncated"):
        C.unpack(bytes(blob))
    # a valid stream whose payload does not match the CRC
    raw = zlib.decompress(_zlib_payload())
    bad = bytearray(raw)
    bad[-1] ^= 1
    head = C.HEADER.pack(C.MAGIC, C.VERSION, 3, 1, 0, len(bad), zlib.crc32(raw))
    with pytest.raises(C.ContainerError, match="CRC"):
        C.unpack(head + zlib.compress(bytes(bad)))


def _zlib_payload():
    blob = C.pack({"a": torch.arange(10)}, {}, "zlib")
    return blob[C.HEADER.size:]


def test_bad_magic_version_compressor():
    blob = bytearray(_blob())
    with pytest.raises(C.ContainerError, match="magic"):
        C.unpack(b"PK\x03\x04" + bytes(blob[4:]))
    v = bytearray(blob)
    v[4] = C.VERSION + 1
    with pytest.raises(C.ContainerError, match=f"version {C.VERSION + 1}"):
        C.unpack(bytes(v))
    c = bytearray(blob)
    c[5] = 9
    with pytest.raises(C.ContainerError, match="unknown compressor"):
        C.unpack(bytes(c))
    with pytest.raises(C.ContainerError, match="unknown compressor"):
        C.pack({"a": torch.zeros(1)}, {}, "zstd")


def test_torch_save_file_is_rejected(tmp_path):
    p = tmp_path / "final_model.int6.ptz"
    torch.save({"w": torch.zeros(3)}, p)
    with pytest.raises(C.ContainerError, match="magic"):
        C.load_blob(p)


def test_no_pickle_in_load_path(tmp_path, monkeypatch):
    # statically: the shipped loader never references pickle / torch.load / eval / exec
    for mod in ("container.py", "entry.py"):
        src = (Path(C.__file__).parent / mod).read_text()
        names = {n.id for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Name)}
        attrs = {n.attr for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Attribute)}
        assert "pickle" not in names and not {"eval", "exec"} & names, mod
        assert "load" not in {a for a in attrs if f"torch.{a}" in src}, mod
    # dynamically: loading works with every unpickling entry point disabled
    p = tmp_path / "m.ptz"
    p.write_bytes(_blob())

    def boom(*a, **k):
        raise AssertionError("pickle used in the load path")

    for obj, attr in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load")):
        monkeypatch.setattr(obj, attr, boom)
    sd, meta, info = C.load_blob(p)
    assert sd["w"].shape == (64, 64)


def test_index_inconsistency_rejected():
    raw = b'{"t":[["a","float32",[4],0,99]],"m":{}}'
    payload = struct.pack("<I", len(raw)) + raw + b"\0" * 16
    head = C.HEADER.pack(C.MAGIC, C.VERSION, 0, 0, 0, len(payload), zlib.crc32(payload))
    with pytest.raises(C.ContainerError, match="inconsistent"):
        C.unpack(head + payload)
    raw = b'{"t":[["a","object",[4],0,16]],"m":{}}'
    payload = struct.pack("<I", len(raw)) + raw + b"\0" * 16
    head = C.HEADER.pack(C.MAGIC, C.VERSION, 0, 0, 0, len(payload), zlib.crc32(payload))
    with pytest.raises(C.ContainerError, match="bad index entry"):
        C.unpack(head + payload)
    assert np.array_equal(C.unpack(C.pack({"a": np.arange(4, dtype=np.float32)}, {}, "none"))[0]["a"].numpy(),
                          np.arange(4, dtype=np.float32))
