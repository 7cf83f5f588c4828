"""`golf verify ARTIFACT --data DIR`: clean-process re-scoring, isolation, size/time limits, exit codes.

Hand-written protocol-following artifacts (a unigram model in numpy, blob = brotli float32
log-probs) exercise every tamper path cheaply; a real artifact built by `golf build` from a
tiny CPU-trained model is verified and then tampered with.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import brotli
import numpy as np
import pytest
from click.testing import CliRunner

from golf.cli import main
from golf.data.shards import list_shards, read_shard
from golf.metric import build_byte_luts, token_bytes
from golf.verifier.artifact import (EXIT_ACCESS, EXIT_INVALID, EXIT_MALFORMED, EXIT_NETWORK, EXIT_OK,
                                    EXIT_RUNTIME, EXIT_SCORE, EXIT_SIZE, EXIT_TIMEOUT)

SEQ = 64

FAKE = r'''
import json, math, os, sys, time
import numpy as np
MODE = "__MODE__"
TRAIN_SHARD = "__TRAIN__"
HERE = os.path.dirname(os.path.abspath(__file__))
V = 1024

def luts(path):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=path)
    base = np.zeros(V, np.int64); space = np.zeros(V, bool); bnd = np.ones(V, bool)
    for i in range(sp.vocab_size()):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        bnd[i] = False
        if sp.is_byte(i):
            base[i] = 1; continue
        p = sp.id_to_piece(i)
        if p.startswith("\u2581"):
            space[i] = True; p = p[1:]
        base[i] = len(p.encode("utf-8"))
    return base, space, bnd

def model(logp, seq):
    """(logsumexp per position, NLL of the next token) under this artifact's model."""
    seq = np.asarray(seq)
    n = len(seq)
    lse = np.full(n, float(np.log(np.exp(logp.astype(np.float64)).sum())))
    nll = -logp[seq[1:]].astype(np.float64)
    if MODE == "nonnorm":
        lse = lse + 0.7
        nll = nll - 0.7
    if MODE == "peek":  # sharpens its (normalized) distribution by an amount read from the token AFTER the target
        for i in range(n - 1):
            scale = 1.0 + 0.1 * (int(seq[i + 2]) % 5) if i + 2 < n else 1.0
            lp = logp.astype(np.float64) * scale
            lp -= np.log(np.exp(lp).sum())
            nll[i] = -lp[seq[i + 1]]
        lse[:] = 0.0
    if MODE == "target_peek":  # reports a normalized distribution but doubles the probability of the true target
        nll = -np.log(np.minimum(1.0, 2.0 * np.exp(-nll)))
    return lse, nll

def main():
    data = os.environ.get("DATA_DIR", "./data/")
    ds = os.environ.get("DATA_PATH") or os.path.join(data, "datasets", "fineweb10B_sp%d" % V)
    tok = os.environ.get("TOKENIZER_PATH") or os.path.join(data, "tokenizers", "fineweb_%d_bpe.model" % V)
    if MODE == "socket":
        import socket
        try:
            socket.create_connection(("example.com", 80), timeout=3).close()
        except OSError as e:
            print("no network:", e, file=sys.stderr)
    if MODE == "train_read":
        try:
            open(TRAIN_SHARD, "rb").read(16)
        except OSError as e:
            print("no train data:", e, file=sys.stderr)
    if MODE == "crash":
        raise RuntimeError("deliberate failure inside the artifact")
    if MODE == "sleep":
        time.sleep(60)
    import brotli
    logp = np.frombuffer(brotli.decompress(open(os.path.join(HERE, "final_model.int6.ptz"), "rb").read()), "<f4")
    if MODE == "extra":
        logp = logp + np.frombuffer(open(os.path.join(HERE, "extra_table.bin"), "rb").read(), "<f4")[:V] * 0
    L = int(os.environ.get("EVAL_SEQ_LEN") or 2048)
    mx = int(os.environ.get("VAL_MAX_TOKENS") or 0)
    toks = []
    for f in sorted(x for x in os.listdir(ds) if x.startswith("fineweb_val_") and "_bytes_" not in x):
        raw = open(os.path.join(ds, f), "rb").read()
        n = int(np.frombuffer(raw[:1024], "<i4")[2])
        toks.append(np.frombuffer(raw[1024:1024 + 2 * n], "<u2").astype(np.int64))
    t = np.concatenate(toks)
    if mx:
        t = t[:mx + 1]
    t = t[:(len(t) - 1) // L * L + 1]
    lse, nll = model(logp, t)
    nll = nll.astype(np.float32)
    base, space, bnd = luts(tok)
    nbytes = int((base[t[1:]] + (space[t[1:]] & ~bnd[t[:-1]])).sum())
    s = float(nll.astype(np.float64).sum())
    loss, bpb = s / len(nll), s / (math.log(2) * nbytes)
    if MODE == "fake_bpb":
        bpb -= 0.25
    pin, pout = os.environ.get("GOLF_PROBE_IN"), os.environ.get("GOLF_PROBE_OUT")
    if pin and pout:
        seqs = json.load(open(pin))["sequences"]
        res = [model(logp, q) for q in seqs]
        json.dump({"logsumexp": [r[0].tolist() for r in res], "nll": [r[1].tolist() for r in res]}, open(pout, "w"))
    out = os.environ.get("GOLF_NLL_OUT")
    if out:
        os.makedirs(out, exist_ok=True)
        nll.tofile(os.path.join(out, "nll_roundtrip.f32"))
        (nll[:-3] if MODE == "short_nll" else nll).tofile(os.path.join(out, "nll_sliding.f32"))
    print("final_int6_roundtrip val_loss:%.8f val_bpb:%.8f eval_time:5ms" % (loss, bpb))
    print("final_int6_sliding_window val_loss:%.8f val_bpb:%.8f eval_time:5ms" % (loss, bpb))
    code = os.path.getsize(__file__); blob = os.path.getsize(os.path.join(HERE, "final_model.int6.ptz"))
    print("Code size: %d bytes" % code)
    print("Serialized model int6+brotli: %d bytes" % blob)
    print("Total submission size int6+brotli: %d bytes" % (code + blob))

main()
'''


@pytest.fixture(scope="module")
def unigram(tiny_data):
    """Unigram log-probs from the TRAIN shards (add-one smoothing) and the true val score."""
    V = tiny_data["vocab_size"]
    train = np.concatenate([np.asarray(read_shard(f), dtype=np.int64) for f in list_shards(tiny_data["dataset_dir"],
                                                                                            "train")])
    counts = np.bincount(train, minlength=V).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum()).astype(np.float32)
    val = np.concatenate([np.asarray(read_shard(f), dtype=np.int64) for f in list_shards(tiny_data["dataset_dir"],
                                                                                          "val")])
    val = val[:(len(val) - 1) // SEQ * SEQ + 1]
    luts = build_byte_luts(str(tiny_data["tokenizer"]), V)
    nll = -logp[val[1:]].astype(np.float64)
    nbytes = int(token_bytes(luts, val[:-1], val[1:]).sum())
    return {"logp": logp, "bpb": nll.sum() / (math.log(2) * nbytes), "targets": len(val) - 1,
            "train_shard": str(list_shards(tiny_data["dataset_dir"], "train")[0])}


def fake_artifact(root: Path, unigram, mode: str = "honest", foreign: bool = False) -> Path:
    art = root / f"art_{mode}{'_foreign' if foreign else ''}"
    art.mkdir()
    code = FAKE.replace("__MODE__", mode).replace("__TRAIN__", unigram["train_shard"])
    if foreign:
        code = code.replace("GOLF_NLL_OUT", "NO_NLL_OUT").replace("GOLF_PROBE_", "NO_PROBE_")
    (art / "train_gpt.py").write_text(code)
    (art / "final_model.int6.ptz").write_bytes(brotli.compress(unigram["logp"].tobytes()))
    if mode == "extra":
        (art / "extra_table.bin").write_bytes(np.zeros(50_000, "<f4").tobytes())
    (art / "notes.txt").write_text("not opened by the run, not counted")
    return art


def run_verify(art: Path, tiny_data, *extra: str, json_path: Path | None = None, seq: int | None = SEQ):
    args = ["verify", str(art), "--data", str(tiny_data["data_dir"])] + (["--eval-seq-len", str(seq)] if seq else [])
    if json_path is not None:
        args += ["--json", str(json_path)]
    r = CliRunner().invoke(main, args + list(extra))
    assert "Traceback" not in r.output, r.output
    doc = json.loads(json_path.read_text()) if json_path is not None and json_path.exists() else None
    return r, doc


def checks(doc) -> dict:
    return {c["name"]: c for c in doc["checks"]}


def test_honest_fake_artifact_passes_and_is_rescored(tmp_path, tiny_data, unigram):
    art = fake_artifact(tmp_path, unigram)
    out = tmp_path / "report.json"
    r, doc = run_verify(art, tiny_data, "--claimed-bpb", f"{unigram['bpb']:.8f}", json_path=out)
    assert r.exit_code == EXIT_OK, r.output
    c = checks(doc)
    assert doc["ok"] and doc["exit_code"] == 0
    assert doc["mode"].startswith("re-scored")
    assert c["score.nll_sliding"]["measured"] == unigram["targets"]
    assert doc["rescored"]["sliding"]["val_bpb"] == pytest.approx(unigram["bpb"], abs=1e-7)
    assert c["score.claimed"]["status"] == "pass"
    assert c["score.normalized"]["status"] == "pass" and c["score.causal"]["status"] == "pass"
    assert c["score.target_sweep"]["status"] == "pass" and abs(c["score.target_sweep"]["measured"]) < 1e-4
    assert c["score.probe_consistency"]["status"] == "pass"
    assert c["isolation.network"]["status"] == "pass" and c["isolation.files"]["status"] == "pass"
    # size: code + blob, the unopened notes.txt is listed as not counted
    size = (art / "train_gpt.py").stat().st_size + (art / "final_model.int6.ptz").stat().st_size
    assert c["size.total"]["measured"] == size and doc["size_not_counted"] == ["notes.txt"]
    assert any(p.endswith("final_model.int6.ptz") for p in doc["files_opened"])
    assert "numpy" in doc["modules_imported"]
    assert "exit code 0" in r.output and "PASS" in r.output


def test_claimed_score_mismatch_and_fake_printed_bpb(tmp_path, tiny_data, unigram):
    art = fake_artifact(tmp_path, unigram)
    sub = tmp_path / "submission.json"
    sub.write_text(json.dumps({"val_bpb": round(unigram["bpb"] - 0.01, 8)}))
    r, doc = run_verify(art, tiny_data, "--submission", str(sub), json_path=tmp_path / "a.json")
    assert r.exit_code == EXIT_SCORE, r.output
    assert checks(doc)["score.claimed"]["status"] == "fail"

    art = fake_artifact(tmp_path, unigram, "fake_bpb")
    r, doc = run_verify(art, tiny_data, json_path=tmp_path / "b.json")
    assert r.exit_code == EXIT_SCORE, r.output
    c = checks(doc)
    assert c["score.printed_sliding"]["status"] == "fail" and c["score.printed_roundtrip"]["status"] == "fail"
    assert doc["rescored"]["sliding"]["val_bpb"] == pytest.approx(unigram["bpb"], abs=1e-7)


def test_network_and_training_data_access_are_blocked_and_reported(tmp_path, tiny_data, unigram):
    r, doc = run_verify(fake_artifact(tmp_path, unigram, "socket"), tiny_data, json_path=tmp_path / "n.json")
    assert r.exit_code == EXIT_NETWORK, r.output
    c = checks(doc)["isolation.network"]
    assert c["status"] == "fail" and "socket.getaddrinfo" in c["message"] and doc["network_attempts"]

    r, doc = run_verify(fake_artifact(tmp_path, unigram, "train_read"), tiny_data, json_path=tmp_path / "t.json")
    assert r.exit_code == EXIT_ACCESS, r.output
    assert checks(doc)["isolation.files"]["status"] == "fail"
    assert doc["denied_opens"] == [unigram["train_shard"]]


def test_invalid_models_are_caught_by_probes(tmp_path, tiny_data, unigram):
    r, doc = run_verify(fake_artifact(tmp_path, unigram, "nonnorm"), tiny_data, json_path=tmp_path / "nn.json")
    assert r.exit_code == EXIT_INVALID, r.output
    c = checks(doc)
    assert c["score.normalized"]["status"] == "fail" and c["score.normalized"]["measured"] == pytest.approx(0.7,
                                                                                                         abs=1e-3)
    assert c["score.causal"]["status"] == "pass"

    r, doc = run_verify(fake_artifact(tmp_path, unigram, "peek"), tiny_data, json_path=tmp_path / "pk.json")
    assert r.exit_code == EXIT_INVALID, r.output
    c = checks(doc)
    assert c["score.causal"]["status"] == "fail" and c["score.normalized"]["status"] == "pass"

    r, doc = run_verify(fake_artifact(tmp_path, unigram, "target_peek"), tiny_data, json_path=tmp_path / "tp.json")
    assert r.exit_code == EXIT_INVALID, r.output
    c = checks(doc)
    assert c["score.target_sweep"]["status"] == "fail" and c["score.normalized"]["status"] == "pass"
    assert c["score.target_sweep"]["measured"] == pytest.approx(math.log(2), abs=0.05)
    assert c["score.causal"]["status"] == "pass"

    r, doc = run_verify(fake_artifact(tmp_path, unigram, "short_nll"), tiny_data, json_path=tmp_path / "sh.json")
    assert r.exit_code == EXIT_INVALID, r.output
    c = checks(doc)["score.nll_sliding"]
    assert c["status"] == "fail" and c["measured"] == unigram["targets"] - 3 and c["limit"] == unigram["targets"]


def test_runtime_error_timeout_and_malformed(tmp_path, tiny_data, unigram):
    r, doc = run_verify(fake_artifact(tmp_path, unigram, "crash"), tiny_data, json_path=tmp_path / "c.json")
    assert r.exit_code == EXIT_RUNTIME, r.output
    assert "deliberate failure" in checks(doc)["run.exit"]["message"]

    r, doc = run_verify(fake_artifact(tmp_path, unigram, "sleep"), tiny_data, "--eval-time-limit", "3",
                        json_path=tmp_path / "s.json")
    assert r.exit_code == EXIT_TIMEOUT, r.output
    assert checks(doc)["run.exit"]["status"] == "fail" and doc["wall_s"] < 30

    art = fake_artifact(tmp_path, unigram, "nocode")
    (art / "train_gpt.py").unlink()
    r, doc = run_verify(art, tiny_data, json_path=tmp_path / "m.json")
    assert r.exit_code == EXIT_MALFORMED and "train_gpt.py" in checks(doc)["artifact.files"]["message"]

    art = fake_artifact(tmp_path, unigram, "emptyblob")
    (art / "final_model.int6.ptz").write_bytes(b"")
    r, doc = run_verify(art, tiny_data, json_path=tmp_path / "e.json")
    assert r.exit_code == EXIT_MALFORMED


def test_size_counts_files_the_run_opened(tmp_path, tiny_data, unigram):
    art = fake_artifact(tmp_path, unigram, "extra")
    r, doc = run_verify(art, tiny_data, json_path=tmp_path / "x.json")
    assert r.exit_code == EXIT_OK, r.output
    assert doc["size_counted"]["extra_table.bin"] == 200_000
    total = sum(p.stat().st_size for p in art.iterdir() if p.name != "notes.txt")
    assert checks(doc)["size.total"]["measured"] == total
    r, doc = run_verify(art, tiny_data, "--max-bytes", str(total - 1), json_path=tmp_path / "y.json")
    assert r.exit_code == EXIT_SIZE, r.output
    assert checks(doc)["size.total"]["status"] == "fail"


def test_foreign_script_falls_back_to_printed_lines(tmp_path, tiny_data, unigram):
    art = fake_artifact(tmp_path, unigram, "fake_bpb", foreign=True)
    printed = unigram["bpb"] - 0.25
    r, doc = run_verify(art, tiny_data, "--claimed-bpb", f"{printed:.8f}", json_path=tmp_path / "f.json")
    assert r.exit_code == EXIT_OK, r.output  # a foreign script can only be held to its printed lines
    assert doc["mode"].startswith("printed lines")
    c = checks(doc)
    assert c["score.protocol"]["status"] == "warn" and "NOT re-scored" in c["score.protocol"]["message"]
    assert c["score.printed"]["measured"] == pytest.approx(printed, abs=1e-8)
    r, doc = run_verify(art, tiny_data, "--claimed-bpb", f"{unigram['bpb']:.8f}", json_path=tmp_path / "g.json")
    assert r.exit_code == EXIT_SCORE


def test_partial_set_is_recorded_and_claim_not_compared(tmp_path, tiny_data, unigram):
    art = fake_artifact(tmp_path, unigram)
    r, doc = run_verify(art, tiny_data, "--val-max-tokens", "4096", "--claimed-bpb", "9.9",
                        json_path=tmp_path / "p.json")
    assert r.exit_code == EXIT_OK, r.output
    assert doc["partial"] and doc["val_max_tokens"] == 4096 and doc["targets"] == 4096
    assert checks(doc)["score.claimed"]["status"] == "skip"
    assert checks(doc)["score.nll_sliding"]["measured"] == 4096


def test_verifier_input_errors_are_clean(tmp_path, tiny_data, unigram):
    art = fake_artifact(tmp_path, unigram)
    r = CliRunner().invoke(main, ["verify", str(art), "--data", str(tmp_path / "nodata")])
    assert r.exit_code == 1 and "not a directory" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["verify", str(art)])
    assert r.exit_code == 2 and "--data" in r.output
    r = CliRunner().invoke(main, ["verify"])
    assert r.exit_code == 2


# ----------------------------------------------------------------------------- real artifacts from `golf build`

REAL_TOKENS = "4096"


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
        "train.val_max_tokens": 4096, "train.train_batch_tokens": 1024, "train.data_dir": str(tiny_data["data_dir"]),
        "train.run_dir": str(root / "run"), "model.num_layers": 4, "model.recur_start": 1, "model.recur_end": 2,
        "model.parallel_start_layer": 3})
    train(cfg, RunOptions(device="cpu", progress=False, echo=False))
    report = build(root / "run", tiny_data["data_dir"], root / "art", val_max_tokens=int(REAL_TOKENS),
                   progress=False, device="cpu", log=lambda m: None)
    return {"dir": root / "art", "report": report}


def _copy(real_artifact, tmp_path, name="art") -> Path:
    dst = tmp_path / name
    shutil.copytree(real_artifact["dir"], dst)
    return dst


def run_real(art, tiny_data, tmp_path, *extra):
    return run_verify(art, tiny_data, "--val-max-tokens", REAL_TOKENS, *extra, json_path=tmp_path / "real.json",
                      seq=None)  # the artifact's own EVAL_SEQ_LEN, as in the build report


def test_real_artifact_verifies(tmp_path, tiny_data, real_artifact):
    art = _copy(real_artifact, tmp_path)
    r, doc = run_real(art, tiny_data, tmp_path)
    assert r.exit_code == EXIT_OK, r.output
    c = checks(doc)
    rep = real_artifact["report"]
    assert doc["mode"].startswith("re-scored") and doc["partial"]
    assert c["artifact.blob"]["status"] == "pass" and "golf container" in c["artifact.blob"]["message"]
    # the verifier's own re-score equals what the builder measured from the same blob
    assert doc["rescored"]["roundtrip"]["val_bpb"] == pytest.approx(rep["post_quant"]["roundtrip"]["val_bpb"],
                                                                    abs=1e-6)
    assert doc["rescored"]["roundtrip"]["bytes"] == rep["post_quant"]["roundtrip"]["bytes"]
    assert c["score.claimed"]["status"] == "pass" and "build_report.json" in c["score.claimed"]["message"]
    for name in ("score.normalized", "score.causal", "score.probe_consistency", "isolation.files",
                 "isolation.network", "size.total"):
        assert c[name]["status"] == "pass", (name, c[name])
    assert c["size.total"]["measured"] == rep["total_bytes"]
    assert doc["size_not_counted"] == ["build_report.json"]
    # the audit sees the child's imports: torch, no golf (the artifact is one self-contained module)
    assert "torch" in doc["modules_imported"] and not any(m.split(".")[0] == "golf" for m in doc["modules_imported"])


def test_real_artifact_tampered_claims(tmp_path, tiny_data, real_artifact):
    art = _copy(real_artifact, tmp_path)
    bpb = real_artifact["report"]["post_quant"]["roundtrip"]["val_bpb"]
    rep = json.loads((art / "build_report.json").read_text())
    rep["post_quant"]["roundtrip"]["val_bpb"] = bpb - 0.05  # edited claimed score
    (art / "build_report.json").write_text(json.dumps(rep))
    r, doc = run_real(art, tiny_data, tmp_path)
    assert r.exit_code == EXIT_SCORE, r.output
    assert checks(doc)["score.claimed"]["status"] == "fail"


def test_real_artifact_broken_blob_is_malformed(tmp_path, tiny_data, real_artifact):
    art = _copy(real_artifact, tmp_path, "trunc")
    blob = (art / "final_model.int6.ptz").read_bytes()
    (art / "final_model.int6.ptz").write_bytes(blob[: len(blob) // 2])
    r, doc = run_real(art, tiny_data, tmp_path)
    assert r.exit_code == EXIT_MALFORMED, r.output
    assert checks(doc)["artifact.blob"]["status"] == "fail" and "run.exit" not in checks(doc)  # never ran

    art = _copy(real_artifact, tmp_path, "header")
    (art / "final_model.int6.ptz").write_bytes(b"GOLX" + blob[4:])
    r, doc = run_real(art, tiny_data, tmp_path)
    assert r.exit_code == EXIT_MALFORMED and "bad magic" in checks(doc)["artifact.blob"]["message"]

    art = _copy(real_artifact, tmp_path, "corrupt")
    bad = bytearray(blob)
    for i in range(200, min(len(bad), 4000)):
        bad[i] ^= 0x5A
    (art / "final_model.int6.ptz").write_bytes(bytes(bad))
    r, doc = run_real(art, tiny_data, tmp_path)
    assert r.exit_code == EXIT_MALFORMED, r.output


def test_real_artifact_tampered_code(tmp_path, tiny_data, real_artifact):
    """A run that opens an extra 100 kB file beside the script (counted against the size limit), tries the
    network (swallowing the error) and tries to import golf from the environment (masked in the sandbox):
    every verdict is reported and the exit code follows the documented priority (network first)."""
    total = real_artifact["report"]["total_bytes"]
    art = _copy(real_artifact, tmp_path, "tampered")
    code = (art / "train_gpt.py").read_text()
    (art / "train_gpt.py").write_text(
        "import os, socket\n"
        "try:\n import golf.verifier.stats\n raise SystemExit('golf importable')\nexcept ImportError:\n pass\n"
        "open(os.path.join(os.path.dirname(__file__), 'pad.bin'), 'rb').read()\n"
        "try:\n socket.create_connection(('10.1.2.3', 80), 1)\nexcept OSError:\n pass\n" + code)
    (art / "pad.bin").write_bytes(b"\0" * 100_000)
    r, doc = run_real(art, tiny_data, tmp_path, "--max-bytes", str(total + 50_000))
    assert r.exit_code == EXIT_NETWORK, r.output
    c = checks(doc)
    assert c["isolation.network"]["status"] == "fail" and "10.1.2.3" in c["isolation.network"]["message"]
    assert c["size.total"]["status"] == "fail" and doc["size_counted"]["pad.bin"] == 100_000
    assert {k for k, ch in c.items() if ch["status"] == "fail"} == {"isolation.network", "size.total"}
    assert c["score.claimed"]["status"] == "pass"  # the model itself is still fine


def test_real_artifact_overridden_settings_skip_the_claim(tmp_path, tiny_data, real_artifact):
    art = _copy(real_artifact, tmp_path)
    r, doc = run_verify(art, tiny_data, "--val-max-tokens", "1024", "--eval-seq-len", "64",
                        "--claimed-bpb", "0.5", json_path=tmp_path / "o.json", seq=None)
    assert r.exit_code == EXIT_OK, r.output
    c = checks(doc)
    assert c["score.claimed"]["status"] == "skip" and "cannot be compared" in c["score.claimed"]["message"]
    assert doc["eval_seq_len"] == 64 and doc["partial"] and doc["targets"] == 1024
    assert doc["settings_overridden"] == ["--eval-seq-len 64 (artifact default 128)"]
    assert c["score.nll_roundtrip"]["measured"] == 1024 and c["score.causal"]["status"] == "pass"
