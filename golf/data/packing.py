"""Document-packed training batches (the 2026-04-27 record's loader, ``train.doc_packing``).

Shipped inside the generated ``train_gpt.py`` (train path, when the config packs documents):
numpy and stdlib only.

The train shards are read in sorted order.  Each shard is entered at its first BOS.  One
micro-step of ``n`` tokens per rank takes, for every rank ``r`` of ``W``, the span
``[c + r·(n+1), c + (r+1)·(n+1))`` from the cursor ``c`` (inputs are its first ``n`` tokens,
targets the last ``n``), then moves the cursor by ``W·(n+1)``.  When the next micro-step does not
fit in what is left of the shard, the rest is skipped and the next shard is entered (after the
last shard: the first again, next epoch).  Every rank computes the same cursor, so the ranks'
spans never overlap.

Each span's document boundaries are the BOS positions in its inputs (and position 0, where the
span starts inside a document).  A document longer than ``seq_len`` is cut into ``seq_len``
segments from its start.  ``cu_seqlens`` lists the segment starts and then ``n``, padded with
``n`` to a multiple of 64 entries (few distinct shapes for compiled kernels); ``max_seqlen`` is
the longest segment.  The model attends only inside segments (``golf.model.gpt.doc_spans``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from golf import TOOLKIT
from golf.data.shards import ShardError, read_shard
from golf.protocol import BOS_ID

CU_BUCKET = 64  # cu_seqlens is padded to a multiple of this many entries


def doc_segments(doc_starts: Sequence[int], total: int, max_len: int,
                 bucket: int = CU_BUCKET) -> tuple[np.ndarray, int]:
    """``(cu_seqlens int32, max_seqlen)`` for a row of ``total`` tokens whose documents start at
    ``doc_starts`` (sorted, in [0, total)); documents longer than ``max_len`` (> 0) are cut every ``max_len``."""
    starts = [int(s) for s in doc_starts]
    if not starts or starts[0] != 0:  # the row starts inside a document
        starts = [0] + starts
    ends = starts[1:] + [total]
    segs = []
    for s, e in zip(starts, ends):
        segs.extend(range(s, e, max_len) if max_len > 0 else [s])
    seg_ends = segs[1:] + [total]
    n = -(-(len(segs) + 1) // bucket) * bucket
    cu = np.full(n, total, dtype=np.int32)
    cu[:len(segs)] = segs
    return cu, max(e - s for s, e in zip(segs, seg_ends))


class DocPackLoader:
    """Yields per-rank packed micro-batches ``(inputs (1, n), targets (1, n), (cu_seqlens, max_seqlen))``."""

    def __init__(self, files: Sequence[str | os.PathLike], seq_len: int, rank: int = 0, world_size: int = 1,
                 vocab_size: int | None = None):
        self.files = [Path(f) for f in files]
        if not self.files:
            raise ShardError("no training shards given (expected fineweb_train_*.bin files)")
        self.seq_len, self.rank, self.world_size, self.vocab_size = seq_len, rank, world_size, vocab_size
        self.shard, self.epoch = 0, 0
        self._enter(0)

    def _enter(self, shard: int) -> None:
        """Load ``shard`` and put the cursor on its first BOS."""
        self.shard = shard
        self.tokens = np.asarray(read_shard(self.files[shard], self.vocab_size))
        self.bos = np.flatnonzero(self.tokens == BOS_ID)
        if not len(self.bos):
            raise ShardError(f"{self.files[shard]}: no BOS token ({BOS_ID}); document packing needs document starts")
        self.cursor = int(self.bos[0])

    def _micro(self, n: int) -> tuple:
        span = n + 1
        tried = 0
        while self.cursor + span * self.world_size > len(self.tokens):
            tried += 1
            if tried > len(self.files):
                raise ShardError(f"no train shard holds {span * self.world_size} tokens after its first BOS "
                                 f"(one packed micro-step of {n} tokens on {self.world_size} processes)")
            nxt = self.shard + 1
            if nxt == len(self.files):
                nxt, self.epoch = 0, self.epoch + 1
            self._enter(nxt)
        start = self.cursor + self.rank * span
        buf = self.tokens[start:start + span].astype(np.int64)
        lo, hi = np.searchsorted(self.bos, [start, start + n])
        cu = doc_segments((self.bos[lo:hi] - start).tolist(), n, self.seq_len)
        self.cursor += span * self.world_size
        return buf[None, :-1], buf[None, 1:], cu

    def next_batch(self, global_seqs: int, accum_steps: int = 1) -> list[tuple]:
        """One global step of ``global_seqs·seq_len`` tokens: this rank's ``accum_steps`` packed micro-batches."""
        n = global_seqs * self.seq_len // (self.world_size * accum_steps)
        return [self._micro(n) for _ in range(accum_steps)]

    def state_dict(self) -> dict:
        return {"shard": self.shard, "pos": self.cursor, "epoch": self.epoch, "files": [f.name for f in self.files]}

    def load_state_dict(self, state: dict) -> None:
        names = [f.name for f in self.files]
        if TOOLKIT and state.get("files") and list(state["files"]) != names:  # resume check
            raise ShardError(f"resume: the checkpoint was trained on shards {state['files'][:3]}... "
                             f"but {names[:3]}... were given")
        self._enter(int(state["shard"]))
        self.cursor, self.epoch = int(state["pos"]), int(state["epoch"])
