"""What the Hub publishes about each file `golf data download` fetches, and the check of the bytes against it.

The Hub serves, for every file of a repo revision (``HfApi.get_paths_info``): its size, its git
blob id (sha1 of ``"blob <size>\\0" + bytes``) and, for a large (LFS) file, the sha256 of its
bytes (``RepoFile.lfs.sha256``).  :func:`hub_digests` asks for all of them in one call;
:func:`verify_bytes` checks a fetched file against its entry (LFS: sha256 and size; a small git
file: blob id and size) and returns what is recorded: the file's sha256 (published for LFS
files, computed after the blob id matched for the others) and its size.  :func:`record`
writes the entries into the data folder's ``manifest.json`` under ``published_files`` (paths
relative to the data folder), which :mod:`golf.data.pinning` checks the tokenizer and the
validation shards against.  No digest is ever written by hand.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from golf.errors import GolfError
from golf.fsutil import atomic_write_json

RECORD_KEY = "published_files"   # manifest.json key: {relative path: {"sha256", "size", "source", "how"}}
CHUNK = 1 << 20


class PublishedMismatch(RuntimeError, GolfError):
    """A fetched file whose bytes are not the ones the Hub publishes for it."""


def hub_digests(repo_id: str, paths: list[str], revision: str, endpoint: str | None, token: str | None,
                strip: str = "") -> dict[str, dict]:
    """``{path (without the ``strip`` prefix): {"size", "sha256"?, "git_blob"}}`` for the files the Hub lists."""
    from huggingface_hub import HfApi

    if not paths:
        return {}
    out: dict[str, dict] = {}
    api = HfApi(endpoint=endpoint, token=token)
    for i in range(0, len(paths), 500):  # the endpoint takes a bounded list per request
        for f in api.get_paths_info(repo_id, paths[i:i + 500], revision=revision, repo_type="dataset"):
            if not hasattr(f, "blob_id"):  # a folder
                continue
            rel = f.path[len(strip):] if strip and f.path.startswith(strip) else f.path
            entry = {"size": int(f.size), "git_blob": f.blob_id}
            if f.lfs is not None:
                entry["sha256"] = str(f.lfs.sha256).lower()
                entry["size"] = int(f.lfs.size)
            out[rel] = entry
    return out


def _digests(path: Path) -> tuple[int, str, str]:
    """(size, sha256, git blob sha1) of the file's bytes, in one read."""
    size = os.path.getsize(path)
    sha, blob = hashlib.sha256(), hashlib.sha1(f"blob {size}\0".encode())
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
            blob.update(chunk)
            n += len(chunk)
    return n, sha.hexdigest(), blob.hexdigest()


def verify_bytes(path: Path, rel: str, published: dict, source: str) -> dict:
    """The record of ``path`` if its bytes are the published ones; :class:`PublishedMismatch` naming it if not."""
    size, sha, blob = _digests(path)
    want = published.get("sha256")
    if want is not None:
        bad = sha != want or size != published["size"]
        how, got, exp = "sha256 published by the Hub (LFS)", sha, want
    else:
        bad = blob != published.get("git_blob") or size != published["size"]
        how, got, exp = "git blob id published by the Hub; sha256 computed", blob, published.get("git_blob")
    if bad:
        raise PublishedMismatch(f"{rel}: the downloaded bytes are not the ones {source} publishes "
                                f"({size:,} bytes, {'sha256' if want else 'git blob'} {got[:16]}…; published "
                                f"{published['size']:,} bytes, {str(exp)[:16]}…); the file was not kept")
    return {"sha256": sha, "size": size, "source": source, "how": how}


def record(manifest_path: Path, entries: dict[str, dict]) -> None:
    """Merge ``entries`` into ``manifest.json``'s ``published_files`` (written atomically: a new inode, so a
    manifest hard-linked from the HF cache is never written through)."""
    import json
    if not entries:
        return
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no manifest (--skip-manifest): nothing to record into
    if not isinstance(manifest, dict):
        return
    rec = manifest.get(RECORD_KEY) if isinstance(manifest.get(RECORD_KEY), dict) else {}
    rec.update(entries)
    manifest[RECORD_KEY] = dict(sorted(rec.items()))
    atomic_write_json(manifest_path, manifest)


def recorded(manifest: dict | None) -> dict[str, dict]:
    """The ``published_files`` record of a parsed manifest (empty when there is none)."""
    rec = manifest.get(RECORD_KEY) if isinstance(manifest, dict) else None
    return {k: v for k, v in rec.items() if isinstance(v, dict) and isinstance(v.get("sha256"), str)} \
        if isinstance(rec, dict) else {}
