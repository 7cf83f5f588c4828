"""SentencePiece BPE tokenizers with the official Parameter Golf options (SPEC §1.3).

Official trainer options: model_type bpe, character_coverage 0.999, byte_fallback on,
split_digits on, normalization nmt_nfkc, add_dummy_prefix off, pad/bos/eos/unk = 0/1/2/3,
hard_vocab_limit off.  Training text: every document with NUL -> space, stripped, empty
documents skipped (optionally only the first N documents).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

from golf.errors import GolfError
from golf.protocol import BOS_ID

MAX_VOCAB = 65_536  # token ids are stored as uint16 (SPEC §1.1)
PAD_ID, EOS_ID, UNK_ID = 0, 2, 3  # BOS_ID (1) is the shards' contract: golf.protocol
SPACE_PIECE = "\u2581"  # "▁"

OFFICIAL_TRAINER_OPTIONS: dict = {
    "model_type": "bpe",
    "character_coverage": 0.999,
    "byte_fallback": True,
    "split_digits": True,
    "normalization_rule_name": "nmt_nfkc",
    "add_dummy_prefix": False,
    "pad_id": PAD_ID,
    "bos_id": BOS_ID,
    "eos_id": EOS_ID,
    "unk_id": UNK_ID,
    "hard_vocab_limit": False,
}


class TokenizerError(ValueError, GolfError):
    """A tokenizer could not be trained/loaded or does not fit the challenge's rules."""


def tokenizer_filename(vocab_size: int) -> str:
    return f"fineweb_{vocab_size}_bpe.model"


def recommended_bigram_vocab_size(vocab_size: int) -> int:
    return -(-vocab_size // 128) * 128 * 5


def clean_training_text(text: str) -> str:
    """The official training-text cleanup: NUL -> space, strip."""
    return text.replace("\x00", " ").strip()


def check_vocab_size(vocab_size: int) -> None:
    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise TokenizerError(f"vocab size must be a positive integer, got {vocab_size!r}")
    if vocab_size > MAX_VOCAB:
        raise TokenizerError(
            f"vocab size {vocab_size} is too big: shards store token ids as uint16, so at most {MAX_VOCAB}"
        )


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_model: str | os.PathLike,
                    threads: int | None = None, max_docs: int = 0,
                    trainer_overrides: dict | None = None, verbose: bool = False) -> dict:
    """Train a BPE model on ``texts`` (cleaned, empties skipped, first ``max_docs`` if > 0).

    Writes ``out_model`` and the matching ``.vocab`` atomically (temp dir, then rename).
    Returns ``{"model", "vocab", "docs", "too_long", "max_sentence_length"}``; ``too_long``
    counts documents SentencePiece skipped for being longer than ``max_sentence_length``
    bytes (default 4192, which the official options keep).
    """
    import sentencepiece as spm

    check_vocab_size(vocab_size)
    out_model = Path(out_model)
    out_model.parent.mkdir(parents=True, exist_ok=True)
    opts = dict(OFFICIAL_TRAINER_OPTIONS)
    opts.update(trainer_overrides or {})
    max_len = int(opts.get("max_sentence_length", 4192))
    used = {"n": 0, "long": 0}
    failure: list[BaseException] = []

    def sentences() -> Iterator[str]:
        # exceptions raised while reading (bad input) must not vanish inside SentencePiece's C++ loop
        try:
            for text in texts:
                if max_docs and used["n"] >= max_docs:
                    return
                t = clean_training_text(text)
                if not t:
                    continue
                used["n"] += 1
                if len(t) * 4 > max_len and len(t.encode("utf-8")) > max_len:
                    used["long"] += 1
                yield t
        except BaseException as e:  # re-raised after training stops
            failure.append(e)

    opts["vocab_size"] = vocab_size
    opts["num_threads"] = max(1, threads or os.cpu_count() or 1)
    if not verbose:
        opts.setdefault("minloglevel", 2)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out_model.stem}.", dir=out_model.parent))
    try:
        prefix = tmpdir / "sp"
        try:
            spm.SentencePieceTrainer.train(sentence_iterator=sentences(), model_prefix=str(prefix), **opts)
        except RuntimeError as e:
            if failure:
                raise failure[0]
            if used["n"] == 0:
                raise TokenizerError("no non-empty documents to train the tokenizer on") from None
            if used["long"] == used["n"]:
                raise TokenizerError(
                    f"all {used['n']} training documents are longer than max_sentence_length={max_len} bytes, which "
                    "SentencePiece skips; raise it (e.g. --sp-option max_sentence_length=1000000)") from None
            raise TokenizerError(f"SentencePiece training failed for vocab size {vocab_size}: {e}") from None
        if failure:
            raise failure[0]
        vocab_out = out_model.with_suffix(".vocab")
        os.replace(tmpdir / "sp.vocab", vocab_out)
        os.replace(tmpdir / "sp.model", out_model)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return {"model": out_model, "vocab": vocab_out, "docs": used["n"], "too_long": used["long"],
            "max_sentence_length": max_len}


def load_tokenizer(path: str | os.PathLike):
    """Load a SentencePiece model, with a clear error for a missing/corrupt file."""
    import sentencepiece as spm

    path = Path(path)
    if not path.is_file():
        raise TokenizerError(f"{path}: tokenizer model not found")
    try:
        return spm.SentencePieceProcessor(model_file=str(path))
    except (RuntimeError, OSError) as e:
        raise TokenizerError(f"{path}: not a SentencePiece model ({e})") from None


def check_tokenizer(sp, vocab_size: int, name: str = "tokenizer") -> list[str]:
    """Check a loaded model against the challenge's rules; returns warnings, raises on errors.

    Errors: piece count != ``vocab_size``; BOS id not 1; no standalone ``▁`` piece
    (SPEC §8 pitfall 4a: a space would cost 3 byte-fallback tokens and 3 counted bytes).
    """
    check_vocab_size(vocab_size)
    n = sp.get_piece_size()
    if n != vocab_size:
        raise TokenizerError(f"{name}: has {n} pieces but the vocab size asked for is {vocab_size}")
    if sp.bos_id() != BOS_ID:
        raise TokenizerError(f"{name}: BOS id is {sp.bos_id()}, the challenge's shards need BOS id {BOS_ID}")
    if sp.piece_to_id(SPACE_PIECE) == sp.unk_id():
        raise TokenizerError(
            f"{name}: has no standalone '{SPACE_PIECE}' piece, so a lone space would be encoded as byte-fallback "
            "tokens and counted wrongly by the byte metric (SPEC §8 pitfall 4a)"
        )
    warnings = []
    if sp.eos_id() != EOS_ID or sp.pad_id() != PAD_ID or sp.unk_id() != UNK_ID:
        warnings.append(
            f"{name}: special ids pad/bos/eos/unk = {sp.pad_id()}/{sp.bos_id()}/{sp.eos_id()}/{sp.unk_id()}, "
            f"official models use {PAD_ID}/{BOS_ID}/{EOS_ID}/{UNK_ID}"
        )
    return warnings


def write_vocab_file(sp, path: str | os.PathLike) -> Path:
    """Write a ``.vocab`` file (piece<TAB>score per line) like spm_train does, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i in range(sp.get_piece_size()):
            f.write(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n")
    os.replace(tmp, path)
    return path
