"""What an artifact folder ships, and how big it is: every regular file counts.

:func:`inventory` walks the folder without following links and lists every regular file
(``__pycache__/`` and dotfiles included) with its size and SHA-256; anything that is not a
regular file or a directory (symlinks, FIFOs, sockets, devices) or cannot be read is
*refused* and listed.  With ``copy_to`` the same single read also writes the copy the sandbox
runs, so the bytes counted are exactly the bytes that run (no second read to race against).
:func:`size_checks` turns it into report checks: the total against the limit, and a failure
naming every refused entry.
"""
from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from golf.verifier.report import FAIL, PASS, Check

CHUNK = 1 << 20


@dataclass
class FileEntry:
    path: str      # relative, '/'-separated
    size: int      # bytes actually read
    sha256: str


@dataclass
class Inventory:
    root: Path
    files: list[FileEntry] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (relative path, why)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def get(self, rel: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == rel), None)

    def to_dict(self) -> dict:
        return {"root": str(self.root), "total_bytes": self.total_bytes,
                "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
                "refused": [{"path": p, "why": w} for p, w in self.refused]}


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "symlink"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return "special file"


def _read_file(dir_fd: int, name: str, dst: Path | None) -> tuple[int, str]:
    """Read one regular file (no links followed) once: size and hash; copy it when ``dst``."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{name} changed into a non-regular file while being read")
        h, n = hashlib.sha256(), 0
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644) if dst else None
        try:
            while chunk := os.read(fd, CHUNK):
                h.update(chunk)
                n += len(chunk)
                if out is not None:
                    os.write(out, chunk)
        finally:
            if out is not None:
                os.close(out)
        return n, h.hexdigest()
    finally:
        os.close(fd)


def _walk(inv: Inventory, dir_fd: int, rel: str, dst: Path | None) -> None:
    for name in sorted(os.listdir(dir_fd)):
        r = f"{rel}{name}"
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except OSError as e:
            inv.refused.append((r, f"cannot stat: {e.strerror}"))
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            except OSError as e:
                inv.refused.append((r + "/", f"cannot open directory: {e.strerror}"))
                continue
            try:
                if dst is not None:
                    (dst / name).mkdir()
                _walk(inv, sub, r + "/", dst / name if dst is not None else None)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            try:
                size, digest = _read_file(dir_fd, name, dst / name if dst is not None else None)
            except OSError as e:
                inv.refused.append((r, f"cannot read: {e.strerror or e}"))
                continue
            inv.files.append(FileEntry(r, size, digest))
        else:
            inv.refused.append((r, f"{_kind(st.st_mode)} (only regular files may be shipped)"))


def inventory(art: str | Path, copy_to: str | Path | None = None) -> Inventory:
    """Every regular file under ``art`` (no links followed); ``copy_to``: an empty dir to copy them into."""
    art = Path(art)
    inv = Inventory(root=art)
    st = os.lstat(art)
    if stat.S_ISLNK(st.st_mode):
        inv.refused.append((".", "the artifact folder itself is a symlink"))
        return inv
    dst = Path(copy_to) if copy_to is not None else None
    if dst is not None:
        dst.mkdir(parents=True, exist_ok=True)
        if any(dst.iterdir()):
            raise ValueError(f"copy_to {dst}: not empty")
    fd = os.open(art, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        _walk(inv, fd, "", dst)
    finally:
        os.close(fd)
    return inv


def size_checks(inv: Inventory, max_bytes: int) -> list[Check]:
    """``size.total`` (every shipped file, decimal bytes) and ``size.uncounted`` (refused entries)."""
    from golf.protocol import EXIT_SIZE
    total = inv.total_bytes
    biggest = sorted(inv.files, key=lambda f: -f.size)
    listing = ", ".join(f"{f.path} {f.size:,}" for f in biggest[:8]) + (
        f" (+{len(biggest) - 8} more files)" if len(biggest) > 8 else "")
    checks = [Check("size.total", FAIL if total > max_bytes else PASS, measured=total, limit=max_bytes,
                    exit_code=EXIT_SIZE, message=f"every file in the artifact folder, {len(inv.files)} file(s) "
                                                 f"(decimal bytes): {listing or 'none'}")]
    refused = "; ".join(f"{p}: {w}" for p, w in inv.refused[:10]) + (
        f" (+{len(inv.refused) - 10} more)" if len(inv.refused) > 10 else "")
    checks.append(Check("size.uncounted", FAIL if inv.refused else PASS, measured=len(inv.refused), limit=0,
                        exit_code=EXIT_SIZE, message=("entries that are not counted regular files: " + refused)
                        if inv.refused else "no symlinks, special or unreadable files"))
    return checks
