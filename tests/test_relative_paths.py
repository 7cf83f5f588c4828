"""Every golf command that takes a path, given relative ones, from a working directory of its own.

The commands run in order on one workspace (data -> download -> train -> plot -> build -> verify -> submit ->
lint), each test naming only relative paths; a step that wrote nothing fails the later ones with a clear
message.  The trusted re-evaluation and the sandbox run in other directories, which is where unresolved
paths used to break (`golf demo` failed with exit 10 at verification)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from golf.cli import main
from golf.protocol import BLOB_NAME, CODE_NAME, REPORT_NAME, SUBMISSION_NAME
from tests.conftest import read_sample_docs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """The workspace, made the working directory for the module (restored afterwards)."""
    root = tmp_path_factory.mktemp("relws")
    with open(root / "docs.jsonl", "w", encoding="utf-8") as f:
        for d in read_sample_docs(200):
            f.write(json.dumps({"text": d}) + "\n")
    old = os.getcwd()
    os.chdir(root)
    yield root
    os.chdir(old)


def golf(*args: str):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


def _data(ws):
    """Each step runs once (the slow step runs the later tests without the earlier ones)."""
    if not (ws / "data" / "datasets" / "fineweb10B_sp1024").is_dir():
        golf("data", "build", "--docs", "docs.jsonl", "--vocab-size", "1024", "--num-val-docs", "20", "--out", "data",
             "--workers", "1", "--no-progress")


def _train(ws):
    _data(ws)
    if not (ws / "run" / "final_model.pt").is_file():
        golf("train", "--preset", "tiny", "--data", "data", "--run-dir", "run", "--device", "cpu", "--iterations",
             "6", "--train-batch-tokens", "1024", "--val-max-tokens", "2048", "--set", "train.val_batch_tokens=2048",
             "--no-progress")


def _build(ws):
    _train(ws)
    if not (ws / "art" / REPORT_NAME).is_file():
        golf("build", "--checkpoint", "run", "--data", "data", "--out", "art", "--device", "cpu",
             "--val-max-tokens", "2048")


def test_data_build_relative(ws):
    _data(ws)
    assert (ws / "data" / "datasets" / "fineweb10B_sp1024").is_dir()


def test_data_download_relative(ws):
    """`--source` (a folder laid out like the Hub repo) and `--out`, both relative."""
    import shutil
    _data(ws)
    mirror = ws / "mirror" / "datasets"
    shutil.copytree(ws / "data" / "datasets", mirror / "datasets")
    shutil.copytree(ws / "data" / "tokenizers", mirror / "tokenizers")
    shutil.copy(ws / "data" / "manifest.json", mirror / "manifest.json")
    (mirror / "docs_selected.source_manifest.json").write_text('{"num_docs": 1, "docs_val": 1}\n')
    golf("data", "download", "--variant", "sp1024", "1", "--source", "mirror", "--out", "dl", "--no-progress")
    rel = Path("datasets") / "fineweb10B_sp1024" / "fineweb_val_000000.bin"
    assert (ws / "dl" / rel).read_bytes() == (ws / "data" / rel).read_bytes()


def test_train_relative(ws):
    _train(ws)
    assert (ws / "run" / "final_model.pt").is_file()


def test_plot_relative(ws):
    pytest.importorskip("matplotlib")
    _train(ws)
    golf("plot", "run", "--out", "curves.png")
    assert (ws / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_build_relative(ws):
    _build(ws)
    assert (ws / "art" / CODE_NAME).is_file() and (ws / "art" / BLOB_NAME).is_file()
    assert (ws / "art" / REPORT_NAME).is_file()


@pytest.mark.slow  # the whole validation set, as a submission needs (a quick relative check: test_verify_artifact)
def test_verify_artifact_relative(ws):
    _build(ws)
    golf("verify", "artifact", "art", "--data", "data", "--json", "art/verify.json", "--weak-isolation",
         "--eval-time-limit", "600")
    doc = json.loads((ws / "art" / "verify.json").read_text())
    assert doc["ok"] and doc["kind"] == "golf" and doc["score"]["source"] == "trusted path"


@pytest.mark.slow
def test_submit_and_lint_relative(ws):
    if not (ws / "art" / "verify.json").is_file():
        test_verify_artifact_relative(ws)
    out = "records/track_non_record_16mb/2026-12-07_Rel"
    golf("submit", "--runs", "art", "--name", "rel", "--author", "A", "--github-id", "a", "--out", out)
    assert (ws / out / SUBMISSION_NAME).is_file()
    r = golf("verify", "records", "records")
    assert "1 of 1 folder(s) pass" in r.output
