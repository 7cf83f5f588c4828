"""Atomic writes: all or nothing, ordinary permissions, no temp files left behind."""
from __future__ import annotations

import json
import os
import stat

import pytest

from golf.fsutil import atomic_write, atomic_write_json


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "report.json"
    atomic_write_json(p, {"v": 1})

    def boom(f):
        f.write(b"{half a rep")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(p, boom)
    assert json.loads(p.read_text()) == {"v": 1}
    assert sorted(x.name for x in tmp_path.iterdir()) == ["report.json"]


def test_permissions_follow_the_umask_and_dirs_are_created(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write_json(tmp_path / "a" / "b" / "x.json", [1, 2], sort_keys=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert p.read_text() == "[\n  1,\n  2\n]\n"
