"""Official shard format: round trip and strict rejection of malformed files (SPEC §1.1)."""
from __future__ import annotations

import numpy as np
import pytest

from golf.data.shards import (
    HEADER_BYTES,
    SHARD_MAGIC,
    SHARD_VERSION,
    ShardError,
    data_paths,
    list_shards,
    read_shard,
    read_shard_header,
    shard_name,
    write_shard,
)


def _raw_header(path):
    return np.fromfile(path, dtype="<i4", count=256)


def test_round_trip_matches_official_layout(tmp_path):
    rng = np.random.default_rng(0)
    toks = rng.integers(0, 65536, size=12_345, dtype=np.int64)
    p = tmp_path / shard_name("train", 7)
    assert p.name == "fineweb_train_000007.bin"
    nbytes = write_shard(p, toks)
    assert nbytes == p.stat().st_size == HEADER_BYTES + 2 * toks.size
    header = _raw_header(p)
    assert (int(header[0]), int(header[1]), int(header[2])) == (SHARD_MAGIC, SHARD_VERSION, toks.size)
    assert not header[3:].any()
    # tokens are raw little-endian uint16 right after the 1024-byte header
    raw = np.fromfile(p, dtype="<u2", offset=HEADER_BYTES)
    np.testing.assert_array_equal(raw, toks)
    np.testing.assert_array_equal(read_shard(p, vocab_size=65536), toks)
    assert read_shard_header(p) == toks.size
    assert [q.name for q in tmp_path.iterdir()] == [p.name]  # no temp file left behind


def test_empty_shard_round_trip(tmp_path):
    p = tmp_path / "fineweb_val_000000.bin"
    write_shard(p, np.zeros(0, dtype=np.uint16))
    assert read_shard_header(p) == 0
    assert read_shard(p).size == 0


def _good(tmp_path, n=100):
    p = tmp_path / "fineweb_val_000000.bin"
    write_shard(p, np.arange(n) % 50)
    return p


def _patch_header(p, index, value):
    data = bytearray(p.read_bytes())
    data[4 * index:4 * index + 4] = int(value).to_bytes(4, "little", signed=True)
    p.write_bytes(bytes(data))


@pytest.mark.parametrize("index,value,problem", [(0, 20240521, "bad magic"), (1, 2, "unsupported version"),
                                                 (2, -5, "negative token count")])
def test_rejects_bad_header_fields(tmp_path, index, value, problem):
    p = _good(tmp_path)
    _patch_header(p, index, value)
    with pytest.raises(ShardError) as e:
        read_shard(p)
    assert p.name in str(e.value) and problem in str(e.value)


def test_rejects_truncated_and_padded(tmp_path):
    p = _good(tmp_path)
    data = p.read_bytes()
    p.write_bytes(data[:-2])
    with pytest.raises(ShardError, match=r"fineweb_val_000000\.bin: truncated"):
        read_shard(p)
    p.write_bytes(data + b"\0\0")
    with pytest.raises(ShardError, match=r"fineweb_val_000000\.bin: padded"):
        read_shard(p)
    p.write_bytes(data[:500])
    with pytest.raises(ShardError, match="truncated header"):
        read_shard_header(p)
    with pytest.raises(ShardError, match="cannot read"):
        read_shard_header(tmp_path / "missing.bin")


def test_rejects_tokens_outside_vocab(tmp_path):
    p = tmp_path / "fineweb_train_000000.bin"
    toks = np.full(64, 5)
    toks[37] = 1024
    write_shard(p, toks)
    with pytest.raises(ShardError) as e:
        read_shard(p, vocab_size=1024)
    msg = str(e.value)
    assert p.name in msg and "1024" in msg and "index 37" in msg
    assert read_shard(p, vocab_size=1025)[37] == 1024


def test_write_rejects_bad_tokens_without_leaving_files(tmp_path):
    for bad in (np.array([1, 70000]), np.array([-1, 3]), np.zeros((2, 2), dtype=np.int64)):
        with pytest.raises(ShardError):
            write_shard(tmp_path / "fineweb_train_000000.bin", bad)
    assert list(tmp_path.iterdir()) == []


def test_list_shards_sorted_and_skips_byte_sidecars(tmp_path):
    for name in ("fineweb_val_000001.bin", "fineweb_val_000000.bin", "fineweb_val_bytes_000000.bin",
                 "fineweb_train_000010.bin", "fineweb_train_000002.bin"):
        write_shard(tmp_path / name, np.arange(3))
    assert [p.name for p in list_shards(tmp_path, "val")] == ["fineweb_val_000000.bin", "fineweb_val_000001.bin"]
    assert [p.name for p in list_shards(tmp_path, "train")] == ["fineweb_train_000002.bin", "fineweb_train_000010.bin"]
    with pytest.raises(ValueError):
        list_shards(tmp_path, "test")


def test_data_paths_follow_the_layout_and_the_overrides(tmp_path):
    root = tmp_path / "data"
    ds = root / "datasets" / "fineweb10B_sp1024"
    tok = root / "tokenizers" / "fineweb_1024_bpe.model"
    write_shard(ds / shard_name("val", 0), np.arange(10))
    tok.parent.mkdir(parents=True)
    tok.write_bytes(b"x")
    assert data_paths(root, 1024, environ={}) == (ds, tok)
    # a root that is the dataset folder itself; the tokenizer is found two levels up
    assert data_paths(ds, 1024, environ={}) == (ds, tok)
    # nothing there: the official paths, for the caller to report
    assert data_paths(tmp_path / "none", 4096, environ={}) == (
        tmp_path / "none" / "datasets" / "fineweb10B_sp4096",
        tmp_path / "none" / "tokenizers" / "fineweb_4096_bpe.model")
    env = {"DATA_PATH": str(tmp_path / "elsewhere"), "TOKENIZER_PATH": str(tmp_path / "t.model")}
    assert data_paths(root, 1024, environ=env) == (tmp_path / "elsewhere", tmp_path / "t.model")
