"""Tokenizer pinning: which tokenizer file a model, a dataset and an artifact were built with.

No digest is written here by hand.  `golf data download` records, in the data folder's
``manifest.json`` (``published_files``), the sha256 that the Hub publishes for every file it
fetched and checked (:mod:`golf.data.published`); :func:`published_checks` compares the
tokenizer and the validation shards the verifier is given with that record.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from golf.data.published import recorded
from golf.errors import GolfError


class PinError(ValueError, GolfError):
    """A tokenizer that does not match the model or the shards."""


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tokenizer_vocab(path: str | os.PathLike) -> int:
    import sentencepiece as spm
    try:
        return int(spm.SentencePieceProcessor(model_file=str(path)).vocab_size())
    except (OSError, RuntimeError) as e:
        raise PinError(f"{path}: not a SentencePiece model ({e})") from None


def published_record(data_dir: str | os.PathLike) -> dict[str, dict]:
    """``manifest.json``'s record of the published sha256 of each downloaded file (empty if none)."""
    try:
        return recorded(json.loads((Path(data_dir) / "manifest.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def published_checks(data_dir: str | os.PathLike, files: list[Path],
                     digests: dict[str, str] | None = None) -> tuple[list[str], list[str], list[str]]:
    """``(matching, differing, unrecorded)`` relative paths of ``files`` against the download record.
    ``digests``: sha256 already computed by the caller (by absolute path), not read twice."""
    root = Path(data_dir).resolve()
    rec = published_record(root)
    ok, bad, missing = [], [], []
    for f in files:
        f = Path(f).resolve()
        try:
            rel = f.relative_to(root).as_posix()
        except ValueError:
            missing.append(str(f))
            continue
        want = rec.get(rel)
        if want is None:
            missing.append(rel)
            continue
        got = (digests or {}).get(str(f)) or file_sha256(f)
        (ok if got == want["sha256"] and f.stat().st_size == want.get("size", f.stat().st_size) else bad).append(rel)
    return ok, bad, missing


def published_status(path: str | os.PathLike, digest: str, data_dir: str | os.PathLike | None = None) -> str:
    """One line: whether ``digest`` is the sha256 the download recorded as published for this file."""
    name = os.path.basename(str(path))
    if data_dir is None:
        return f"{name}: sha256 {digest[:16]}…"
    ok, bad, _ = published_checks(data_dir, [Path(path)], {str(Path(path).resolve()): digest})
    if ok:
        return f"{name}: the published file (sha256 {digest[:16]}…, as recorded by golf data download)"
    if bad:
        return f"{name}: NOT the published file (sha256 {digest[:16]}… differs from the download record)"
    return f"{name}: sha256 {digest[:16]}…; no published digest recorded (not fetched by golf data download)"


def check_tokenizer_vocab(tokenizer: str | os.PathLike, model_vocab: int, what: str = "the model") -> None:
    """Refuse a tokenizer whose piece count differs from ``model_vocab``: one clear line."""
    n = tokenizer_vocab(tokenizer)
    if n != int(model_vocab):
        raise PinError(f"tokenizer {tokenizer} has {n} pieces but {what} has vocab_size {model_vocab}: "
                       "use the tokenizer the shards were encoded with")
