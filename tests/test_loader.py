"""Training stream / validation loader on real shards (tiny_data) and on hand-made shards."""
from __future__ import annotations

import json

import numpy as np
import pytest

from golf.data.loader import TokenStream, TrainLoader, load_val_tokens, truncate_val
from golf.data.shards import ShardError, list_shards, read_shard, write_shard


@pytest.fixture(scope="module")
def train_files(tiny_data):
    files = list_shards(tiny_data["dataset_dir"], "train")
    assert len(files) >= 2  # the fixture's 200k-token shards make several
    return files


def _all_train(files):
    return np.concatenate([np.asarray(read_shard(f), dtype=np.int64) for f in files])


def _whole(loader, global_seqs, accum=1):
    micro = loader.next_batch(global_seqs, accum)
    return np.concatenate([x for x, _ in micro]), np.concatenate([y for _, y in micro])


def test_first_batch_is_the_token_stream(train_files):
    L, B = 64, 8
    x, y = _whole(TrainLoader(train_files, L), B)
    stream = _all_train(train_files)
    assert x.dtype == np.int64 and x.shape == (B, L) and y.shape == (B, L)
    for i in range(B):
        np.testing.assert_array_equal(x[i], stream[i * L:i * L + L])
        np.testing.assert_array_equal(y[i], stream[i * L + 1:i * L + L + 1])
    x2, _ = _whole(TrainLoader(train_files, L), B)  # deterministic
    np.testing.assert_array_equal(x, x2)


@pytest.mark.parametrize("world", [2, 4])
def test_union_over_ranks_equals_single_process(train_files, world):
    L, B = 32, 8
    single = TrainLoader(train_files, L)
    ranks = [TrainLoader(train_files, L, rank=r, world_size=world) for r in range(world)]
    for _ in range(3):
        xs, ys = _whole(single, B)
        parts = [_whole(ld, B) for ld in ranks]
        assert all(p[0].shape == (B // world, L) for p in parts)
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), xs)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), ys)


def test_grad_accum_split_equals_whole_batch(train_files):
    L, B = 32, 16
    whole, split = TrainLoader(train_files, L, rank=1, world_size=2), TrainLoader(train_files, L, rank=1, world_size=2)
    for _ in range(2):
        xw, yw = _whole(whole, B, 1)
        micro = split.next_batch(B, 4)
        assert len(micro) == 4 and all(x.shape == (2, L) for x, _ in micro)
        np.testing.assert_array_equal(np.concatenate([x for x, _ in micro]), xw)
        np.testing.assert_array_equal(np.concatenate([y for _, y in micro]), yw)
    with pytest.raises(ValueError, match="not divisible"):
        whole.next_batch(10, 4)


def test_state_dict_resume_gives_identical_batches(train_files):
    L, B = 128, 64  # 8192 tokens a step: crosses shard boundaries within a few steps
    a = TrainLoader(train_files, L)
    for _ in range(30):
        a.next_batch(B)
    state = json.loads(json.dumps(a.state_dict()))  # must survive a JSON/checkpoint round trip
    expected = [_whole(a, B) for _ in range(5)]
    b = TrainLoader(train_files, L)
    b.load_state_dict(state)
    for ex in expected:
        got = _whole(b, B)
        np.testing.assert_array_equal(got[0], ex[0])
        np.testing.assert_array_equal(got[1], ex[1])
    with pytest.raises(ShardError, match="resume"):
        TrainLoader(train_files[:-1], L).load_state_dict(state)


def test_crosses_shards_and_wraps_around(tmp_path):
    files = []
    for i, n in enumerate([10, 7, 13]):
        p = tmp_path / f"fineweb_train_{i:06d}.bin"
        write_shard(p, np.arange(n) + 100 * i)
        files.append(p)
    stream = np.concatenate([np.arange(10), np.arange(7) + 100, np.arange(13) + 200])  # 30 tokens
    ts = TokenStream(files)
    np.testing.assert_array_equal(ts.peek(12), stream[:12])
    ts.advance(28)
    assert (ts.shard, ts.pos, ts.epoch) == (2, 11, 0)
    np.testing.assert_array_equal(ts.peek(5), np.concatenate([stream[28:], stream[:3]]))
    ts.advance(5)
    assert (ts.shard, ts.pos, ts.epoch) == (0, 3, 1)
    loader = TrainLoader(files, seq_len=4)
    seen = [_whole(loader, 2)[0].ravel() for _ in range(5)]  # 5 steps * 8 tokens = 40 > 30: wraps
    flat = np.concatenate(seen)
    np.testing.assert_array_equal(flat, np.concatenate([stream, stream])[:40])
    assert loader.state_dict()["epoch"] == 1


def test_empty_or_missing_train_shards(tmp_path):
    with pytest.raises(ShardError, match="no training shards"):
        TokenStream([])
    p = tmp_path / "fineweb_train_000000.bin"
    write_shard(p, np.zeros(0, dtype=np.uint16))
    with pytest.raises(ShardError, match="no tokens"):
        TokenStream([p]).peek(4)


def test_vocab_check_names_the_shard(tmp_path):
    p = tmp_path / "fineweb_train_000000.bin"
    write_shard(p, np.array([1, 5, 900, 7] * 10))
    with pytest.raises(ShardError, match="fineweb_train_000000.bin: token id 900 >= vocab size 512"):
        TrainLoader([p], 4, vocab_size=512).next_batch(2)


def test_val_tokens_official_truncation(tiny_data):
    d = tiny_data["dataset_dir"]
    n = sum(len(read_shard(f)) for f in list_shards(d, "val"))
    for L in (64, 1024, 1000):
        val = load_val_tokens(d, L, vocab_size=1024)
        assert len(val) == (n - 1) // L * L + 1
        assert (len(val) - 1) % L == 0
        assert val[0] == 1  # the first validation document starts with BOS
    short = load_val_tokens(d, 64, max_tokens=640)
    assert len(short) == 641
    np.testing.assert_array_equal(short, load_val_tokens(d, 64)[:641])
    with pytest.raises(ShardError, match="fewer than one sequence"):
        truncate_val(np.arange(10), 16)
    with pytest.raises(ShardError, match="no validation shards"):
        load_val_tokens(d.parent, 64)
