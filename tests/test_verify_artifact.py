"""`golf verify ARTIFACT --data DIR` (verifier v2): every hole of issue 12 as a hostile artifact.

The hostile artifacts are small numpy scripts that speak golf-eval/1 with their own framing
(written from docs/cli-verify.md, importing nothing of golf): a unigram model whose log-probs
are the "blob".  Each exploit must end with a non-zero verdict and its documented exit code;
the honest ones must pass.  A real golf artifact (tiny model, `golf build`) must pass with
identical numbers from the trusted path and its own protocol answers.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from golf.cli import main
from golf.data.shards import list_shards, read_shard
from golf.verifier.scoring.artifact import (
    EXIT_INVALID,
    EXIT_MALFORMED,
    EXIT_OK,
    EXIT_SCORE,
    EXIT_TOKENIZER,
    EXIT_UNVERIFIED,
    thread_budget,
    thread_env,
    thread_split,
)

TOKENS = "3000"  # validation targets scored in the quick tests (--val-max-tokens)

CLIENT = r'''
import json, os, struct, sys
import numpy as np
MODE = "__MODE__"
HERE = os.path.dirname(os.path.abspath(__file__))
logp = np.fromfile(os.path.join(HERE, "final_model.int6.ptz"), dtype="<f4").astype(np.float64)
V = len(logp)

if MODE == "print" or "GOLF_EVAL_IN" not in os.environ:
    print("final_int6_sliding_window val_loss:1.00000000 val_bpb:0.59000000 eval_time:1ms", flush=True)
    sys.exit(0)
fin, fout = int(os.environ["GOLF_EVAL_IN"]), int(os.environ["GOLF_EVAL_OUT"])

def rd(n):
    b = b""
    while len(b) < n:
        c = os.read(fin, n - len(b))
        if not c:
            sys.exit(0)
        b += c
    return b

def recv():
    n = struct.unpack("<I", rd(4))[0]
    h = json.loads(rd(n))
    return h, rd(h.get("nbytes", 0))

def send(h, arrays=()):
    p = b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for a in arrays)
    hb = json.dumps(dict(h, nbytes=len(p))).encode()
    os.write(fout, struct.pack("<I", len(hb)) + hb + p)

def norm(c):
    return np.log(c / c.sum())

SF = MODE.startswith("sf_")
recv()
if MODE == "badheader":   # a header length of 0xFFFFFFF0: the verifier must not try to allocate it
    os.write(fout, struct.pack("<I", 0xFFFFFFF0) + b"{")
    sys.exit(0)
if MODE == "bigpayload":  # a 2^31-byte payload announced in hello
    hb = json.dumps({"type": "hello", "protocol": "golf-eval/2", "modes": ["windows"], "vocab_size": V,
                     "eval_seq_len": 64, "nbytes": 1 << 31}).encode()
    os.write(fout, struct.pack("<I", len(hb)) + hb)
    sys.exit(0)
send({"type": "hello", "protocol": "golf-eval/2", "modes": ["score-first"] if SF else ["windows"],
      "vocab_size": V, "eval_seq_len": {"toolong": 8192, "boolhello": True}.get(MODE, 64), "name": MODE})
bigram = np.ones((V, V))
counts = np.ones(V)
last = None
calls = 0

def dist(row, j):
    # the model's next-token log-probs after row[:j+1]; "peek" reads row[j+1] (the target) when it is there
    if MODE == "bigram":   # a cache of every window seen so far, future tokens included
        return np.log(0.5 * np.exp(logp) + 0.5 * bigram[row[j]] / bigram[row[j]].sum())
    if MODE == "peek" and j + 1 < len(row):
        return np.log(0.5 * np.exp(logp) + 0.5 * (np.arange(V) == row[j + 1]))
    return logp

while True:
    h, p = recv()
    t = h["type"]
    if t == "bye":
        break
    if t == "start":
        continue
    if t == "commit":
        if MODE == "sf_legal":
            counts += np.bincount(last, minlength=V)
        continue
    a = np.frombuffer(p, "<i4").astype(np.int64)
    if t == "chunk":   # score-first: token j predicted from history + chunk[:j]; sf_peek reads chunk[j] itself
        last = a
        lp = norm(counts)
        nll = np.array([-(np.log(0.5 * np.exp(lp) + 0.5 * (np.arange(V) == x)) if MODE == "sf_peek" else lp)[x]
                        for x in a])
        send({"type": "scores", "id": h["id"]}, [nll])
        continue
    n, T = h["n"], h["T"]
    x = a[:n * T].reshape(n, T)
    if t == "logp":
        out = np.stack([norm(counts) if SF else dist(x[i], T - 1) for i in range(n)])
        if MODE == "nonnorm":
            out = out + 0.7
        send({"type": "logp", "id": h["id"]}, [out])
        continue
    first = a[n * T:]
    nll = np.array([[-dist(x[i], j)[x[i, j + 1]] for j in range(T - 1)] for i in range(n)]).reshape(n, T - 1)
    if MODE == "bigram":
        for row in x:
            np.add.at(bigram, (row[:-1], row[1:]), 1.0)
    if MODE == "halve" and calls > 0:
        nll = nll / 2
    if MODE == "nonnorm":
        nll = nll - 0.7
    keep = np.arange(T - 1)[None, :] >= first[:, None]
    out = nll[keep]
    send({"type": "scores", "id": h["id"]}, [out[:-1] if MODE == "miscount" else out])
    calls += 1
'''


@pytest.fixture(scope="module")
def unigram(tiny_data):
    toks = np.concatenate([read_shard(f) for f in list_shards(tiny_data["dataset_dir"], "train")])
    c = np.bincount(toks, minlength=1024).astype(np.float64) + 1
    return np.log(c / c.sum()).astype("<f4")


def client(root: Path, unigram, mode: str) -> Path:
    art = root / mode
    art.mkdir(parents=True)
    (art / "train_gpt.py").write_text(CLIENT.replace("__MODE__", mode), encoding="utf-8")
    unigram.tofile(art / "final_model.int6.ptz")
    return art


def run_verify(art: Path, data_dir: Path, tmp_path: Path, *extra: str, tokens: str | None = TOKENS):
    out = tmp_path / f"{art.name}.json"
    args = ["verify", str(art), "--data", str(data_dir), "--json", str(out), "--weak-isolation",
            "--eval-time-limit", "240", *extra]
    if tokens:
        args += ["--val-max-tokens", tokens]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    doc = json.loads(out.read_text()) if out.is_file() else {}
    return r, doc


def failed(doc) -> dict:
    return {c["name"]: c for c in doc.get("checks", []) if c["status"] == "fail"}


def test_honest_protocol_client_passes_with_the_verifier_coverage(tmp_path, tiny_data, unigram):
    art = client(tmp_path, unigram, "honest")
    r, doc = run_verify(art, tiny_data["data_dir"], tmp_path)
    assert r.exit_code == EXIT_OK, r.output
    assert doc["kind"] == "foreign" and doc["score"]["source"] == "protocol answers"
    assert doc["stream"]["targets"] == int(TOKENS) and doc["score"]["tokens"] == int(TOKENS)
    # the unigram score equals the mean of its NLLs over the verifier's own stream and byte count
    stream = np.concatenate([read_shard(f) for f in list_shards(tiny_data["dataset_dir"], "val")])[:int(TOKENS) + 1]
    nll = -unigram[stream[1:]].astype(np.float64)
    assert doc["score"]["val_bpb"] == pytest.approx(nll.sum() / (np.log(2) * doc["stream"]["bytes"]), rel=1e-6)
    aud = doc["audits"]
    assert aud["n"] > 0 and isinstance(aud["seed"], int) and 0 < aud["extra_fraction"] <= 0.10
    assert aud["needed"] == 1375 and aud["n"] == min(1375, aud["affordable"])  # the budget is a hard limit
    assert doc["guarantee"]["kind"] == "audited" and doc["guarantee"]["miss_probability"] == pytest.approx(
        0.99 ** aud["n"])
    # what isolation.code says is "listed in the JSON report" is there: modules with distribution and version,
    # files read from outside the work dir with their sizes, the pinned environment's summary
    env = doc["runs"]["run"]["environment"]
    codes = {c["name"]: c for c in doc["checks"]}
    assert "listed in the JSON report under runs.<run>.environment" in codes["run.isolation.code"]["message"]
    mods = {m["module"]: m for m in env["modules"]}
    assert mods["numpy"]["distribution"] == "numpy" and mods["numpy"]["version"]
    assert all(f["size"] is None or f["size"] >= 0 for f in env["files_read"]) and env["files_read"]
    assert "numpy" in env["exposed"]["packages"] and "golf" not in env["exposed"]["packages"]


@pytest.mark.parametrize("mode, check", [
    ("halve", "audit.agreement"),     # NLLs halved after the first request: not the causal prediction
    ("nonnorm", "audit.normalized"),  # non-normalized scores
    ("bigram", "audit.agreement"),    # stateful cache built from windows seen (future tokens): a fresh process differs
    # the query boost of /1, in /2: half the mass on its target (the next input).  It also stands for "sweep
    # detection by shape": it knows the audits (they are logp requests, in another process) and answers them
    # honestly; it cannot know which of its main-run answers will be audited
    ("peek", "audit.agreement"),
    ("miscount", "protocol.answers"),  # answers fewer positions than asked
    ("toolong", "protocol.hello"),    # announces a context beyond --max-eval-seq-len
    ("boolhello", "protocol.hello"),  # eval_seq_len: true (a bool is not an int: 1-token windows)
    ("badheader", "protocol.hello"),  # a 0xFFFFFFF0-byte header length: exit 17, not unverified
    ("bigpayload", "protocol.hello"),  # a 2^31-byte payload: refused before any read
])
def test_hostile_protocol_clients_fail_with_invalid(tmp_path, tiny_data, unigram, mode, check):
    art = client(tmp_path, unigram, mode)
    # --allow-unverified: a broken frame is still a protocol failure, never a classic run
    r, doc = run_verify(art, tiny_data["data_dir"], tmp_path, "--claimed-bpb", "1.0", "--allow-unverified",
                        "--audit-budget", "1")
    assert r.exit_code == EXIT_INVALID, r.output
    assert check in failed(doc), sorted(failed(doc))
    assert "classic" not in doc.get("runs", {})


def test_claims_are_compared_with_the_verified_score_on_the_whole_stream(tmp_path, tiny_data, unigram):
    art = client(tmp_path, unigram, "honest")
    r, doc = run_verify(art, tiny_data["data_dir"], tmp_path, "--claimed-bpb", "0.5", tokens=None)
    assert r.exit_code == EXIT_SCORE and "score.claimed" in failed(doc), r.output
    assert not doc["stream"]["partial"] and doc["score"]["tokens"] == doc["stream"]["targets"]
    r, doc = run_verify(art, tiny_data["data_dir"], tmp_path, "--claimed-bpb", str(doc["score"]["val_bpb"]),
                        tokens=None)
    assert r.exit_code == EXIT_OK, r.output


def test_print_only_script_is_unverified_unless_allowed(tmp_path, tiny_data, unigram):
    art = client(tmp_path, unigram, "print")
    r, doc = run_verify(art, tiny_data["data_dir"], tmp_path, "--claimed-bpb", "0.59")
    assert r.exit_code == EXIT_UNVERIFIED, r.output
    assert "protocol.hello" in failed(doc) and "score" not in doc
    r, doc = run_verify(art, tiny_data["data_dir"], tmp_path, "--allow-unverified")
    assert r.exit_code == EXIT_OK, r.output
    assert doc["score"]["val_bpb"] == 0.59 and "UNVERIFIED" in doc["score"]["source"]


def test_score_first_legal_cache_beats_no_adaptation_and_read_ahead_fails(tmp_path, tiny_data, unigram):
    legal, _ = run_verify(client(tmp_path, unigram, "sf_legal"), tiny_data["data_dir"], tmp_path)
    legal_doc = json.loads((tmp_path / "sf_legal.json").read_text())
    static, static_doc = run_verify(client(tmp_path, unigram, "sf_static"), tiny_data["data_dir"], tmp_path)
    assert legal.exit_code == EXIT_OK and static.exit_code == EXIT_OK, legal.output + static.output
    assert legal_doc["mode"] == "protocol score-first"
    assert legal_doc["score"]["val_bpb"] < static_doc["score"]["val_bpb"] - 0.3
    assert legal_doc["guarantee"]["kind"] == "audited" and legal_doc["audits"]["replay_tokens"] > 0


def test_score_first_client_peeking_at_the_scored_token_fails_the_audits(tmp_path, tiny_data, unigram):
    """The score-first query boost: half the mass on the chunk's token being scored (it is in the request); the
    audit process sends the chunk only up to, not including, that token.  (The /1 attack "the fresh replay
    hands over the real chunk" has no /2 form: an audit row ends before its target.)"""
    r, doc = run_verify(client(tmp_path, unigram, "sf_peek"), tiny_data["data_dir"], tmp_path, "--audit-budget", "1")
    assert r.exit_code == EXIT_INVALID, r.output
    assert sorted(failed(doc)) == ["audit.agreement"]


def test_swapped_tokenizer_is_refused(tmp_path, tiny_data, unigram, sample_docs):
    from golf.data.tokenizer import train_tokenizer
    data = tmp_path / "data"
    shutil.copytree(tiny_data["data_dir"], data)
    tok = data / "tokenizers" / "fineweb_1024_bpe.model"
    train_tokenizer(sample_docs[:60], 512, tmp_path / "t512.model")
    shutil.copyfile(tmp_path / "t512.model", tok)
    r, doc = run_verify(client(tmp_path, unigram, "honest"), data, tmp_path)
    assert r.exit_code == EXIT_TOKENIZER, r.output
    assert "pin.tokenizer_vocab" in failed(doc)


def test_malformed_and_input_errors(tmp_path, tiny_data, unigram):
    art = client(tmp_path, unigram, "honest")
    (art / "final_model.int6.ptz").unlink()
    r, _ = run_verify(art, tiny_data["data_dir"], tmp_path)
    assert r.exit_code == EXIT_MALFORMED
    r = CliRunner().invoke(main, ["verify", str(tmp_path / "nope"), "--data", str(tiny_data["data_dir"])])
    assert r.exit_code == 1 and "not a directory" in r.output


# ----------------------------------------------------------------------------- a real golf artifact


@pytest.fixture(scope="module")
def real_artifact(tiny_data, tmp_path_factory):
    """A real artifact: tiny model trained for a few CPU steps by golf's trainer, packed by `golf build`."""
    from golf.builder.build import build
    from golf.config import apply_overrides
    from golf.presets import preset_config
    from golf.trainer.loop import RunOptions, train

    root = tmp_path_factory.mktemp("realart")
    cfg = preset_config("tiny")
    apply_overrides(cfg, {
        "train.iterations": 8, "train.warmdown_iters": 3, "train.val_loss_every": 0, "train.ema_start_step": 3,
        "train.val_max_tokens": 2048, "train.train_batch_tokens": 1024, "train.data_dir": str(tiny_data["data_dir"]),
        "train.run_dir": str(root / "run"), "model.num_layers": 4, "model.recur_start": 1, "model.recur_end": 2,
        "model.parallel_start_layer": 3})
    train(cfg, RunOptions(device="cpu", progress=False, echo=False))
    report = build(root / "run", tiny_data["data_dir"], root / "art", val_max_tokens=2048, progress=False,
                   device="cpu", log=lambda _m: None)
    return {"dir": root / "art", "run": root / "run", "report": report}


def test_real_golf_artifact_trusted_and_protocol_agree(tmp_path, tiny_data, real_artifact):
    art = tmp_path / "art"
    shutil.copytree(real_artifact["dir"], art)
    r, doc = run_verify(art, tiny_data["data_dir"], tmp_path, tokens="1500")
    assert r.exit_code == EXIT_OK, r.output
    assert doc["kind"] == "golf" and doc["score"]["source"] == "trusted path"
    assert doc["guarantee"]["kind"] == "trusted"
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["build.reproducible"]["measured"] == "identical"
    assert checks["score.trusted_agreement"]["measured"] <= 1e-6
    mine, trusted = doc["artifact_scores"], doc["trusted_scores"]
    assert mine["sliding"]["tokens"] == trusted["sliding"]["tokens"] == 1500
    assert abs(mine["plain"]["val_bpb"] - trusted["plain"]["val_bpb"]) <= 1e-6
    # the trusted re-evaluation and the artifact's run share the cores instead of oversubscribing them
    assert doc["threads"]["trusted"] >= 1 and doc["threads"]["artifact"] >= doc["threads"]["trusted"]
    assert sum(doc["threads"].values()) == max(2, thread_budget())
    # tampering with the code makes it foreign (scored by its answers, never by the trusted path)
    code = art / "train_gpt.py"
    code.write_text(code.read_text() + "\n", encoding="utf-8")
    r, doc = run_verify(art, tiny_data["data_dir"], tmp_path, tokens="1500")
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["build.reproducible"]["measured"] == "differs" and doc["kind"] == "foreign"
    assert "train_gpt.py was edited after the build" in checks["build.reproducible"]["message"]
    assert r.exit_code == EXIT_OK and doc["score"]["source"] == "protocol answers"
    assert doc["threads"] == {"trusted": 0, "artifact": thread_budget()}  # no trusted run beside it


def test_provenance_says_why_the_code_does_not_regenerate(tmp_path, real_artifact):
    """The blob records golf's version and the shipped source's sha256; a mismatch is explained from them
    (edited file / another golf release / locally changed golf), and a claim never makes an artifact golf."""
    import golf
    from golf.builder import container
    from golf.protocol import BLOB_NAME, CODE_NAME
    from golf.verifier.scoring.artifact import classify
    src = real_artifact["dir"]
    _, meta, _ = container.unpack((src / BLOB_NAME).read_bytes())
    flags = meta["build"]
    assert flags["golf"] == golf.__version__ and len(flags["source_sha256"]) == 64
    info = {}
    assert classify(src / CODE_NAME, meta, info)[0] and info["provenance"]["cause"] == "identical"
    assert info["provenance"]["installed_source_sha256"] == flags["source_sha256"]
    edited = tmp_path / CODE_NAME
    edited.write_bytes((src / CODE_NAME).read_bytes() + b"\n")
    golf_built, c = classify(edited, meta, info)
    assert not golf_built and c.measured == "differs" and info["provenance"]["cause"] == "edited"
    assert "train_gpt.py was edited after the build" in c.message
    # a blob claiming another release: both versions named; the claim changes the message, not the verdict
    other = dict(meta, build=dict(flags, golf="0.0.9\x1b[2J"))
    golf_built, c = classify(edited, other, info)
    assert not golf_built and info["provenance"]["cause"] == "version"
    assert f"golf 0.0.9?[2J built it, this is golf {golf.__version__}" in c.message
    assert classify(src / CODE_NAME, other)[0]  # identical bytes stay golf whatever the blob claims
    # same version, another source hash: golf's shipped modules were changed locally
    golf_built, c = classify(edited, dict(meta, build=dict(flags, source_sha256="0" * 64)), info)
    assert not golf_built and info["provenance"]["cause"] == "source" and "changed locally" in c.message
    # a blob from before provenance was recorded
    golf_built, c = classify(edited, dict(meta, build={k: flags[k] for k in ("code_compressor", "train_code")}))
    assert not golf_built and "records no golf version" in c.message


def test_relative_artifact_and_data_paths_verify_from_another_working_dir(tmp_path, tiny_data, real_artifact,
                                                                          monkeypatch):
    """`golf verify artifact ART --data DIR` with both paths relative (the demo's case: the trusted run and the
    sandbox work in other directories, so unresolved paths failed there as missing files, exit 10)."""
    shutil.copytree(real_artifact["dir"], tmp_path / "art")
    shutil.copytree(tiny_data["data_dir"], tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    r, doc = run_verify(Path("art"), Path("data"), Path("."), tokens="1500")
    assert r.exit_code == EXIT_OK, r.output
    assert doc["kind"] == "golf" and doc["score"]["source"] == "trusted path"


def test_golf_build_and_train_refuse_a_tokenizer_of_another_vocabulary(tmp_path, tiny_data, real_artifact,
                                                                        sample_docs):
    from golf.builder.build import BuildError, build
    from golf.data.tokenizer import train_tokenizer
    data = tmp_path / "data"
    shutil.copytree(tiny_data["data_dir"], data)
    train_tokenizer(sample_docs[:60], 512, tmp_path / "t512.model")
    shutil.copyfile(tmp_path / "t512.model", data / "tokenizers" / "fineweb_1024_bpe.model")
    with pytest.raises(BuildError, match="has 512 pieces but the checkpoint"):
        build(real_artifact["run"], data, tmp_path / "out", progress=False, device="cpu", log=lambda _m: None)
    r = CliRunner().invoke(main, ["train", "--preset", "tiny", "--data", str(data), "--run-dir", str(tmp_path / "r"),
                                  "--device", "cpu", "--iterations", "1"])
    assert r.exit_code != 0 and "has 512 pieces but the model config has vocab_size 1024" in r.output, r.output


def test_exit_codes_are_one_table_in_help_and_docs():
    import re

    from golf.protocol import EXIT_NAMES
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli-verify.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", doc, flags=re.M))
    help_text = CliRunner().invoke(main, ["verify", "artifact", "--help"], terminal_width=200).output
    for code, text in EXIT_NAMES.items():
        assert rows.get(str(code)) == text, code
        assert " ".join(text.split()[:4]) in " ".join(help_text.split()), code


# the model patched through torch (the client knows nothing of the protocol): prepended to golf's own train_gpt.py
TORCH_PATCHES = {
    "noncausal": """import torch.nn.functional as F
_sdpa = F.scaled_dot_product_attention
F.scaled_dot_product_attention = lambda q, k, v, is_causal=False, **kw: _sdpa(q, k, v, is_causal=False, **kw)
""",
    "peek": """import torch, torch.nn.functional as F
_emb, _lsm, _seen = F.embedding, torch.log_softmax, {}
def _embedding(idx, *a, **k):
    if idx.dim() == 2:
        _seen["x"] = idx
    return _emb(idx, *a, **k)
def _log_softmax(z, dim=-1, **k):
    out, x = _lsm(z, dim=dim, **k), _seen.get("x")
    if x is None or out.dim() != 3 or out.shape[:2] != x.shape or x.shape[1] < 2:
        return out
    nxt = torch.zeros_like(out).scatter_(2, x[:, 1:, None], 1.0)  # half the mass on the next input token
    head = torch.log(0.5 * out[:, :-1].exp() + 0.5 * nxt[:, :-1])
    return torch.cat([head, out[:, -1:]], 1)
F.embedding, torch.log_softmax = _embedding, _log_softmax
""",
}


@pytest.mark.parametrize("patch", sorted(TORCH_PATCHES))
def test_golf_artifact_with_a_torch_patched_model_fails_the_audits(tmp_path, tiny_data, real_artifact, patch):
    """A golf-built artifact whose model cheats through torch (non-causal attention; peeking at the next input):
    its code no longer regenerates, so it is scored as a black box, and the audits catch it."""
    art = tmp_path / "art"
    shutil.copytree(real_artifact["dir"], art)
    code = art / "train_gpt.py"
    code.write_text(TORCH_PATCHES[patch] + code.read_text(), encoding="utf-8")
    r, doc = run_verify(art, tiny_data["data_dir"], tmp_path, "--audit-budget", "1", tokens="1500")
    assert doc["kind"] == "foreign", r.output
    assert r.exit_code == EXIT_INVALID, r.output
    assert sorted(failed(doc)) == ["audit.agreement"]


def test_thread_split_halves_the_budget_between_the_trusted_run_and_the_artifact(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert thread_budget() == 5 and thread_split(True) == (2, 3) and thread_split(False) == (0, 5)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert thread_split(True) == (1, 1)  # never zero threads: one each, as measured fastest on 2 cores
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    assert thread_budget() == len(os.sched_getaffinity(0))
    assert thread_env(3) == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "3"} and thread_env(0) == {}
