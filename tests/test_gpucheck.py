"""`golf bench gpu` (benchmarks/gpu_check.sh): the GPU check, tested on the CPU in its --cpu-smoke mode.

The end-to-end smoke run takes minutes on a shared 2-core box, so it is marked ``smoke`` and runs
in .ci/run's second step (``python -m pytest -q -m "compile or smoke"``); the rest is quick.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from golf.cli import main
from golf.model.gpt import attend
from golf.trainer.gpucheck import FA3_SHIM, reference_tok_s

REPO = Path(__file__).resolve().parents[1]


def test_bench_gpu_needs_a_gpu_or_cpu_smoke():
    if torch.cuda.is_available():
        pytest.skip("CPU behaviour only")
    res = CliRunner().invoke(main, ["bench", "gpu", "--out", "unused"])
    assert res.exit_code == 1 and "no CUDA GPU visible" in res.output and "--cpu-smoke" in res.output
    assert not Path("unused").exists()


def test_fa3_stand_in_matches_golf_attention():
    """The SDPA stand-in the check gives the record script computes golf's causal GQA attention."""
    ns: dict = {}
    exec(compile(FA3_SHIM, "flash_attn_interface.py", "exec"), ns)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 16, 8, 64, generator=g)
    k, v = torch.randn(2, 16, 4, 64, generator=g), torch.randn(2, 16, 4, 64, generator=g)
    torch.testing.assert_close(ns["flash_attn_func"](q, k, v, causal=True), attend(q, k, v))


def test_reference_log_parsing(tmp_path):
    log = tmp_path / "reference.log"
    log.write_text("warmup_step: 20/20\n10/300 train_loss: 7.1000 train_time: 0.0m tok/s: 812345\n"
                   "20/300 train_loss: 6.9000 train_time: 0.1m tok/s: 845678\n")
    assert reference_tok_s(log) == 845678.0
    assert reference_tok_s(tmp_path / "missing.log") is None


@pytest.mark.smoke
def test_gpu_check_cpu_smoke(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "check"
    # a stand-in for the record script (which needs CUDA): it checks the environment the check gives it,
    # uses the flash_attn_interface stand-in, and logs in the record's format
    ref = tmp_path / "record_standin.py"
    ref.write_text("import os, torch\nfrom flash_attn_interface import flash_attn_func\n"
                   "q = torch.randn(1, 8, 4, 16)\n"
                   "assert flash_attn_func(q, q[:, :, :2], q[:, :, :2], causal=True).shape"
                   " == q.shape\nassert os.path.isdir(os.environ['DATA_DIR'] + 'datasets')\n"
                   "n = int(os.environ['ITERATIONS'])\nassert os.environ['RECUR_START_STEP'] == '3'\n"
                   "print(f\"{n}/{n} train_loss: 6.0 train_time: 0.0m tok/s: 1000\")\n")
    p = subprocess.run([str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu-smoke", "--out", str(out), "--data",
                        str(tiny_data["data_dir"]), "--budget-s", "1200", "--reference", str(ref)],
                       capture_output=True, text=True, timeout=1300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    s = json.loads((out / "gpu_check.json").read_text())
    assert s["ok"] and s["mode"] == "cpu-smoke"
    assert {k: v["status"] for k, v in s["steps"].items()} == {
        "doctor": "ok", "data": "ok", "bench": "ok", "train": "ok", "hessian": "ok", "build": "ok", "verify": "ok",
        "reference": "ok"}
    assert s["reference"]["tok_s"] == 1000 and s["reference"]["attention"] == "SDPA stand-in"
    assert s["reference"]["golf_over_record_tok_s"] == pytest.approx(s["train"]["tok_s_overall"] / 1000)
    phases = s["bench"]["phases"]
    assert phases["recurrence_on"]["tok_s"] > 0 and phases["recurrence_off"]["graphs_compiled_in_timed_region"] == 0
    assert isinstance(s["bench"]["recurrence_switch_ms"], float)
    t = s["train"]
    assert t["steps"] == 8 and t["recurrence_on_step"] == 3 and t["tok_s_before_recurrence"] > 0
    assert t["tok_s_after_recurrence"] > 0 and t["val_bpb"] > 0 and "recurrence_switch_ms" in t
    b = s["build"]
    assert b["hessian_s"] > 0 and b["pack_s"] > 0 and b["gptq_s"] >= 0 and b["params"] > 300_000
    assert s["verify"]["ok"] is True and s["verify"]["val_bpb"] > 0
    md = (out / "gpu_check.md").read_text()
    assert "golf GPU check (cpu-smoke, preset tiny" in md and "| verify | ok |" in md
    assert "- record script (SDPA stand-in): 1,000 tok/s; golf / record = " in md
