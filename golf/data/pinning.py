"""Tokenizer pinning: which tokenizer file a model, a dataset and an artifact were built with.

``PUBLISHED_TOKENIZERS`` is the table of the sha256 of the tokenizers published with the
challenge data (``fineweb_{V}_bpe.model``).  The real digests could not be fetched where this
table was written (no network), so their places hold ``None`` until someone fills them in
from the published files (``sha256sum tokenizers/fineweb_*_bpe.model``); until then a
published tokenizer is reported as "not pinned" rather than as known.  Never put a digest
here that was not computed from the published file.
"""
from __future__ import annotations

import hashlib
import os

from golf.errors import GolfError

PUBLISHED_TOKENIZERS: dict[str, str | None] = {
    "fineweb_1024_bpe.model": None,   # sp1024: digest of the published file goes here
    "fineweb_4096_bpe.model": None,   # sp4096
    "fineweb_8192_bpe.model": None,   # sp8192
}


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


def published_status(path: str | os.PathLike, digest: str) -> str:
    """One line: whether ``digest`` is the published tokenizer of that name."""
    name = os.path.basename(str(path))
    known = PUBLISHED_TOKENIZERS.get(name)
    if known is None:
        return (f"{name}: sha256 {digest[:16]}…; no published digest on record for this name"
                if name not in PUBLISHED_TOKENIZERS else
                f"{name}: sha256 {digest[:16]}…; the published digest is not on record yet (golf/data/pinning.py)")
    if known == digest:
        return f"{name}: the published tokenizer (sha256 {digest[:16]}…)"
    return f"{name}: NOT the published tokenizer (sha256 {digest[:16]}…, published {known[:16]}…)"


def check_tokenizer_vocab(tokenizer: str | os.PathLike, model_vocab: int, what: str = "the model") -> None:
    """Refuse a tokenizer whose piece count differs from ``model_vocab``: one clear line."""
    n = tokenizer_vocab(tokenizer)
    if n != int(model_vocab):
        raise PinError(f"tokenizer {tokenizer} has {n} pieces but {what} has vocab_size {model_vocab}: "
                       "use the tokenizer the shards were encoded with")
