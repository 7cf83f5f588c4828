"""Atomic file writes: a temp file in the target directory, then one rename.

A crash or Ctrl-C leaves either the old file or the new one, never half of one.
Stdlib only, so it ships inside ``train_gpt.py``.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], *, fsync: bool = False) -> Path:
    """Call ``write(f)`` on a binary temp file beside ``path``, then rename it over ``path``.

    The file gets ordinary permissions (0666 minus the umask; ``mkstemp`` would leave 0600).
    ``fsync``: flush to disk before the rename (checkpoints, shards).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> Path:
    return atomic_write(path, lambda f: f.write(data), fsync=fsync)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, **dump_kw) -> Path:
    """``json.dumps(obj, indent=2, **dump_kw)`` + newline, written atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, **dump_kw) + "\n")
