"""Training-token stream and validation-token loader.

Shipped inside the generated ``train_gpt.py``: numpy (+ torch when asked) and stdlib only.

Training data order is a single sequential pass over the sorted train shards (wrapping
around at the end).  A step of ``B`` sequences of length ``L`` consumes ``B·L`` tokens:
sequence ``i`` holds tokens ``[s + i·L, s + i·L + L]`` (L+1 tokens: inputs and the
shifted targets).  Rank ``r`` of ``W`` takes the contiguous block of sequences
``[r·B/W, (r+1)·B/W)`` and splits it into micro-batches for gradient accumulation, so
the global batch is identical for any world size / accumulation split.  The position
is a tiny dict (shard, offset, epoch) saved in checkpoints for exact resume.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from golf import TOOLKIT
from golf.data.shards import SIDECAR_SPLIT, ShardError, list_shards, read_shard, read_shard_header


class TokenStream:
    """Sequential reader over shards with an exact, serializable position."""

    def __init__(self, files: Sequence[str | os.PathLike], vocab_size: int | None = None):
        self.files = [Path(f) for f in files]
        if not self.files:
            raise ShardError("no training shards given (expected fineweb_train_*.bin files)")
        self.vocab_size = vocab_size
        self.shard = 0
        self.pos = 0
        self.epoch = 0
        self._cache: tuple[int, np.ndarray] | None = None

    def _tokens(self, i: int) -> np.ndarray:
        if self._cache is None or self._cache[0] != i:
            self._cache = (i, read_shard(self.files[i], self.vocab_size))
        return self._cache[1]

    def peek(self, n: int) -> np.ndarray:
        """The next ``n`` tokens (crossing shards, wrapping at the end) without advancing."""
        out = np.empty(n, dtype=np.int64)
        shard, pos, filled, guard = self.shard, self.pos, 0, 0
        while filled < n:
            toks = self._tokens(shard)
            take = min(n - filled, len(toks) - pos)
            if take > 0:
                out[filled:filled + take] = toks[pos:pos + take]
                filled += take
                pos += take
            if pos >= len(toks):
                shard, pos = (shard + 1) % len(self.files), 0
                guard += 1
                if guard > 2 * len(self.files) and filled == 0:
                    raise ShardError("training shards hold no tokens")
        return out

    def advance(self, n: int) -> None:
        while n > 0:
            toks = self._tokens(self.shard)
            step = min(n, len(toks) - self.pos)
            self.pos += step
            n -= step
            if self.pos >= len(toks):
                self.shard += 1
                self.pos = 0
                if self.shard == len(self.files):
                    self.shard, self.epoch = 0, self.epoch + 1

    def state_dict(self) -> dict:
        return {"shard": self.shard, "pos": self.pos, "epoch": self.epoch, "files": [f.name for f in self.files]}

    def load_state_dict(self, state: dict) -> None:
        names = [f.name for f in self.files]
        if TOOLKIT and state.get("files") and list(state["files"]) != names:  # resume check
            raise ShardError(
                f"resume: the checkpoint was trained on shards {state['files'][:3]}... but {names[:3]}... were given"
            )
        self.shard, self.pos, self.epoch = int(state["shard"]), int(state["pos"]), int(state["epoch"])


class TrainLoader:
    """Yields per-rank micro-batches of (inputs, targets) for each optimizer step."""

    def __init__(self, files: Sequence[str | os.PathLike], seq_len: int, rank: int = 0, world_size: int = 1,
                 vocab_size: int | None = None):
        if TOOLKIT and (world_size < 1 or not 0 <= rank < world_size):  # caller checks: toolkit only
            raise ValueError(f"bad rank/world_size {rank}/{world_size}")
        self.stream = TokenStream(files, vocab_size)
        self.seq_len = seq_len
        self.rank, self.world_size = rank, world_size

    def next_batch(self, global_seqs: int, accum_steps: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
        """Consume one global step; return this rank's ``accum_steps`` micro-batches as int64 arrays."""
        W, L = self.world_size, self.seq_len
        if TOOLKIT and global_seqs % (W * accum_steps):
            raise ValueError(
                f"global batch of {global_seqs} sequences is not divisible by "
                f"world_size*accum_steps = {W * accum_steps}"
            )
        per_rank = global_seqs // W
        per_micro = per_rank // accum_steps
        start = self.rank * per_rank * L
        chunk = self.stream.peek(global_seqs * L + 1)[start:start + per_rank * L + 1]
        self.stream.advance(global_seqs * L)
        idx = np.arange(per_rank)[:, None] * L + np.arange(L + 1)[None, :]
        seqs = chunk[idx]  # (per_rank, L+1)
        out = []
        for m in range(accum_steps):
            s = seqs[m * per_micro:(m + 1) * per_micro]
            out.append((s[:, :-1], s[:, 1:]))
        return out

    def state_dict(self) -> dict:
        return self.stream.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state)


def truncate_val(tokens: np.ndarray, seq_len: int) -> np.ndarray:
    """Official truncation: keep ``floor((N-1)/L)·L + 1`` tokens (SPEC §1.5)."""
    n = (len(tokens) - 1) // seq_len * seq_len + 1
    if n < seq_len + 1:
        raise ShardError(f"validation set has {len(tokens)} tokens, fewer than one sequence of {seq_len}+1")
    return tokens[:n]


def load_val_tokens(dataset_dir: str | os.PathLike, seq_len: int, vocab_size: int | None = None,
                    max_tokens: int = 0) -> np.ndarray:
    """Concatenate the sorted ``fineweb_val_*.bin`` shards and truncate for ``seq_len``.

    ``max_tokens`` > 0 keeps only a prefix (quick runs); the official metric uses all.
    ``seq_len`` 0: the whole stream, untruncated (the verifier scores all N-1 targets)."""
    files = list_shards(dataset_dir, "val")
    if not files:
        raise ShardError(f"{dataset_dir}: no validation shards (fineweb_val_*.bin)")
    tokens = np.concatenate([np.asarray(read_shard(f, vocab_size), dtype=np.int64) for f in files])
    if max_tokens and max_tokens > 0:
        tokens = tokens[:max_tokens + 1]
    if TOOLKIT and not seq_len:
        return tokens
    return truncate_val(tokens, seq_len)


def load_val_bytes(dataset_dir: str | os.PathLike, n_tokens: int) -> np.ndarray | None:
    """The validation byte sidecar (``fineweb_val_bytes_*.bin``: per token of the validation stream, the
    bytes of the original text it stands for) for the first ``n_tokens`` tokens; None without one.

    It must be exactly as long as the validation shards together: a sidecar of another stream is refused."""
    files = list_shards(dataset_dir, SIDECAR_SPLIT)
    if not files:
        return None
    side = np.concatenate([np.asarray(read_shard(f), dtype=np.int64) for f in files])
    n_val = sum(read_shard_header(f) for f in list_shards(dataset_dir, "val")) if TOOLKIT else n_tokens
    if len(side) != n_val if TOOLKIT else len(side) < n_tokens:  # the artifact checks only what it reads
        raise ShardError(f"{dataset_dir}: {len(side)} byte counts for {n_val} validation tokens")
    return side[:n_tokens]
