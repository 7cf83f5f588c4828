"""Train/validation overlap: validation documents found in the training shards (any variant).

A document is the tokens between one BOS (id 1) and the next (SPEC §1.2: every document is written
as ``[BOS] + ids``, so a document's content never holds a BOS).  Each non-empty document is hashed
(BLAKE2b-128 of its little-endian uint16 tokens); a training document whose hash is a validation
document's is the same token sequence, i.e. the same text under the same tokenizer.  Documents
that straddle shards are joined first.  Empty documents (a BOS right before a BOS) are skipped.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from golf.data.shards import list_shards, read_shard
from golf.data.tokenizer import BOS_ID
from golf.errors import GolfError


class OverlapError(ValueError, GolfError):
    """Validation documents found in training shards."""


def _digest(doc: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(doc, dtype="<u2").tobytes(), digest_size=16).digest()


class DocHasher:
    """Feed consecutive chunks of a token stream; get ``(document index, digest)`` of each complete,
    non-empty document.  Index 0 is the first document (tokens before the first BOS, if any, count as one)."""

    def __init__(self):
        self.carry = np.zeros(0, dtype=np.int64)
        self.index = 0

    def _docs(self, arr: np.ndarray, final: bool) -> Iterator[tuple[int, bytes]]:
        cuts = np.flatnonzero(arr == BOS_ID)
        if not len(cuts) or cuts[0]:  # tokens before the first BOS: only at the start of a stream
            cuts = np.concatenate([[0], cuts])
        ends = list(cuts[1:]) + ([len(arr)] if final else [])
        for a, b in zip(cuts, ends):
            doc = arr[a + int(arr[a] == BOS_ID):b]
            if len(doc):
                yield self.index, _digest(doc)
            self.index += 1
        self.carry = arr[:0] if final else arr[cuts[-1]:]

    def feed(self, tokens: np.ndarray) -> list[tuple[int, bytes]]:
        arr = np.concatenate([self.carry, np.asarray(tokens, dtype=np.int64)])
        return list(self._docs(arr, final=False))

    def finish(self) -> list[tuple[int, bytes]]:
        return list(self._docs(self.carry, final=True)) if len(self.carry) else []


def stream_digests(chunks: Iterable[np.ndarray]) -> Iterator[tuple[int, bytes]]:
    """``(index, digest)`` of every non-empty document of a stream given as consecutive chunks."""
    h = DocHasher()
    for chunk in chunks:
        yield from h.feed(chunk)
    yield from h.finish()


@dataclass
class Overlap:
    """What :func:`find_overlap` found: document counts and the shared documents."""
    dataset_dir: str
    val_docs: int = 0
    train_docs: int = 0
    train_shards: int = 0
    shared: list[tuple[int, int]] = field(default_factory=list)  # (train document index, validation document index)

    def line(self) -> str:
        name = Path(self.dataset_dir).name
        if not self.shared:
            return (f"{name}: no overlap: none of its {self.val_docs:,} validation documents is in its "
                    f"{self.train_shards} training shards ({self.train_docs:,} documents)")
        t, v = self.shared[0]
        return (f"{name}: OVERLAP: {len(self.shared):,} training documents (of {self.train_docs:,}) are validation "
                f"documents (first: training document {t} = validation document {v})")


def val_digests(val_tokens: np.ndarray | Iterable[np.ndarray]) -> dict[bytes, int]:
    """``{digest: validation document index}`` of a validation stream (an array or its chunks)."""
    chunks = [val_tokens] if isinstance(val_tokens, np.ndarray) else val_tokens
    out: dict[bytes, int] = {}
    for i, d in stream_digests(chunks):
        out.setdefault(d, i)
    return out


def find_overlap(dataset_dir: str | os.PathLike, train_dir: str | os.PathLike | None = None,
                 val_tokens: np.ndarray | None = None, progress=None) -> Overlap:
    """Validation documents of ``dataset_dir`` (or ``val_tokens``) that appear in the training shards of
    ``train_dir`` (default: the same folder).  ``progress(shard_name)`` is called before each shard."""
    dataset_dir = Path(dataset_dir)
    train_dir = Path(train_dir) if train_dir is not None else dataset_dir
    vals = val_digests(val_tokens if val_tokens is not None else
                       (read_shard(f) for f in list_shards(dataset_dir, "val")))
    res = Overlap(str(dataset_dir), val_docs=len(vals))
    files = list_shards(train_dir, "train")
    res.train_shards = len(files)

    def chunks():
        for f in files:
            if progress:
                progress(f.name)
            yield read_shard(f)

    n = -1
    for n, d in stream_digests(chunks()):
        if d in vals:
            res.shared.append((n, vals[d]))
    res.train_docs = n + 1
    return res
