"""The README's first experience, as written: `golf demo` (the console script, default output folder) from a
fresh working directory, to the records folder and its lint.  Slow (minutes): `.ci/run`'s second step."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from golf.protocol import SUBMISSION_NAME

README = Path(__file__).resolve().parents[1] / "README.md"


def _golf() -> list[str]:
    exe = shutil.which("golf", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "golf"]


def test_readme_setup_command_ends_with_golf_demo():
    """The set-up line this test replays is the README's (so the two cannot drift apart silently)."""
    line = next(ln for ln in README.read_text(encoding="utf-8").splitlines() if "pip install -e" in ln)
    assert line.strip().endswith("&& golf demo"), line


@pytest.mark.slow
def test_golf_demo_as_the_readme_runs_it(tmp_path):
    r = subprocess.run([*_golf(), "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=3000)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    m = re.search(r"val_bpb\s+([0-9.]+) \(mean of 2 seeds", r.stdout)
    assert m and 0 < float(m.group(1)) < 10, r.stdout[-2000:]
    folders = list((tmp_path / "golf-demo" / "records").glob("track_*/*_GolfDemo_Tiny"))
    assert len(folders) == 1, folders
    sub = json.loads((folders[0] / SUBMISSION_NAME).read_text(encoding="utf-8"))
    assert abs(sub["val_bpb"] - float(m.group(1))) < 1e-8
    lint = subprocess.run([*_golf(), "verify", "records", str(folders[0].relative_to(tmp_path))], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert lint.returncode == 0, lint.stdout[-4000:]
    assert "1 of 1 folder(s) pass" in lint.stdout
