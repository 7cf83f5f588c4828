"""Build a challenge-format dataset from your own documents (SPEC §1.3).

``build_dataset`` trains (or reuses) a SentencePiece BPE tokenizer, splits the documents
(first ``num_val_docs`` -> validation, the rest -> train), encodes each document as
``[BOS=1] + ids`` (no EOS), writes ``fineweb_{val,train}_NNNNNN.bin`` shards of
``shard_tokens`` tokens, and writes ``manifest.json`` + ``tokenizer_config.export.json``
like the official exporter.  Output layout under ``out_dir``::

    datasets/fineweb10B_sp<V>/fineweb_{val,train}_NNNNNN.bin
    tokenizers/fineweb_<V>_bpe.{model,vocab}
    manifest.json, tokenizer_config.export.json

Shards are first written to a hidden staging folder that is renamed into place only
after the whole dataset is complete, so an interrupted build never leaves a
complete-looking dataset behind.
"""
from __future__ import annotations

import bz2
import collections
import gzip
import json
import lzma
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from golf.data import caseops
from golf.data.manifest import SIDECAR, is_caseops_tokenizer
from golf.data.overlap import DocHasher
from golf.data.pinning import file_sha256
from golf.data.shards import CASEOPS_SUFFIX, SIDECAR_SPLIT, read_shard_header, shard_name, write_shard
from golf.data.tokenizer import (
    BOS_ID,
    EOS_ID,
    OFFICIAL_TRAINER_OPTIONS,
    TokenizerError,
    check_tokenizer,
    check_vocab_size,
    load_tokenizer,
    recommended_bigram_vocab_size,
    tokenizer_filename,
    train_tokenizer,
    write_vocab_file,
)
from golf.errors import GolfError
from golf.fsutil import atomic_write_json
from golf.progress import maybe_tqdm

DEFAULT_SHARD_TOKENS = 100_000_000
DEFAULT_NUM_VAL_DOCS = 50_000
DEFAULT_SP_BATCH = 1024
JOB_CHARS = 1 << 20  # ~1 MB of text per encoding job
JSONL_SUFFIXES = {".jsonl", ".json", ".ndjson"}
TEXT_SUFFIXES = {".txt", ".text", ".md", ".rst"}
# `--docs sample` means the corpus packaged with golf (golf/data/sample/, see its SOURCES.md)
SAMPLE_NAME = "sample"
SAMPLE_DOCS = Path(__file__).resolve().parent / "sample" / "sample_docs.jsonl.xz"
OPENERS = {".xz": lzma.open, ".lzma": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}
MAX_TOKEN_BYTES = 65_535  # sidecar counts are uint16


class DatasetError(ValueError, GolfError):
    """Bad input or a failed build; the message names the file and the problem."""


# ----------------------------------------------------------------------------- input

def _kind(path: Path) -> tuple[str, object]:
    suffixes = [s.lower() for s in path.suffixes]
    opener = open
    if suffixes and suffixes[-1] in OPENERS:
        opener = OPENERS[suffixes.pop()]
    last = suffixes[-1] if suffixes else ""
    if last in JSONL_SUFFIXES:
        return "jsonl", opener
    if last in TEXT_SUFFIXES:
        return "text", opener
    raise DatasetError(
        f"{path}: unknown document file type (use .jsonl with a 'text' field per line, or .txt = one document "
        "per file; .xz/.gz/.bz2 compression allowed)"
    )


def check_doc_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """The document files as paths (``sample`` = the packaged sample), each checked to exist and
    to have a known type."""
    if not paths:
        raise DatasetError("no document files given")
    out = []
    for p in paths:
        p = SAMPLE_DOCS if str(p) == SAMPLE_NAME and not Path(p).exists() else Path(p)
        if p.is_dir():
            raise DatasetError(f"{p}: is a folder; pass its document files with --docs (repeatable)")
        if not p.exists():
            raise DatasetError(f"{p}: document file not found")
        _kind(p)
        out.append(p)
    return out


def iter_documents(paths: Sequence[str | os.PathLike]) -> Iterator[str]:
    """Yield document texts in order: JSONL lines' ``text`` field, or whole text files."""
    for p in check_doc_files(paths):
        kind, opener = _kind(p)
        try:
            with opener(p, "rt", encoding="utf-8") as f:
                if kind == "text":
                    yield f.read()
                    continue
                for lineno, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise DatasetError(f"{p}:{lineno}: bad JSON line ({e.msg} at column {e.colno})") from None
                    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                        raise DatasetError(f"{p}:{lineno}: expected a JSON object with a string field 'text'")
                    yield obj["text"]
        except UnicodeDecodeError as e:
            raise DatasetError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except (lzma.LZMAError, EOFError, OSError) as e:
            if isinstance(e, FileNotFoundError):
                raise DatasetError(f"{p}: document file not found") from None
            raise DatasetError(f"{p}: cannot read ({e})") from None


def _source_sidecar(paths: Sequence[Path]) -> dict:
    """Official ``docs_selected.source_manifest.json`` beside a single JSONL input, if any."""
    if len(paths) != 1:
        return {}
    p = paths[0]
    name = p.name
    for suf in (".xz", ".gz", ".bz2", ".lzma", ".jsonl", ".json", ".ndjson"):
        if name.endswith(suf):
            name = name[: -len(suf)]
    side = p.with_name(f"{name}.source_manifest.json")
    if side.is_file():
        try:
            return json.loads(side.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}
    return {}


# ----------------------------------------------------------------------------- encoding

_WORKER_SP = None
_WORKER_CASEOPS = False


def _worker_init(model_proto: bytes, use_caseops: bool = False) -> None:
    global _WORKER_SP, _WORKER_CASEOPS
    import sentencepiece as spm

    _WORKER_SP = spm.SentencePieceProcessor(model_proto=model_proto)
    _WORKER_CASEOPS = use_caseops


def _encode_batch(sp, texts: list[str], num_threads: int = 1) -> np.ndarray:
    """``[BOS] + ids`` per document, concatenated, as uint16."""
    ids = sp.encode(texts, out_type="numpy", num_threads=num_threads)
    return _with_bos(ids)


def _with_bos(ids: list, head: int = BOS_ID) -> np.ndarray:
    """The documents' arrays concatenated, each after one ``head`` (BOS; 0 for its sidecar count), as uint16."""
    lengths = np.fromiter((len(a) + 1 for a in ids), dtype=np.int64, count=len(ids))
    out = np.zeros(int(lengths.sum()), dtype=np.uint16)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    out[starts] = head
    pos = 0
    for a in ids:
        n = len(a)
        out[pos + 1:pos + 1 + n] = a
        pos += n + 1
    return out


def _encode_caseops_val(sp, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """CaseOps validation documents: ``[BOS] + ids`` and, parallel to it, each token's bytes of the
    original text (BOS 0, operator pieces 0; golf.data.caseops.original_byte_counts)."""
    pairs = caseops.ids_and_surfaces(sp, [caseops.encode(t) for t in texts])
    counts = [caseops.original_byte_counts(surfaces) for _, surfaces in pairs]
    top = max((max(c) for c in counts if c), default=0)
    if top > MAX_TOKEN_BYTES:
        raise DatasetError(f"a token stands for {top} bytes of text, more than a uint16 sidecar holds")
    return _with_bos([ids for ids, _ in pairs]), _with_bos(counts, head=0)


def _worker_encode(job: tuple[str, list[str]]) -> tuple[str, int, int, np.ndarray, np.ndarray | None]:
    split, texts = job
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    if not _WORKER_CASEOPS:
        return split, len(texts), nbytes, _encode_batch(_WORKER_SP, texts), None
    if split == "val":
        return (split, len(texts), nbytes, *_encode_caseops_val(_WORKER_SP, texts))
    return split, len(texts), nbytes, _encode_batch(_WORKER_SP, [caseops.encode(t) for t in texts]), None


def _batches(docs: Iterator[str], num_val_docs: int, batch_size: int,
             max_chars: int = JOB_CHARS) -> Iterator[tuple[str, list[str]]]:
    """(split, texts) encoding jobs of at most ``batch_size`` documents / about ``max_chars`` characters
    (small jobs keep all workers busy to the end); never mixing splits."""
    batch: list[str] = []
    chars = 0
    split = "val"
    i = 0
    for text in docs:
        s = "val" if i < num_val_docs else "train"
        if s != split:
            if batch:
                yield split, batch
            batch, chars, split = [], 0, s
        batch.append(text)
        chars += len(text)
        i += 1
        if len(batch) >= batch_size or chars >= max_chars:
            yield split, batch
            batch, chars = [], 0
    if batch:
        yield split, batch


def _encoded_stream(jobs: Iterator[tuple[str, list[str]]], model_proto: bytes, workers: int,
                    use_caseops: bool = False):
    """Encode batches in order, in ``workers`` processes (in-process when 1), with bounded look-ahead."""
    if workers <= 1:
        _worker_init(model_proto, use_caseops)
        for job in jobs:
            yield _worker_encode(job)
        return
    import multiprocessing as mp

    # fork where available: workers only run SentencePiece, and fork (unlike spawn) never re-imports
    # the caller's __main__ (which breaks for stdin scripts and makes Pool respawn workers forever)
    method = "fork" if "fork" in mp.get_all_start_methods() and sys.platform != "darwin" else "spawn"
    ctx = mp.get_context(method)
    pool = ctx.Pool(workers, initializer=_worker_init, initargs=(model_proto, use_caseops))
    try:
        pending: collections.deque = collections.deque()
        for job in jobs:
            pending.append(pool.apply_async(_worker_encode, (job,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


class _ShardWriter:
    def __init__(self, out: Path, shard_tokens: int):
        self.out, self.shard_tokens = out, shard_tokens
        self.buf = np.empty(min(shard_tokens, 1 << 24), dtype=np.uint16)
        self.fill = 0
        self.stats = {s: {"docs": 0, "tokens": 0, "files": []} for s in ("val", "train", SIDECAR_SPLIT)}
        self.split = "val"

    def _grow(self, need: int) -> None:
        if need > len(self.buf):
            new = np.empty(min(self.shard_tokens, max(need, 2 * len(self.buf))), dtype=np.uint16)
            new[:self.fill] = self.buf[:self.fill]
            self.buf = new

    def flush(self) -> None:
        if self.fill == 0:
            return
        st = self.stats[self.split]
        name = shard_name(self.split, len(st["files"]))
        write_shard(self.out / name, self.buf[:self.fill])
        st["files"].append(name)
        self.fill = 0

    def add(self, split: str, ndocs: int, tokens: np.ndarray) -> None:
        if split != self.split:
            self.flush()  # no shard mixes splits
            self.split = split
        st = self.stats[split]
        st["docs"] += ndocs
        st["tokens"] += len(tokens)
        pos = 0
        while pos < len(tokens):
            take = min(len(tokens) - pos, self.shard_tokens - self.fill)
            self._grow(self.fill + take)
            self.buf[self.fill:self.fill + take] = tokens[pos:pos + take]
            self.fill += take
            pos += take
            if self.fill == self.shard_tokens:
                self.flush()


# ----------------------------------------------------------------------------- manifest

def _rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (as the official manifest does), else absolute."""
    p, r = Path(path).resolve(), Path(root).resolve()
    return p.relative_to(r).as_posix() if p.is_relative_to(r) else str(p)


def _write_json(path: Path, obj) -> None:
    atomic_write_json(path, obj)


def _read_json_dict(path: Path) -> dict:
    """An existing JSON object file's content; {} when absent, unreadable or not an object."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _merge_entries(old: list, new: dict) -> list:
    return [e for e in (old or []) if isinstance(e, dict) and e.get("name") != new["name"]] + [new]


# ----------------------------------------------------------------------------- build

def _remove_stale_staging(parent: Path, dataset_name: str) -> None:
    """Delete staging folders left by killed builds (their process no longer exists)."""
    if not parent.is_dir():
        return
    for d in parent.glob(f".{dataset_name}.partial-*"):
        try:
            pid = int(d.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (ValueError, PermissionError, OSError):
            continue


def _check_build_args(docs, vocab_size: int, num_val_docs: int, shard_tokens: int, tokenizer_model,
                      tokenizer_train_docs: int) -> list[Path]:
    """The document files, after every argument is checked (the message names the bad one)."""
    try:
        check_vocab_size(vocab_size)
    except TokenizerError as e:
        raise DatasetError(str(e)) from None
    if shard_tokens < 1 or shard_tokens >= 2**31:
        raise DatasetError(f"shard size must be between 1 and 2^31-1 tokens, got {shard_tokens}")
    if num_val_docs < 1:
        raise DatasetError(f"--num-val-docs must be at least 1 (got {num_val_docs}); "
                           "evaluation needs a validation split")
    if tokenizer_train_docs < 0:
        raise DatasetError(f"tokenizer train docs must be >= 0, got {tokenizer_train_docs}")
    paths = check_doc_files(docs)
    if tokenizer_model is None:
        for p in paths:
            if not p.is_file():
                raise DatasetError(f"{p}: not a regular file (a pipe?); training a tokenizer reads the documents "
                                   "twice, so pass --tokenizer to encode from a pipe")
    return paths


def _encode_settings(workers: int | None, sp_batch_size: int | None) -> tuple[int, int]:
    """Encoding processes and documents per job: the arguments, else the official env vars, else defaults."""
    if workers is None:
        workers = int(os.environ.get("MATCHED_FINEWEB_TOKENIZER_THREADS") or 0) or os.cpu_count() or 1
    if sp_batch_size is None:
        sp_batch_size = int(os.environ.get("MATCHED_FINEWEB_SP_BATCH_SIZE") or DEFAULT_SP_BATCH)
    return max(1, int(workers)), max(1, int(sp_batch_size))


@dataclass
class _Layout:
    """Where one build writes: the final paths and the hidden staging folder beside the dataset."""
    out: Path
    vocab_size: int
    caseops: bool = False  # the record's CaseOps names (CASEOPS_SUFFIX)

    def __post_init__(self):
        extra = CASEOPS_SUFFIX if self.caseops else ""
        self.suffix = f"sp{self.vocab_size}{extra}"
        self.dataset_name = f"fineweb10B_{self.suffix}"
        self.dataset_dir = self.out / "datasets" / self.dataset_name
        self.tok_dir = self.out / "tokenizers"
        self.model_path = self.tok_dir / tokenizer_filename(self.vocab_size).replace(".model", f"{extra}.model")
        self.vocab_path = self.model_path.with_suffix(".vocab")
        self.staging = self.dataset_dir.with_name(f".{self.dataset_name}.partial-{os.getpid()}")
        self.st_model = self.staging / "_tokenizer" / self.model_path.name
        self.st_vocab = self.staging / "_tokenizer" / self.vocab_path.name

    def make_staging(self) -> None:
        """Everything (tokenizer + shards) is staged in a hidden folder and moved into place only at the end,
        so a failed or killed build neither leaves partial shards nor replaces a working tokenizer."""
        _remove_stale_staging(self.dataset_dir.parent, self.dataset_name)
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True)
        self.st_model.parent.mkdir()

    def commit(self) -> None:
        """Move the staged tokenizer, then the staged shards, into place."""
        self.tok_dir.mkdir(parents=True, exist_ok=True)
        os.replace(self.st_vocab, self.vocab_path)
        os.replace(self.st_model, self.model_path)
        self.st_model.parent.rmdir()
        if self.dataset_dir.exists():
            shutil.rmtree(self.dataset_dir)
        os.replace(self.staging, self.dataset_dir)
        _write_json(self.dataset_dir.parent / f".{self.dataset_name}.source.json",
                    {"repo_id": None, "remote_root": None, "source": "golf data build"})


def _stage_tokenizer(lay: _Layout, paths: list[Path], tokenizer_model, tokenizer_train_docs: int, workers: int,
                     trainer_overrides: dict | None, progress, say) -> list[str]:
    """Copy the given tokenizer or train one into the staging folder; returns warnings."""
    warnings: list[str] = []
    if tokenizer_model is not None:
        src = Path(tokenizer_model)
        try:
            sp = load_tokenizer(src)
            warnings += check_tokenizer(sp, lay.vocab_size, name=str(src))
        except TokenizerError as e:
            raise DatasetError(str(e)) from None
        if is_caseops_tokenizer(sp) != lay.caseops:
            raise DatasetError(f"{src}: " + ("not a CaseOps tokenizer (pieces 4-7 must be the operators "
                                             "U+E001..U+E004)" if lay.caseops else
                                             "is a CaseOps tokenizer: pass --caseops to build with it"))
        shutil.copyfile(src, lay.st_model)
        if src.with_suffix(".vocab").is_file():
            shutil.copyfile(src.with_suffix(".vocab"), lay.st_vocab)
        else:
            write_vocab_file(sp, lay.st_vocab)
        say(f"reusing tokenizer {src}")
        return warnings
    say(f"training a {lay.vocab_size}-piece SentencePiece BPE tokenizer"
        + (f" on the first {tokenizer_train_docs} documents" if tokenizer_train_docs else ""))
    texts = maybe_tqdm(iter_documents(paths), progress, desc="tokenizer text", unit="doc",
                       total=tokenizer_train_docs or None, dynamic_ncols=True)
    if lay.caseops:  # trained on the transformed text, the operators reserved as ids 4-7 (SPEC §1.6)
        trainer_overrides = {**(trainer_overrides or {}), "user_defined_symbols": list(caseops.OPERATORS)}
    try:
        info = train_tokenizer(map(caseops.encode, texts) if lay.caseops else texts, lay.vocab_size, lay.st_model,
                               threads=workers, max_docs=tokenizer_train_docs, trainer_overrides=trainer_overrides)
        if info["too_long"]:
            warnings.append(
                f"{info['too_long']} of {info['docs']} tokenizer-training documents are longer than "
                f"max_sentence_length={info['max_sentence_length']} bytes and were skipped by SentencePiece "
                "(the official behaviour); --sp-option max_sentence_length=N includes them")
        sp = load_tokenizer(lay.st_model)
        warnings += check_tokenizer(sp, lay.vocab_size, name=f"trained tokenizer {lay.model_path.name}")
    except TokenizerError as e:
        raise DatasetError(str(e)) from None
    finally:
        texts.close()  # a generator or a tqdm bar
    return warnings


class _NoOverlap:
    """Refuses a training document that is a validation document (hashed between BOS tokens, golf.data.overlap):
    validation batches come first, so every training batch is checked against all of them."""

    def __init__(self):
        self.val, self.hashers = {}, {"val": DocHasher(), "train": DocHasher()}

    def add(self, split: str, tokens: np.ndarray, num_val_docs: int) -> None:
        h = self.hashers[split]
        for i, d in h.feed(tokens) + h.finish():  # a batch holds whole documents
            if split == "val":
                self.val.setdefault(d, i)
            elif d in self.val:
                raise DatasetError(
                    f"document {num_val_docs + i} of the input (training split) is the same text as validation "
                    f"document {self.val[d]}: the training shards would hold a scored document. Remove the "
                    "duplicate from the input (golf data check DIR finds such overlap in existing shards)")


def _encode_shards(lay: _Layout, paths: list[Path], num_val_docs: int, shard_tokens: int, workers: int,
                   sp_batch_size: int, progress) -> tuple[dict, int]:
    """Encode every document with the staged tokenizer into staged shards (CaseOps: transformed, with the
    validation byte sidecar beside them), refusing train/val overlap; ``(per-split stats, text bytes)``."""
    model_proto = lay.st_model.read_bytes()
    writer, side = _ShardWriter(lay.staging, shard_tokens), _ShardWriter(lay.staging, shard_tokens)
    side.split = SIDECAR_SPLIT
    guard = _NoOverlap()
    text_bytes = 0
    bar = maybe_tqdm(None, progress, desc=f"encoding ({workers} proc)", unit="doc", dynamic_ncols=True)
    try:
        jobs = _batches(iter_documents(paths), num_val_docs, sp_batch_size)
        for split, ndocs, nbytes, toks, counts in _encoded_stream(jobs, model_proto, workers, lay.caseops):
            guard.add(split, toks, num_val_docs)
            writer.add(split, ndocs, toks)
            if counts is not None:
                side.add(SIDECAR_SPLIT, ndocs, counts)
            text_bytes += nbytes
            if bar is not None:
                bar.update(ndocs)
                ntok = writer.stats["val"]["tokens"] + writer.stats["train"]["tokens"]
                bar.set_postfix_str(f"{text_bytes / 1e6:.1f} MB, {ntok:,} tok", refresh=False)
        writer.flush()
        side.flush()
    finally:
        if bar is not None:
            bar.close()
    st = writer.stats
    st[SIDECAR_SPLIT] = side.stats[SIDECAR_SPLIT]
    if st["val"]["docs"] < num_val_docs or st["train"]["docs"] == 0:
        total = st["val"]["docs"] + st["train"]["docs"]
        raise DatasetError(
            f"only {total} documents in the input but --num-val-docs is {num_val_docs}: nothing would be left "
            "for training (lower --num-val-docs)"
        )
    for split in ("val", "train", SIDECAR_SPLIT):  # re-validate what was written
        for name in st[split]["files"]:
            read_shard_header(lay.staging / name)
    return st, text_bytes


def _split_stats(st: dict) -> dict:
    """The manifest's ``stats`` block from the per-split counts."""
    out = {}
    for key in ("docs", "files", "tokens"):
        val, train = (len(st[s][key]) if key == "files" else st[s][key] for s in ("val", "train"))
        out.update({f"{key}_total": val + train, f"{key}_val": val, f"{key}_train": train})
    return out


def _write_manifest(lay: _Layout, paths: list[Path], stats: dict, shard_tokens: int, tokenizer_model,
                    tokenizer_train_docs: int, trainer_overrides: dict | None) -> Path:
    """``manifest.json`` + ``tokenizer_config.export.json`` like the official exporter (entries of other
    tokenizers/datasets already there are kept); returns the manifest's path."""
    out, vocab_size = lay.out, lay.vocab_size
    tok_name = f"sp_bpe_{vocab_size}" + (CASEOPS_SUFFIX if lay.caseops else "")
    if lay.caseops:
        trainer_overrides = {**(trainer_overrides or {}), "user_defined_symbols": list(caseops.OPERATORS)}
    rbv = recommended_bigram_vocab_size(vocab_size)
    spec = {"name": tok_name, "kind": "sentencepiece_bpe", "dataset_suffix": lay.suffix, "vocab_size": vocab_size}
    if tokenizer_train_docs:
        spec["tokenizer_train_docs"] = tokenizer_train_docs
    if tokenizer_model is not None:
        spec["reuse_model"] = _rel(Path(tokenizer_model), out)
    else:
        spec["trainer_options"] = {**OFFICIAL_TRAINER_OPTIONS, **(trainer_overrides or {})}
    tokenizer_entry = {
        "name": tok_name, "kind": "sentencepiece_bpe", "vocab_size": vocab_size, "bos_id": BOS_ID, "eos_id": EOS_ID,
        "recommended_bigram_vocab_size": rbv, "source_spec": spec,
        "model_path": _rel(lay.model_path, out), "vocab_path": _rel(lay.vocab_path, out),
        "sha256": file_sha256(lay.model_path),  # pinned: golf verify compares it with the tokenizer it is given
    }
    if lay.caseops:  # the field the record's lossless_caps.py reads to know the transform
        tokenizer_entry["text_transform"] = caseops.TRANSFORM_NAME
    dataset_rel = _rel(lay.dataset_dir, out)
    dataset_entry = {
        "name": lay.dataset_name, "tokenizer_name": tok_name, "tokenizer_kind": "sentencepiece_bpe",
        "path": dataset_rel, "train_glob": f"{dataset_rel}/fineweb_train_*.bin",
        "val_glob": f"{dataset_rel}/fineweb_val_*.bin", "vocab_size": vocab_size, "bos_id": BOS_ID,
        "eos_id": EOS_ID, "recommended_bigram_vocab_size": rbv, "stats": stats,
    }
    if lay.caseops:  # scored in the bytes of the original text (golf.data.manifest, golf.metric.byte_source)
        dataset_entry.update(text_transform=caseops.TRANSFORM_NAME, byte_source=SIDECAR,
                             val_bytes_glob=f"{dataset_rel}/fineweb_{SIDECAR_SPLIT}_*.bin")
    manifest_path = out / "manifest.json"
    old = _read_json_dict(manifest_path)
    sidecar = _source_sidecar(paths)
    docs_rel = [_rel(p, out) for p in paths]
    manifest = {
        "version": "10B",
        "num_docs": stats["docs_total"],
        "num_val_docs": stats["docs_val"],
        "shuffle_seed": sidecar.get("shuffle_seed"),
        "shard_size": shard_tokens,
        "append_eos": False,
        "docs_jsonl": docs_rel[0] if len(docs_rel) == 1 else docs_rel,
        "docs_meta": sidecar,
        "tokenizer_specs": _rel(out / "tokenizer_config.export.json", out),
        "tokenizers": _merge_entries(old.get("tokenizers"), tokenizer_entry),
        "datasets": _merge_entries(old.get("datasets"), dataset_entry),
    }
    specs_path = out / "tokenizer_config.export.json"
    _write_json(specs_path, {"tokenizers": _merge_entries(_read_json_dict(specs_path).get("tokenizers"), spec)})
    _write_json(manifest_path, manifest)
    _write_json(out / "manifest.source.json", {"source": "golf data build", "repo_id": None})
    return manifest_path


def build_dataset(docs: Sequence[str | os.PathLike], vocab_size: int, out_dir: str | os.PathLike,
                  num_val_docs: int, shard_tokens: int = DEFAULT_SHARD_TOKENS, workers: int | None = None,
                  progress: bool | None = None, tokenizer_model: str | os.PathLike | None = None,
                  tokenizer_train_docs: int = 0, sp_batch_size: int | None = None, overwrite: bool = True,
                  trainer_overrides: dict | None = None, log=None, caseops: bool = False) -> dict:
    """Documents -> tokenizer + shards + manifest.  Returns a summary (paths, per-split stats, timings).

    ``workers``: encoding processes (default ``MATCHED_FINEWEB_TOKENIZER_THREADS`` or the CPU count);
    ``sp_batch_size``: documents per encode job (default ``MATCHED_FINEWEB_SP_BATCH_SIZE`` or 1024);
    ``tokenizer_model``: reuse this ``.model`` instead of training one (its piece count must be
    ``vocab_size``); ``tokenizer_train_docs``: train on the first N documents only (0 = all);
    ``overwrite``: replace an existing ``fineweb10B_sp<V>`` dataset in ``out_dir`` (else error).
    ``log``: callable for progress messages (default: silent).
    ``caseops``: the CaseOps variant (SPEC §1.6): documents transformed by golf.data.caseops, a tokenizer with
    the operators reserved, the record's names (``fineweb10B_sp<V>_lossless_caps_caseops_v1_reserved``) and the
    validation byte sidecar ``fineweb_val_bytes_NNNNNN.bin`` beside the validation shards.
    A training document that is the same text as a validation document is refused (no shard is written).
    """
    t0 = time.perf_counter()
    say = log or (lambda _msg: None)
    paths = _check_build_args(docs, vocab_size, num_val_docs, shard_tokens, tokenizer_model, tokenizer_train_docs)
    workers, sp_batch_size = _encode_settings(workers, sp_batch_size)
    lay = _Layout(Path(out_dir), vocab_size, caseops)
    lay.out.mkdir(parents=True, exist_ok=True)
    if lay.dataset_dir.exists() and any(lay.dataset_dir.iterdir()) and not overwrite:
        raise DatasetError(f"{lay.dataset_dir} already exists (pass --force to replace it)")
    lay.make_staging()
    try:
        t_tok = time.perf_counter()
        warnings = _stage_tokenizer(lay, paths, tokenizer_model, tokenizer_train_docs, workers, trainer_overrides,
                                    progress, say)
        t_enc = time.perf_counter()
        st, text_bytes = _encode_shards(lay, paths, num_val_docs, shard_tokens, workers, sp_batch_size, progress)
        lay.commit()
    except BaseException:
        shutil.rmtree(lay.staging, ignore_errors=True)
        raise
    encode_seconds = time.perf_counter() - t_enc
    stats = _split_stats(st)
    manifest_path = _write_manifest(lay, paths, stats, shard_tokens, tokenizer_model, tokenizer_train_docs,
                                    trainer_overrides)
    return {
        "data_dir": str(lay.out),
        "dataset_dir": str(lay.dataset_dir),
        "tokenizer_model": str(lay.model_path),
        "tokenizer_vocab": str(lay.vocab_path),
        "manifest": str(manifest_path),
        "vocab_size": vocab_size,
        "stats": stats,
        "splits": {s: {"docs": st[s]["docs"], "tokens": st[s]["tokens"], "files": list(st[s]["files"])}
                   for s in ("val", "train", SIDECAR_SPLIT)},
        "text_bytes": text_bytes,
        "workers": workers,
        "sp_batch_size": sp_batch_size,
        "tokenizer_seconds": t_enc - t_tok,
        "encode_seconds": encode_seconds,
        "seconds": time.perf_counter() - t0,
        "warnings": warnings,
    }
