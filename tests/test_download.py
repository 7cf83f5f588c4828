"""`golf data download`: local-mirror backend and the real huggingface_hub path against a local fake Hub."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from golf.cli import main
from golf.data.download import DownloadError, default_repo, download_dataset
from golf.data.shards import read_shard, read_shard_header, write_shard

REPO = "willdepueoai/parameter-golf"


@pytest.fixture(scope="module")
def mirror(tiny_data, tmp_path_factory) -> Path:
    """A folder laid out like the HF dataset repo (remote root `datasets/`), made from real built data."""
    root = tmp_path_factory.mktemp("mirror")
    rr = root / "datasets"
    src = tiny_data["data_dir"]
    shutil.copytree(src / "datasets", rr / "datasets")
    shutil.copytree(src / "tokenizers", rr / "tokenizers")
    shutil.copy(src / "manifest.json", rr / "manifest.json")
    (rr / "docs_selected.jsonl").write_text('{"text": "a"}\n')
    (rr / "docs_selected.source_manifest.json").write_text('{"num_docs": 1, "docs_val": 1}\n')
    return root


def _same(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


def test_variant_repos(monkeypatch):
    monkeypatch.delenv("MATCHED_FINEWEB_REPO_ID", raising=False)
    assert default_repo("sp1024") == "willdepueoai/parameter-golf"
    assert default_repo("sp4096") == default_repo("sp8192") == "kevclark/parameter-golf"
    monkeypatch.setenv("MATCHED_FINEWEB_REPO_ID", "me/mine")
    assert default_repo("sp4096") == "me/mine"


def test_local_mirror_download_resume_and_checks(mirror, tmp_path):
    out = tmp_path / "data"
    src_ds = mirror / "datasets" / "datasets" / "fineweb10B_sp1024"
    res = download_dataset("sp1024", 2, out, source=mirror, progress=False, repo_id=REPO)
    ds = out / "datasets" / "fineweb10B_sp1024"
    assert sorted(p.name for p in ds.iterdir()) == ["fineweb_train_000000.bin", "fineweb_train_000001.bin",
                                                    "fineweb_val_000000.bin"]
    for p in ds.iterdir():
        assert _same(p, src_ds / p.name)
    assert _same(out / "tokenizers" / "fineweb_1024_bpe.model", mirror / "datasets/tokenizers/fineweb_1024_bpe.model")
    assert (out / "tokenizers" / "fineweb_1024_bpe.vocab").is_file()
    assert json.loads((out / "manifest.source.json").read_text())["repo_id"] == REPO
    assert len(res.fetched) == 5 and not res.skipped

    # re-run: everything valid is kept; a broken shard is fetched again; more shards are added
    broken = ds / "fineweb_train_000001.bin"
    data = broken.read_bytes()[:5000]
    broken.unlink()  # (the file is a hard link into the mirror: never write through it)
    broken.write_bytes(data)
    res = download_dataset("sp1024", 3, out, source=mirror, progress=False, repo_id=REPO)
    assert res.refetched == ["datasets/fineweb10B_sp1024/fineweb_train_000001.bin"]
    assert res.fetched == ["datasets/fineweb10B_sp1024/fineweb_train_000002.bin"]
    assert len(res.skipped) == 4  # manifest is not counted; tokenizer x2 + val + train 0
    assert _same(ds / "fineweb_train_000001.bin", src_ds / "fineweb_train_000001.bin")

    # limits and lookups
    with pytest.raises(DownloadError, match=r"--train-shards 9 is more than the 5 train shards"):
        download_dataset("sp1024", 9, out, source=mirror, progress=False, repo_id=REPO)
    with pytest.raises(DownloadError, match=r"no dataset fineweb10B_sp4096 \(it has: fineweb10B_sp1024\)"):
        download_dataset("sp4096", 1, out, source=mirror, progress=False, repo_id=REPO)
    with pytest.raises(DownloadError, match="unknown variant"):
        download_dataset("gpt2", 1, out, source=mirror, progress=False)

    # manifest from another repo is refused, not silently reused (SPEC §8 pitfall 6)
    with pytest.raises(DownloadError, match=rf"came from {REPO}, not kevclark/parameter-golf.*--refresh-manifest"):
        download_dataset("sp1024", 1, out, source=mirror, progress=False, repo_id="kevclark/parameter-golf")
    res = download_dataset("sp1024", 1, out, source=mirror, progress=False, repo_id="kevclark/parameter-golf",
                           refresh_manifest=True, with_docs=True)
    assert json.loads((out / "manifest.source.json").read_text())["repo_id"] == "kevclark/parameter-golf"
    # files that came from the other repo are not trusted just because they look valid
    assert any(f"came from {REPO}" in w for w in res.warnings)
    assert len(res.refetched) == 4 and not res.skipped
    res = download_dataset("sp1024", 1, out, source=mirror, progress=False, repo_id="kevclark/parameter-golf")
    assert len(res.skipped) == 4 and not res.fetched and not res.refetched
    assert (out / "docs_selected.jsonl").read_text() == '{"text": "a"}\n'


def test_corrupt_source_shard_is_rejected(mirror, tmp_path):
    bad = tmp_path / "badmirror"
    shutil.copytree(mirror, bad)
    p = bad / "datasets/datasets/fineweb10B_sp1024/fineweb_train_000000.bin"
    p.write_bytes(p.read_bytes() + b"xx")
    out = tmp_path / "data"
    with pytest.raises(DownloadError, match="fetched shard is invalid.*padded"):
        download_dataset("sp1024", 1, out, source=bad, progress=False)
    assert not (out / "datasets/fineweb10B_sp1024/fineweb_train_000000.bin").exists()


def test_skip_manifest_uses_standard_layout(mirror, tmp_path):
    res = download_dataset("sp1024", 1, tmp_path, source=mirror / "datasets", skip_manifest=True, progress=False)
    assert not (tmp_path / "manifest.json").exists()
    assert read_shard_header(tmp_path / "datasets/fineweb10B_sp1024/fineweb_val_000000.bin") > 0
    assert any("no manifest" in w for w in res.warnings)


def test_cli_download_errors(mirror, tmp_path):
    r = CliRunner()
    help_text = r.invoke(main, ["data", "download", "--help"]).output
    assert "--train-shards" in help_text and "kevclark/parameter-golf" in help_text and "HF_TOKEN" in help_text
    for args, needle in [(["--variant", "wordpiece"], "unknown variant 'wordpiece'"),
                         (["--train-shards", "99"], "more than the 5 train shards"),
                         (["--source", str(tmp_path / "nowhere")], "source folder not found")]:
        res = r.invoke(main, ["data", "download", "--out", str(tmp_path / "o"), "--no-progress", "--source",
                              str(mirror)] + args if "--source" not in args else
                       ["data", "download", "--out", str(tmp_path / "o"), "--no-progress"] + args)
        assert res.exit_code != 0 and needle in res.output, res.output
        assert "Traceback" not in res.output
    res = r.invoke(main, ["data", "download", "2", "--out", str(tmp_path / "o"), "--no-progress", "--source",
                          str(mirror)])
    assert res.exit_code == 0, res.output
    assert "5 fetched" in res.output and "2 train shards" in res.output


# ----------------------------------------------------------------------------- fake Hub over HTTP

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class _FakeHub(BaseHTTPRequestHandler):
    """Serves `/datasets/{repo}/resolve/{rev}/{path}` like the Hub (HEAD + GET + Range), from a mirror folder."""
    root: Path
    repo: str
    log: list
    cut_once: set  # paths whose first full GET is cut in the middle (the client must resume with Range)
    corrupt: set = set()  # paths served with one byte flipped (the published metadata stays the true one)

    def log_message(self, *args):  # quiet
        pass

    def _resolve(self):
        prefix = f"/datasets/{self.repo}/resolve/"
        if not self.path.startswith(prefix):
            self._error(404, "RepoNotFound")
            return None
        rev, _, rel = self.path[len(prefix):].partition("/")
        p = self.root / rel
        if not p.is_file():
            self._error(404, "EntryNotFound")
            return None
        data = p.read_bytes()
        if rel in self.corrupt:
            data = bytes([data[0] ^ 1]) + data[1:]
        return rel, data

    def do_POST(self):
        """``/api/datasets/{repo}/paths-info/{rev}`` (HfApi.get_paths_info): LFS files (.bin, .model) carry
        their sha256, the others their git blob id, computed from the true bytes."""
        prefix = f"/api/datasets/{self.repo}/paths-info/"
        if not self.path.startswith(prefix):
            self._error(404, "RepoNotFound")
            return
        from urllib.parse import parse_qs
        form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
        out = []
        for rel in form.get("paths", []):
            p = self.root / rel
            if not p.is_file():
                continue
            data = p.read_bytes()
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            entry = {"type": "file", "path": rel, "size": len(data), "oid": blob}
            if p.suffix in (".bin", ".model"):
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                entry["size"] = 134
            out.append(entry)
        body = json.dumps(out).encode()
        self.log.append(("POST", "paths-info", len(out)))
        self._headers(body, extra=[("Content-Length", str(len(body))), ("Content-Type", "application/json")])
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code, error_code):
        self.send_response(code)
        self.send_header("X-Error-Code", error_code)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _headers(self, data, status=200, extra=()):
        self.send_response(status)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", '"%s"' % hashlib.sha256(data).hexdigest())
        for k, v in extra:
            self.send_header(k, v)

    def do_HEAD(self):
        got = self._resolve()
        if got is None:
            return
        rel, data = got
        self.log.append(("HEAD", rel, self.headers.get("Authorization")))
        self._headers(data, extra=[("Content-Length", str(len(data)))])
        self.end_headers()

    def do_GET(self):
        got = self._resolve()
        if got is None:
            return
        rel, data = got
        rng = self.headers.get("Range")
        self.log.append(("GET", rel, rng))
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            body = data[start:]
            self._headers(data, 206, [("Content-Length", str(len(body))),
                                      ("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")])
            self.end_headers()
            self.wfile.write(body)
            return
        self._headers(data, extra=[("Content-Length", str(len(data)))])
        self.end_headers()
        if rel in self.cut_once:
            self.cut_once.discard(rel)
            self.wfile.write(data[:len(data) * 3 // 4])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)


BIG = "datasets/datasets/fineweb10B_sp1024/fineweb_train_000001.bin"


@pytest.fixture(scope="module")
def hub_repo(mirror, tmp_path_factory):
    """The mirror with train shard 1 enlarged to 16 MB: huggingface_hub writes 10 MiB chunks, so only a
    transfer cut after the first chunk leaves something to resume."""
    root = tmp_path_factory.mktemp("hubrepo")
    shutil.copytree(mirror, root, dirs_exist_ok=True)
    toks = np.asarray(read_shard(mirror / BIG), dtype=np.uint16)
    (root / BIG).unlink()
    write_shard(root / BIG, np.tile(toks, -(-8_000_000 // len(toks)))[:8_000_000])
    return root


@pytest.fixture()
def fake_hub(hub_repo):
    handler = type("Hub", (_FakeHub,), {"root": hub_repo, "repo": REPO, "log": [],
                                         "cut_once": {"datasets/datasets/fineweb10B_sp1024/fineweb_train_000001.bin"}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_hf_hub_download_end_to_end_with_resume(fake_hub, hub_repo, tmp_path):
    endpoint, handler = fake_hub
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "MATCHED_FINEWEB_"))}
    env.update(HF_ENDPOINT=endpoint, HF_HUB_CACHE=str(tmp_path / "cache"), HF_TOKEN="hf_test_token",
               HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    out = tmp_path / "data"
    cmd = [sys.executable, "-m", "golf", "data", "download", "--variant", "sp1024", "--train-shards", "2",
           "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ds = out / "datasets" / "fineweb10B_sp1024"
    for name in ("fineweb_val_000000.bin", "fineweb_train_000000.bin", "fineweb_train_000001.bin"):
        assert _same(ds / name, hub_repo / "datasets/datasets/fineweb10B_sp1024" / name)
    assert _same(out / "tokenizers/fineweb_1024_bpe.model", hub_repo / "datasets/tokenizers/fineweb_1024_bpe.model")
    assert read_shard_header(ds / "fineweb_train_000001.bin") == 8_000_000
    # the cut transfer was resumed by huggingface_hub with a Range request after the part it had saved
    gets = [e for e in handler.log if e[0] == "GET" and e[1] == BIG]
    assert gets == [("GET", BIG, None), ("GET", BIG, f"bytes={10 * 1024 * 1024}-")]
    assert "Trying to resume download" in proc.stderr
    assert ("HEAD", "datasets/manifest.json", "Bearer hf_test_token") in handler.log  # HF_TOKEN is sent
    assert json.loads((out / "manifest.source.json").read_text())["repo_id"] == REPO
    assert "3 fetched" not in proc.stdout and "5 fetched" in proc.stdout
    # second run: nothing is downloaded again
    n = len([e for e in handler.log if e[0] == "GET"])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "5 already present" in proc.stdout, proc.stdout + proc.stderr
    assert len([e for e in handler.log if e[0] == "GET"]) == n


def test_hf_missing_file_and_repo_give_clear_errors(fake_hub, tmp_path):
    endpoint, _ = fake_hub
    cache = str(tmp_path / "cache")
    with pytest.raises(DownloadError, match=r"kevclark/parameter-golf: dataset repo not found"):
        download_dataset("sp1024", 1, tmp_path / "a", repo_id="kevclark/parameter-golf", endpoint=endpoint,
                         cache_dir=cache, progress=False)
    with pytest.raises(DownloadError, match=rf"{REPO}:nowhere/manifest.json: file not found in the repo"):
        download_dataset("sp1024", 1, tmp_path / "b", repo_id=REPO, remote_root="nowhere", endpoint=endpoint,
                         cache_dir=cache, progress=False)


def _hub_env(endpoint, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "MATCHED_FINEWEB_"))}
    env.update(HF_ENDPOINT=endpoint, HF_HUB_CACHE=str(tmp_path / "cache"), HF_HUB_DISABLE_TELEMETRY="1",
               NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    return env


def test_published_sha256_recorded_and_pinned(fake_hub, hub_repo, tmp_path):
    """Every fetched file is checked against the digest the Hub publishes (LFS sha256 / git blob id) and the
    record lands in manifest.json; the verifier's pinning compares the tokenizer and val shards with it."""
    from golf.data.pinning import published_checks, published_status
    from golf.data.published import RECORD_KEY
    endpoint, handler = fake_hub
    out = tmp_path / "data"
    res = download_dataset("sp1024", 1, out, repo_id=REPO, endpoint=endpoint, cache_dir=str(tmp_path / "cache"),
                           progress=False)
    assert not res.warnings and ("POST", "paths-info", 4) in handler.log
    rec = json.loads((out / "manifest.json").read_text())[RECORD_KEY]
    tok = "tokenizers/fineweb_1024_bpe.model"
    val = "datasets/fineweb10B_sp1024/fineweb_val_000000.bin"
    assert set(rec) == {tok, "tokenizers/fineweb_1024_bpe.vocab", val,
                        "datasets/fineweb10B_sp1024/fineweb_train_000000.bin"}
    true_tok = (hub_repo / "datasets" / tok).read_bytes()
    assert rec[tok]["sha256"] == hashlib.sha256(true_tok).hexdigest() and "LFS" in rec[tok]["how"]
    assert "git blob" in rec["tokenizers/fineweb_1024_bpe.vocab"]["how"]
    assert published_checks(out, [out / tok, out / val]) == ([tok, val], [], [])
    assert "the published file" in published_status(out / tok, rec[tok]["sha256"], out)
    # a re-run keeps the verified files without fetching them (the record says they were checked)
    n = len([e for e in handler.log if e[0] == "GET"])
    res = download_dataset("sp1024", 1, out, repo_id=REPO, endpoint=endpoint, cache_dir=str(tmp_path / "cache"),
                           progress=False)
    assert len(res.skipped) == 4 and len([e for e in handler.log if e[0] == "GET"]) == n
    # a validation shard changed after the download: the pinning names it; a re-run fetches it again
    p = out / val
    data = bytearray(p.read_bytes())
    p.unlink()  # a hard link into the HF cache: never write through it
    data[-1] ^= 1
    p.write_bytes(bytes(data))
    assert published_checks(out, [out / tok, p]) == ([tok], [val], [])
    from golf.protocol import EXIT_TOKENIZER
    from golf.verifier.report import FAIL
    from golf.verifier.scoring.artifact import Data, published_check
    c = published_check(Data(1024, out / "datasets/fineweb10B_sp1024", out / tok), out, rec[tok]["sha256"])
    assert c.status == FAIL and c.exit_code == EXIT_TOKENIZER and val in c.message, c
    assert "NOT the published file" in published_status(p, hashlib.sha256(bytes(data)).hexdigest(), out)
    res = download_dataset("sp1024", 1, out, repo_id=REPO, endpoint=endpoint, cache_dir=str(tmp_path / "cache"),
                           progress=False)
    assert res.refetched == [val] and published_checks(out, [p]) == ([val], [], [])


def test_published_sha256_mismatch_is_refused_and_not_kept(fake_hub, tmp_path):
    endpoint, handler = fake_hub
    handler.corrupt = {"datasets/tokenizers/fineweb_1024_bpe.model"}
    out, cache = tmp_path / "data", tmp_path / "cache"
    with pytest.raises(DownloadError, match=r"tokenizers/fineweb_1024_bpe.model: the downloaded bytes are not the "
                                            r"ones hf://datasets/.* publishes .*sha256.*not kept"):
        download_dataset("sp1024", 1, out, repo_id=REPO, endpoint=endpoint, cache_dir=str(cache), progress=False)
    assert not (out / "tokenizers/fineweb_1024_bpe.model").exists()
    assert not [b for b in cache.rglob("*") if b.is_file() and b.parent.name == "blobs"
                and b.stat().st_size > 1000 and b.read_bytes()[:1] != b"{"]  # the bad blob left the HF cache too
    handler.corrupt = set()
    res = download_dataset("sp1024", 1, out, repo_id=REPO, endpoint=endpoint, cache_dir=str(cache), progress=False)
    assert "tokenizers/fineweb_1024_bpe.model" in res.fetched
