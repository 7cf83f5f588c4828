"""Document-packed training batches (golf.data.packing) against the 2026-04-27 record's own loader.

The record's ``DocumentPackingLoader`` and ``_build_cu_seqlens`` run from its script
(tests/frontier_ref.py) on the same shards; golf's loader must give the same inputs, targets,
``cu_seqlens`` and ``max_seqlen`` for every rank and micro-step, across shard boundaries.
"""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from frontier_ref import load_frontier_reference, needs_reference

from golf.data.packing import DocPackLoader, doc_segments
from golf.data.shards import ShardError, write_shard
from golf.protocol import BOS_ID


def write_docs(path, rng, n_docs, max_doc=300):
    """A shard of ``n_docs`` documents (BOS + random ids), lengths 1..max_doc; returns the token count."""
    docs = [np.concatenate(([BOS_ID], rng.integers(2, 1024, rng.integers(0, max_doc)))) for _ in range(n_docs)]
    tokens = np.concatenate(docs).astype(np.uint16)
    write_shard(path, tokens)
    return len(tokens)


@pytest.fixture
def shards(tmp_path):
    rng = np.random.default_rng(0)
    for i, n in enumerate((40, 25, 60)):
        write_docs(tmp_path / f"fineweb_train_{i:06d}.bin", rng, n)
    # a shard that starts mid-document (no BOS at position 0): entered at its first BOS
    toks = np.concatenate((rng.integers(2, 1024, 37), [BOS_ID], rng.integers(2, 1024, 1500))).astype(np.uint16)
    write_shard(tmp_path / "fineweb_train_000003.bin", toks)
    return sorted(tmp_path.glob("fineweb_train_*.bin"))


def test_segments_cut_long_documents_and_pad():
    cu, m = doc_segments([0, 10, 200], 300, 64)
    want = [0, 10, 74, 138, 200, 264, 300]
    assert cu.tolist() == want + [300] * (64 - len(want)) and m == 64
    cu, m = doc_segments([5], 20, 0)  # starts inside a document; no cut
    assert cu[:3].tolist() == [0, 5, 20] and m == 15 and cu.dtype == np.int32


@needs_reference
def test_segments_match_the_record():
    rec = load_frontier_reference()
    rng = np.random.default_rng(1)
    for _ in range(200):
        total = int(rng.integers(1, 400))
        starts = sorted(set(rng.integers(0, total, rng.integers(0, 12)).tolist()))
        max_len = int(rng.choice([0, 7, 48, 128]))
        want_cu, want_max = rec._build_cu_seqlens(list(starts), total, torch.device("cpu"), max_len, 64)
        cu, m = doc_segments(starts, total, max_len)
        assert cu.tolist() == want_cu.tolist() and m == want_max, (starts, total, max_len)


@needs_reference
@pytest.mark.parametrize("world", [1, 2])
def test_batches_match_the_record_loader(shards, monkeypatch, world):
    rec = load_frontier_reference()
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self, *a, **k: self)  # no pinned memory on CPU
    real_empty = torch.empty
    unpinned = lambda *a, **k: real_empty(*a, **{n: v for n, v in k.items() if n != "pin_memory"})  # noqa: E731
    monkeypatch.setattr(torch, "empty", unpinned)
    seq_len, global_seqs, accum = 64, 8, 2  # micro-steps of 512 / world tokens per rank
    for rank in range(world):
        h = types.SimpleNamespace(rank=rank, world_size=world, train_seq_len=seq_len,
                                  train_files=str(shards[0].parent / "fineweb_train_*.bin"))
        theirs = rec.DocumentPackingLoader(h, torch.device("cpu"))
        ours = DocPackLoader(shards, seq_len, rank=rank, world_size=world)
        seen = set()
        for _ in range(40):  # ~20k tokens: every shard, and around again
            for x, y, (cu, max_len) in ours.next_batch(global_seqs, accum):
                tx, ty, tcu, tmax = theirs.next_batch(global_seqs * seq_len, accum)
                assert np.array_equal(x, tx.numpy()) and np.array_equal(y, ty.numpy())
                assert cu.tolist() == tcu.tolist() and max_len == tmax
                seen.add(ours.shard)
        assert seen == {0, 1, 2, 3} and ours.epoch >= 1


def test_resume_position_and_errors(shards, tmp_path):
    a = DocPackLoader(shards, 64)
    for _ in range(7):
        a.next_batch(4, 1)
    b = DocPackLoader(shards, 64)
    b.load_state_dict(a.state_dict())
    for (x, y, d), (x2, y2, d2) in zip(a.next_batch(4, 2), b.next_batch(4, 2)):
        assert np.array_equal(x, x2) and np.array_equal(y, y2) and np.array_equal(d[0], d2[0])
    with pytest.raises(ShardError, match="holds"):
        DocPackLoader(shards, 4096).next_batch(8, 1)
    write_shard(tmp_path / "nobos.bin", np.full(100, 5, dtype=np.uint16))
    with pytest.raises(ShardError, match="no BOS"):
        DocPackLoader([tmp_path / "nobos.bin"], 64)
