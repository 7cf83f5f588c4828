"""golf doctor: facts of this machine, fast network verdicts, and judgements of other machines' facts.

This machine has no GPU and no internet.  Other platforms (Kaggle 2xT4, 1xH100) are judged
from this machine's own saved report with the GPU entries set as those machines report them
(``--facts``, the command's feature for re-judging a saved report).
"""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from golf.cli import main
from golf.doctor import detect_platform, probe_network, suggest_preset

T4 = {"name": "Tesla T4", "memory_gib": 14.74, "capability": [7, 5], "bf16": False, "fp16": True}
H100 = {"name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.1, "capability": [9, 0], "bf16": True, "fp16": True}


def run_cli(args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env={"HF_ENDPOINT": None, **(env or {})},
                              catch_exceptions=False)


@pytest.fixture(scope="module")
def here(tmp_path_factory, tiny_data):
    """`golf doctor --json` on this machine (tiny preset, the tiny dataset): exit 0, and its report."""
    out = tmp_path_factory.mktemp("doctor") / "here.json"
    res = run_cli(["doctor", "--preset", "tiny", "--data", tiny_data["data_dir"], "--json", out])
    return res, json.loads(out.read_text())


def test_doctor_on_this_machine(here):
    res, report = here
    assert res.exit_code == 0, res.output
    facts = report["facts"]
    assert facts["torch"] and facts["python"] and facts["gpus"] == [] and facts["platform"] == "cpu"
    assert facts["suggested_preset"] == "tiny"
    assert "attention: SDPA (no CUDA GPU)" in res.output
    assert "OK: ready to run" in res.output and "FAIL" not in res.output
    for key in ("fa3", "compile", "nccl", "ram", "disk", "network"):
        shown = "FlashAttention-3" if key == "fa3" else key
        assert key in facts and shown in res.output.replace("torch.compile", "compile")
    assert report["verdict"]["plan"]["shards"]["val_present"] is True


def test_doctor_fails_a_gpu_preset_without_a_gpu(tiny_data):
    res = run_cli(["doctor", "--preset", "seed", "--data", tiny_data["data_dir"]])
    assert res.exit_code == 1
    fails = [x for x in res.output.splitlines() if x.startswith("FAIL")]
    assert any("no CUDA GPU: preset seed is sized for 1xH100" in x and "--preset tiny" in x for x in fails)
    assert "NOT READY" in res.output


class _Hub(BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_network_probe_answers_in_seconds():
    t0 = time.perf_counter()
    r = probe_network("https://huggingface.co", timeout=3.0)  # no internet here
    assert not r["reachable"] and r["error"] and time.perf_counter() - t0 < 5.0
    silent = socket.socket()  # accepts the connection, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    t0 = time.perf_counter()
    r = probe_network(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=1.0)
    assert not r["reachable"] and time.perf_counter() - t0 < 2.0
    assert "no answer within 1 s" in r["error"] or "timed out" in r["error"]  # whichever clock fires first
    silent.close()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        r = probe_network(f"http://127.0.0.1:{srv.server_address[1]}", timeout=2.0)
        assert r["reachable"] and r["status"] == 200
    finally:
        srv.shutdown()


def test_doctor_reports_unreachable_hub_fast(tiny_data):
    t0 = time.perf_counter()
    res = run_cli(["doctor", "--preset", "tiny", "--data", tiny_data["data_dir"]],
                  env={"HF_ENDPOINT": "http://10.255.255.1:81"})
    assert "network: http://10.255.255.1:81 unreachable" in res.output
    assert time.perf_counter() - t0 < 30  # the probe's 3 s, plus imports on a busy box


def _facts_file(here, tmp_path, gpus, platform, reachable=True, fa3=False):
    facts = dict(here[1]["facts"])
    facts.update(gpus=gpus, platform=platform, network={**facts["network"], "reachable": reachable},
                 fa3={"importable": fa3, "error": None if fa3 else "ModuleNotFoundError: flash_attn_interface"},
                 nccl={"available": True, "version": "2.21.5"})
    facts["suggested_preset"] = suggest_preset(facts)
    path = tmp_path / f"{platform}.json"
    path.write_text(json.dumps({"facts": facts}))
    return path


def test_kaggle_t4_judgements(here, tmp_path):
    path = _facts_file(here, tmp_path, [T4, T4], "kaggle")
    res = run_cli(["doctor", "--facts", path, "--preset", "8xh100"])  # a bf16 preset on a T4
    assert res.exit_code == 1
    assert any(x.startswith("FAIL preset 8xh100 trains in bf16 but Tesla T4 has no bf16: use --preset kaggle-1h")
               for x in res.output.splitlines())
    res = run_cli(["doctor", "--facts", path, "--preset", "seed"])  # auto -> fp16, but 48 seqs do not fit 15 GiB
    assert res.exit_code == 1
    mem = [x for x in res.output.splitlines() if x.startswith("FAIL estimated peak memory")]
    assert mem and "lower --micro-batch-seqs to 12" in mem[0]
    res = run_cli(["doctor", "--facts", path])  # the suggestion fits
    assert "suggested preset: kaggle-1h" in res.output and "preset kaggle-1h:" in res.output
    assert not [x for x in res.output.splitlines() if x.startswith("FAIL") and "shards" not in x]
    assert "this run: fp16" in res.output


def test_h100_attention_backend_and_missing_data(here, tmp_path):
    res = run_cli(["doctor", "--facts", _facts_file(here, tmp_path, [H100], "1xH100", reachable=False),
                   "--preset", "seed"])
    out = res.output
    assert "suggested preset: seed" in out and "attention: SDPA (flash_attn_interface is not importable" in out
    assert "WARN attention falls back to SDPA" in out
    assert res.exit_code == 1 and "the Hub is unreachable" in out  # sp4096 shards absent, no network
    res = run_cli(["doctor", "--facts", _facts_file(here, tmp_path, [H100] * 8, "8xH100", fa3=True),
                   "--preset", "8xh100"])
    assert "attention: FA3" in res.output and "suggested preset: 8xh100" in res.output


def test_a_gpu_golf_has_no_peak_for_is_still_judged(here, tmp_path):
    a6000 = {"name": "NVIDIA RTX A6000", "memory_gib": 47.5, "capability": [8, 6], "bf16": True, "fp16": True}
    res = run_cli(["doctor", "--facts", _facts_file(here, tmp_path, [a6000], "GPU"), "--preset", "seed"])
    assert "Traceback" not in res.output and "this run: bf16" in res.output
    mem = [x for x in res.output.splitlines() if x.startswith("FAIL estimated peak memory")]
    assert mem and "48 GiB on NVIDIA RTX A6000" in mem[0]  # 51.6 GiB estimated at micro-batch 48


def test_platform_detection():
    assert detect_platform([T4, T4], {"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}) == "kaggle"
    assert detect_platform([T4], {"COLAB_RELEASE_TAG": "release-colab_2026"}) == "colab"
    assert detect_platform([H100] * 8, {}) == "8xH100" and detect_platform([H100], {}) == "1xH100"
    assert detect_platform([], {}) == "cpu"


def test_bad_facts_file(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("[1, 2]")
    res = run_cli(["doctor", "--facts", p])
    assert res.exit_code == 2 and "not a golf doctor report" in res.output and "Traceback" not in res.output
