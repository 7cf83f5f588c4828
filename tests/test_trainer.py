"""golf train: schedule, EMA/recurrence/warmdown points, resume, grad accumulation, DDP, Hub sync, CLI.

All runs use the tiny preset on CPU with the real sp1024 tokenizer/shards (``tiny_data``),
a few steps and tiny batches.  Runs happen in-process through click's CliRunner with one
torch thread (the CI box is shared; oversubscribed threads make CPU steps 30x slower).
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import torch
from click.testing import CliRunner

from golf.cli import main
from golf.config import GolfConfig
from golf.trainer import checkpoint as ckpt
from golf.trainer.schedule import effective_cap_ms, in_warmdown, lr_multiplier, muon_momentum, progress

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_torch_thread_module")  # module fixtures included


def run_cli(args, env=None, ok=True):
    env = {"ITERATIONS": None, "TRAIN_SEQ_LEN": None, "MATRIX_LR": None, "RESUME_FROM_HUB": None,
           "HUB_REPO": None, **(env or {})}
    res = CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)
    if ok:
        assert res.exit_code == 0, res.output
    return res


def tiny_args(data, run_dir, iterations, *extra):
    return ["train", "--preset", "tiny", "--data", data["data_dir"], "--run-dir", run_dir, "--device", "cpu",
            "--iterations", iterations, "--train-batch-tokens", 1024, "--val-max-tokens", 2048,
            "--set", "train.val_batch_tokens=2048", "--train-log-every", 1, "--no-progress",
            "--set", "train.tied_embed_lr=0.01", *extra]


def read_metrics(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def train_losses(run_dir):
    return {r["step"]: r["train_loss"] for r in read_metrics(run_dir) if r["event"] == "train"}


def final_state(run_dir):
    cfg, state = ckpt.load_final(run_dir)
    return state


# -- schedule ----------------------------------------------------------------------------------
def test_lr_schedule_warmup_and_iteration_warmdown():
    kw = dict(warmup_steps=4, warmdown_iters=10)
    assert [lr_multiplier(s, 100, **kw) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert lr_multiplier(89, 100, **kw) == 1.0
    assert lr_multiplier(90, 100, **kw) == 1.0 and lr_multiplier(91, 100, **kw) == pytest.approx(0.9)
    assert lr_multiplier(99, 100, **kw) == pytest.approx(0.1)
    assert lr_multiplier(99, 100, min_lr=0.25, **kw) == 0.25  # floor
    assert not in_warmdown(89, 100, warmdown_iters=10) and in_warmdown(90, 100, warmdown_iters=10)


def test_lr_schedule_wallclock_fraction_and_cap():
    # SPEC §4.3: frac = elapsed / effective cap; 1 while frac < 1 - w, then (1 - frac)/w
    kw = dict(warmdown_frac=0.5, cap_ms=10_000.0)
    assert lr_multiplier(1, 10**6, elapsed_ms=4_000.0, **kw) == 1.0
    assert lr_multiplier(1, 10**6, elapsed_ms=7_500.0, **kw) == pytest.approx(0.5)
    assert lr_multiplier(1, 10**6, elapsed_ms=7_500.0, min_lr=0.6, **kw) == 0.6
    # uncapped: the fraction is step / iterations
    assert lr_multiplier(75, 100, warmdown_frac=0.5) == pytest.approx(0.5)
    # iteration warmdown under a cap also anneals by time: 100 steps of 10 ms = 1 s left of 10 s, warmdown
    # of 200 steps = 18 s of mean step time -> 1/18
    step_ms = 9_000.0 / 100
    expect = (10_000.0 - 9_000.0) / (200 * step_ms)
    assert lr_multiplier(100, 10**6, elapsed_ms=9_000.0, cap_ms=10_000.0, warmdown_iters=200) == pytest.approx(expect)
    assert progress(10, 100, 5_000.0, 10_000.0) == 0.5 and progress(60, 100, 5_000.0, 10_000.0) == 0.6


def test_muon_momentum_ramp_and_cap():
    assert muon_momentum(0, 0.99, 0.92, 1500) == pytest.approx(0.92)
    assert muon_momentum(750, 0.99, 0.92, 1500) == pytest.approx(0.955)
    assert muon_momentum(5000, 0.99, 0.92, 1500) == pytest.approx(0.99)
    cfg = GolfConfig()
    cfg.train.max_wallclock_seconds, cfg.train.gptq_reserve_seconds = 600.0, 10.0
    assert effective_cap_ms(cfg.train) == 590_000.0
    cfg.train.max_wallclock_seconds = 0.0
    assert effective_cap_ms(cfg.train) == 0.0


# -- checkpoints ---------------------------------------------------------------------------------
def test_rng_state_roundtrip_through_weights_only_file(tmp_path):
    import random

    import numpy as np
    torch.manual_seed(1)
    random.seed(2)
    np.random.seed(3)
    ckpt.atomic_save({"format": "x", "rng": ckpt.rng_state()}, tmp_path / "r.pt")
    a = (random.random(), np.random.rand(), torch.rand(3))
    ckpt.set_rng_state(ckpt.safe_load(tmp_path / "r.pt")["rng"])
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    assert not list(tmp_path.glob(".*.tmp"))  # atomic: no temp files left behind
    with pytest.raises(ckpt.CheckpointError, match="no such checkpoint"):
        ckpt.load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ckpt.CheckpointError, match="cannot read"):
        ckpt.load_checkpoint(tmp_path / "bad.pt")


# -- a full short run --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def short_run(tiny_data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run") / "r"
    res = run_cli(tiny_args(tiny_data, run_dir, 24, "--val-loss-every", 8, "--warmdown-iters", 6,
                            "--set", "train.ema_start_step=6", "--set", "train.recur_start_frac=0.5",
                            "--checkpoint-every", 8))
    return run_dir, res.output


def test_short_run_loss_falls(short_run):
    run_dir, _ = short_run
    m = read_metrics(run_dir)
    first = [r for r in m if r["event"] == "train"][0]["train_loss"]
    assert abs(first - math.log(1024)) < 0.1  # starts at the uniform-prediction loss
    vals = [r["val_loss"] for r in m if r["event"] == "val"]
    assert len(vals) == 3  # steps 8, 16, 24
    assert vals[0] > vals[1] > vals[2]
    assert vals[-1] < first - 0.8


def test_recurrence_switch_by_step(tiny_data, tmp_path):
    """RECUR_START_STEP (the SP4096 record's step-based switch) overrides the fraction."""
    run_dir = tmp_path / "r"
    run_cli(tiny_args(tiny_data, run_dir, 6, "--set", "train.recur_start_frac=0.9"), env={"RECUR_START_STEP": "2"})
    ev = [r for r in read_metrics(run_dir) if r["event"] == "recurrence_on"]
    assert [r["step"] for r in ev] == [2]
    assert json.loads((run_dir / "config.json").read_text())["train"]["recur_start_step"] == 2


def test_short_run_schedule_points(short_run):
    run_dir, out = short_run
    m = read_metrics(run_dir)
    ev = {r["event"]: r for r in m if r["event"] in ("ema_start", "recurrence_on", "warmdown_start")}
    assert ev["ema_start"]["step"] == 6
    assert ev["recurrence_on"]["step"] == 12  # recur_start_frac 0.5 of 24 iterations
    assert ev["warmdown_start"]["step"] == 18  # iterations - warmdown_iters
    train = [r for r in m if r["event"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 25))
    for r in train:  # record of step s used the multiplier for s-1 completed steps
        assert r["lr_mult"] == pytest.approx(min(1.0, (24 - (r["step"] - 1)) / 6))
        assert r["recurrence"] == (r["step"] > 12)
        assert r["ema"] == (r["step"] >= 6)
    log = (Path(run_dir) / "train.log").read_text()
    assert "ema:start step:6/24" in log and "recurrence:on step:12/24" in log and "warmdown:start step:18/24" in log


def test_short_run_outputs_and_log_format(short_run):
    from golf.model.gpt import GPT

    run_dir, out = short_run
    log = (run_dir / "train.log").read_text()
    assert re.search(r"^model_params:\d+$", log, re.M)
    assert re.search(r"^step:24/24 train_loss:\d+\.\d{4} train_time:\d+ms step_avg:\d+\.\d{2}ms tok/s:\d+$", log, re.M)
    assert re.search(r"^step:16/24 val_loss:\d+\.\d{4} val_bpb:\d+\.\d{4} train_time:\d+ms", log, re.M)
    assert re.search(r"^peak memory allocated: \d+ MiB reserved: \d+ MiB", log, re.M)
    assert "step:24/24 train_loss" in out  # rank-0 stdout mirrors the log
    # resolved config saved with the run
    saved = GolfConfig.from_json((run_dir / "config.json").read_text())
    assert saved.train.iterations == 24 and saved.train.tied_embed_lr == 0.01 and saved.model.num_layers == 6
    # final model for `golf build`
    cfg, state = ckpt.load_final(run_dir)
    _, _, rec = ckpt.load_final_full(run_dir / "final_model.pt")
    assert cfg.model == saved.model and rec is True
    model = GPT(cfg.model)
    model.load_state_dict(state)  # strict
    final = json.loads((run_dir / "final.json").read_text())
    assert final["steps"] == 24 and math.isfinite(final["val_loss"]) and 1.0 < final["val_bpb"] < 6.0
    assert final["ema"] is True
    assert "final_model val_loss:" in log
    # checkpoints: every 8 steps and at the end, newest 2 kept, loadable with weights_only
    steps = [s for s, _ in ckpt.list_checkpoints(run_dir)]
    assert steps == [16, 24]
    obj = torch.load(ckpt.checkpoint_path(run_dir, 24), weights_only=True)
    assert obj["step"] == 24 and obj["flags"]["recurrence_active"] and obj["ema"]["shadow"]
    assert set(obj["rng"]) >= {"python", "numpy", "torch"} and obj["loader"]["pos"] > 0


def test_wallclock_cap_stops_early_and_drives_schedule(tiny_data, tmp_path):
    res = run_cli(tiny_args(tiny_data, tmp_path, 100000, "--val-loss-every", 0, "--max-wallclock-seconds", 0.6,
                            "--gptq-reserve-seconds", 0.2, "--warmdown-frac", 0.5,
                            "--set", "train.recur_start_frac=0.5"))
    m = re.search(r"^stopping_early: wallclock_cap train_time:(\d+)ms step:(\d+)/100000$", res.output, re.M)
    assert m, res.output
    train_ms, steps = int(m.group(1)), int(m.group(2))
    assert train_ms >= 400 and 1 <= steps < 100000  # effective cap = 0.6 s - 0.2 s reserve
    rec = [r for r in read_metrics(tmp_path) if r["event"] == "recurrence_on"]
    assert len(rec) == 1 and rec[0]["train_time_ms"] >= 200  # half of the effective cap, not of the iterations
    train = [r for r in read_metrics(tmp_path) if r["event"] == "train"]
    assert [r["step"] for r in train] == list(range(1, steps + 1))
    for prev, r in zip(train, train[1:]):  # warmdown by wallclock fraction w=0.5 of the 400 ms effective cap
        frac = max(prev["train_time_ms"] / 400.0, prev["step"] / 100000)
        assert r["lr_mult"] == pytest.approx(1.0 if frac < 0.5 else max(1.0 - frac, 0.0) / 0.5)
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["stopped_early"] is True and final["steps"] == steps


def _tiny_run(tiny_data, run_dir, **train):
    """A real ``Run`` of the tiny preset on CPU, set up and compiled (eagerly) but not started."""
    from golf.presets import preset_config
    from golf.trainer.loop import Run, RunOptions
    from golf.trainer.runlog import RunLog

    cfg = preset_config("tiny")
    cfg.train.data_dir, cfg.train.run_dir = str(tiny_data["data_dir"]), str(run_dir)
    cfg.train.train_batch_tokens, cfg.train.val_max_tokens = 512, 2048
    for k, v in train.items():
        setattr(cfg.train, k, v)
    run = Run(cfg, RunOptions(device="cpu", echo=False, progress=False), 0, 1, torch.device("cpu"))
    run.log = RunLog(None, enabled=False)
    run.setup()
    run.compile()
    return run


def _two_steps(run):
    losses = [float(run.step()) for _ in range(2)]
    state = {k: v.clone() for k, v in run.model.state_dict().items()}
    if run.ema.active:
        state.update({f"ema.{k}": v.clone() for k, v in run.ema.shadow.items()})
    return losses, state


def test_compile_priming_restores_the_initial_state(tiny_data, tmp_path):
    """The untimed torch.compile warm-up (run eagerly here) must leave no trace in weights, optimizer or data."""
    plain = _tiny_run(tiny_data, tmp_path / "a")
    primed = _tiny_run(tiny_data, tmp_path / "b")
    primed.prime(4)
    assert not primed.model.recurrence_active and primed.ph.step == 0
    (la, sa), (lb, sb) = _two_steps(plain), _two_steps(primed)
    assert la == lb and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_state_map_round_trip_restores_every_piece(tiny_data, tmp_path):
    """Save the state map mid-run, run on, load it back: the next steps repeat exactly (weights, optimizer,
    EMA, loader, RNG, flags), through a real weights_only checkpoint file."""
    run = _tiny_run(tiny_data, tmp_path / "r", ema_start_step=1)
    run.maybe_start_ema()
    _two_steps(run)
    path = ckpt.save_checkpoint(tmp_path / "c.pt", cfg=run.cfg, state=run.state, step=run.ph.step,
                                train_time_ms=run.ph.train_time_ms)
    after = _two_steps(run)
    torch.rand(3)  # move the RNG on: the load must put it back
    saved = ckpt.load_checkpoint(path)
    assert saved["step"] == 2 and saved["flags"]["step"] == 2 and saved["flags"]["ema_started"]
    ckpt.load_states(run.state, saved)
    assert run.ph.step == 2 and run.loader.state_dict() == saved["loader"]
    assert torch.equal(torch.get_rng_state(), saved["rng"]["torch"])
    again = _two_steps(run)
    assert run.ph.step == 4 and after[0] == again[0]
    assert after[1].keys() == again[1].keys() and all(torch.equal(after[1][k], again[1][k]) for k in after[1])


def test_adding_a_piece_of_state_takes_one_line(tiny_data, tmp_path):
    """Any object with state_dict/load_state_dict put in the map is saved and restored by the same loop."""
    class Counter:
        def __init__(self):
            self.n = 0

        def state_dict(self):
            return {"n": self.n}

        def load_state_dict(self, state):
            self.n = state["n"]

    run = _tiny_run(tiny_data, tmp_path / "r")
    run.state["counter"] = counter = Counter()  # the one line
    counter.n = 7
    path = ckpt.save_checkpoint(tmp_path / "c.pt", cfg=run.cfg, state=run.state, step=0, train_time_ms=0.0)
    counter.n = 0
    ckpt.load_states(run.state, ckpt.load_checkpoint(path))
    assert counter.n == 7


def test_checkpoint_from_before_the_state_map_still_resumes(tmp_path):
    """Checkpoints written before the phase flags carried the step keep it at the top level only."""
    cfg = GolfConfig()
    ckpt.atomic_save({"format": ckpt.FORMAT, "config_json": cfg.to_json(), "step": 5, "train_time_ms": 12.5,
                      "flags": {"recurrence_active": True, "warmdown_started": False, "ema_started": False}},
                     tmp_path / "old.pt")
    from golf.trainer.loop import Phase
    ph = Phase()
    ckpt.load_states({"flags": ph}, ckpt.load_checkpoint(tmp_path / "old.pt"))
    assert (ph.step, ph.train_time_ms, ph.recurrence_active) == (5, 12.5, True)


def test_recurrence_rule_lives_in_the_schedule():
    from golf.trainer.schedule import recurrence_due

    cfg = GolfConfig()
    t = cfg.train
    t.iterations, t.recur_start_step, t.recur_start_frac = 100, 0, 0.5
    assert [recurrence_due(t, s) for s in (0, 49, 50)] == [False, False, True]
    assert recurrence_due(t, 1, elapsed_ms=600.0, cap_ms=1000.0)  # the capped clock is further along
    t.recur_start_step = 7  # a step wins over the fraction
    assert not recurrence_due(t, 6, elapsed_ms=900.0, cap_ms=1000.0) and recurrence_due(t, 7)
    t.recur_start_step, t.recur_start_frac = 0, 0.0  # from the first step
    assert recurrence_due(t, 0)


# -- resume ------------------------------------------------------------------------------------
def test_resume_equals_straight_run_bitwise(tiny_data, tmp_path, monkeypatch):
    extra = ("--warmdown-iters", 3, "--set", "train.ema_start_step=2", "--set", "train.recur_start_frac=0.5",
             "--val-loss-every", 0)
    straight, split = tmp_path / "straight", tmp_path / "split"
    run_cli(tiny_args(tiny_data, straight, 8, *extra))
    res = run_cli(tiny_args(tiny_data, split, 8, *extra, "--stop-at-step", 3))
    assert "paused: step:3/8" in res.output
    assert not (split / "final_model.pt").exists() and ckpt.latest_checkpoint(split).name == "step_000003.pt"
    # continue: no --preset -> the checkpoint's config is the base; the checkpoint is read once
    reads = []
    load = ckpt.load_checkpoint
    monkeypatch.setattr(ckpt, "load_checkpoint", lambda *a, **k: reads.append(a[0]) or load(*a, **k))
    res = run_cli(["train", "--run-dir", split, "--data", tiny_data["data_dir"], "--resume", "auto", "--device",
                   "cpu", "--no-progress"])
    assert [p.name for p in map(Path, reads)] == ["step_000003.pt"]
    monkeypatch.undo()
    assert "resumed:" in res.output and "step:3/8" in res.output
    a, b = train_losses(straight), train_losses(split)
    assert sorted(a) == sorted(b) == list(range(1, 9))
    assert a == b  # identical floats
    sa, sb = final_state(straight), final_state(split)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    fa, fb = (json.loads((d / "final.json").read_text()) for d in (straight, split))
    assert fa["val_loss"] == fb["val_loss"]
    # a checkpoint from a different model is refused with a clear message
    res = run_cli(["train", "--preset", "tiny", "--set", "model.num_layers=7", "--run-dir", tmp_path / "other",
                   "--data", tiny_data["data_dir"], "--resume", split, "--device", "cpu"], ok=False)
    assert res.exit_code != 0 and "model.num_layers" in res.output


# -- gradient accumulation and DDP -----------------------------------------------------------------
@pytest.fixture(scope="module")
def accum_runs(tiny_data, tmp_path_factory):
    base = tmp_path_factory.mktemp("accum")
    common = ("--val-loss-every", 0, "--set", "train.ema_start_step=1000")
    run_cli(tiny_args(tiny_data, base / "accum1", 3, "--micro-batch-seqs", 8, *common))
    res = run_cli(tiny_args(tiny_data, base / "accum2", 3, "--micro-batch-seqs", 4, *common))
    assert "grad_accum_steps:2" in res.output
    return base, common


def _assert_close_runs(a, b, rtol=1e-4, atol=2e-5):
    la, lb = train_losses(a), train_losses(b)
    assert sorted(la) == sorted(lb)
    for s in la:
        assert la[s] == pytest.approx(lb[s], rel=1e-5), s
    sa, sb = final_state(a), final_state(b)
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=rtol, atol=atol, msg=lambda m: f"{k}: {m}")


def test_grad_accumulation_matches_big_micro_batch(accum_runs):
    base, _ = accum_runs
    _assert_close_runs(base / "accum1", base / "accum2")


def test_ddp_two_processes_match_accumulation(accum_runs, tiny_data):
    base, common = accum_runs
    run_dir = base / "ddp2"
    args = tiny_args(tiny_data, run_dir, 3, "--micro-batch-seqs", 4, *common)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("ITERATIONS", "TRAIN_SEQ_LEN", "MATRIX_LR", "RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(k, None)
    proc = subprocess.run([sys.executable, "-m", "golf", *map(str, args), "--nproc", "2"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "world_size:2 grad_accum_steps:1 micro_batch_seqs:4" in proc.stdout
    assert proc.stdout.count("model_params:") == 1  # rank-0 logging only
    _assert_close_runs(base / "accum2", run_dir)


# -- config precedence ---------------------------------------------------------------------------
def test_flag_env_preset_precedence(tmp_path):
    env = {"ITERATIONS": "77", "TRAIN_SEQ_LEN": "64", "MATRIX_LR": "0.5"}
    res = run_cli(["train", "--preset", "tiny", "--iterations", 55, "--set", "train.matrix_lr=0.25",
                   "--run-dir", tmp_path, "--print-config"], env=env)
    cfg = GolfConfig.from_json(res.output)
    assert cfg.train.iterations == 55  # flag > env
    assert cfg.train.matrix_lr == 0.25  # --set > env
    assert cfg.train.train_seq_len == 64  # env > preset (tiny: 128)
    assert cfg.model.num_layers == 6  # preset > default (11)
    assert cfg.eval.eval_stride == 32 and cfg.quant.matrix_bits == 6 and cfg.preset == "tiny"
    res = run_cli(["train", "--preset", "tiny", "--print-config"], env={"ITERATIONS": "1e3"})
    assert GolfConfig.from_json(res.output).train.iterations == 1000
    bad = run_cli(["train", "--preset", "tiny", "--print-config"], env={"ITERATIONS": "many"}, ok=False)
    assert bad.exit_code == 2 and "train.iterations" in bad.output
    bad = run_cli(["train", "--set", "train.no_such=1", "--print-config"], ok=False)
    assert bad.exit_code == 2 and "train.no_such" in bad.output
    bad = run_cli(["train", "--set", "oops", "--print-config"], ok=False)
    assert bad.exit_code == 2 and "SECTION.NAME=VALUE" in bad.output


def test_clear_errors_for_bad_inputs(tiny_data, tmp_path):
    res = run_cli(["train", "--preset", "tiny", "--data", tmp_path / "nodata", "--run-dir", tmp_path / "r",
                   "--device", "cpu"], ok=False)
    assert res.exit_code == 1 and "no training shards" in res.output
    res = run_cli(tiny_args(tiny_data, tmp_path / "r2", 2, "--micro-batch-seqs", 3), ok=False)
    assert res.exit_code == 1 and "micro_batch_seqs=3" in res.output
    res = run_cli(["train", "--preset", "tiny", "--resume", tmp_path / "nope.pt", "--print-config"], ok=False)
    assert res.exit_code == 2 and "nope.pt" in res.output


# -- Hub sync against a local Hub-API server --------------------------------------------------------
class FakeHub:
    """The Hub endpoints HfApi uses for create_repo, regular-file commits (preupload + ndjson commit),
    list_repo_files (tree) and hf_hub_download (resolve), on 127.0.0.1."""

    def __init__(self):
        self.repos: dict[str, dict[str, bytes]] = {}
        self.commits: list[tuple[str, str, list]] = []
        self.auth: set = set()
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body=b"", headers=None, ctype="application/json"):
                if isinstance(body, (dict, list)):
                    body = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def _route(self):
                hub.auth.add(self.headers.get("Authorization"))
                path, host = urlparse(self.path).path, self.headers["Host"]
                if self.command == "POST" and path == "/api/repos/create":
                    d = json.loads(self._body())
                    rid = (d["organization"] + "/" if d.get("organization") else "") + d["name"]
                    with hub.lock:
                        if rid in hub.repos:
                            return self._send(409, {"error": "You already created this model repo", "url": f"http://{host}/{rid}"})
                        hub.repos[rid] = {}
                    return self._send(200, {"url": f"http://{host}/{rid}", "name": rid})
                m = re.match(r"^/api/models/([^/]+/[^/]+)/(preupload|commit|tree)/([^/]+)(/.*)?$", path)
                if m:
                    rid, kind = m.group(1), m.group(2)
                    if rid not in hub.repos:
                        return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
                    if kind == "preupload":
                        files = json.loads(self._body())["files"]
                        return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                           "shouldIgnore": False} for f in files]})
                    if kind == "commit":
                        lines = [json.loads(x) for x in self._body().splitlines() if x.strip()]
                        with hub.lock:
                            files, ops, summary = hub.repos[rid], [], ""
                            for item in lines:
                                k, v = item["key"], item["value"]
                                if k == "header":
                                    summary = v["summary"]
                                elif k == "file":
                                    files[v["path"]] = base64.b64decode(v["content"])
                                    ops.append(("add", v["path"]))
                                elif k == "deletedFile":
                                    files.pop(v["path"], None)
                                    ops.append(("delete", v["path"]))
                                else:
                                    return self._send(400, {"error": f"unsupported operation {k}"})
                            hub.commits.append((rid, summary, ops))
                            oid = hashlib.sha1(str(len(hub.commits)).encode()).hexdigest()
                        return self._send(200, {"commitUrl": f"http://{host}/{rid}/commit/{oid}", "commitOid": oid})
                    with hub.lock:  # tree
                        items = [{"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                                 for p, b in sorted(hub.repos[rid].items())]
                    return self._send(200, items)
                m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
                if m and self.command in ("GET", "HEAD"):
                    data = hub.repos.get(m.group(1), {}).get(unquote(m.group(3)))
                    if data is None:
                        return self._send(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
                    return self._send(200, data, {"ETag": f'"{hashlib.sha1(data).hexdigest()}"',
                                                  "X-Repo-Commit": "a" * 40}, ctype="application/octet-stream")
                return self._send(404, {"error": f"no route {self.command} {path}"})

            do_GET = do_POST = do_HEAD = _route

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_hub_push_in_background_and_resume_from_hub(tiny_data, tmp_path):
    with FakeHub() as hub:
        env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_test_token", "HF_HUB_DISABLE_TELEMETRY": "1"}
        # machine 1: pushes every 2 steps, is stopped after step 4 (of 6)
        run_cli(tiny_args(tiny_data, tmp_path / "a", 6, "--val-loss-every", 0, "--hub-repo", "me/golf-run",
                          "--hub-every", 2, "--stop-at-step", 4), env=env)
        files = hub.repos["me/golf-run"]
        assert {"checkpoints/step_000002.pt", "checkpoints/step_000004.pt", "latest.json", "config.json"} <= set(files)
        assert json.loads(files["latest.json"]) == {"step": 4, "path": "checkpoints/step_000004.pt"}
        assert files["checkpoints/step_000004.pt"] == (tmp_path / "a/checkpoints/step_000004.pt").read_bytes()
        assert "Bearer hf_test_token" in hub.auth
        assert [c[1] for c in hub.commits] == ["golf checkpoint step 2", "golf checkpoint step 4"]
        assert not list((tmp_path / "a" / ".hub_staging").iterdir())  # staged copies cleaned up
        # machine 2 (fresh run dir): RESUME_FROM_HUB=1 + HUB_REPO fetch step 4 and finish the run
        res = run_cli(["train", "--run-dir", tmp_path / "b", "--data", tiny_data["data_dir"], "--device", "cpu",
                       "--no-progress"], env={**env, "RESUME_FROM_HUB": "1", "HUB_REPO": "me/golf-run"})
        assert "resumed:" in res.output and "step:4/6" in res.output
        assert sorted(train_losses(tmp_path / "b")) == [5, 6], res.output
        assert "final_model.pt" in files, res.output
        assert files["final_model.pt"] == (tmp_path / "b" / "final_model.pt").read_bytes()
        assert {"final.json", "checkpoints/step_000006.pt"} <= set(files)
        assert "checkpoints/step_000002.pt" not in files  # only the newest 2 kept on the Hub
        # the same 6 steps in one go give the same result: the Hub round trip loses nothing
        run_cli(tiny_args(tiny_data, tmp_path / "c", 6, "--val-loss-every", 0))
        lb, lc = train_losses(tmp_path / "b"), train_losses(tmp_path / "c")
        assert lb[5] == lc[5] and lb[6] == lc[6]
        sb, sc = final_state(tmp_path / "b"), final_state(tmp_path / "c")
        assert all(torch.equal(sb[k], sc[k]) for k in sb)


def test_hub_unreachable_does_not_stop_training(tiny_data, tmp_path):
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "x", "HF_HUB_ETAG_TIMEOUT": "1"}
    res = run_cli(tiny_args(tiny_data, tmp_path, 2, "--val-loss-every", 0, "--hub-repo", "me/x", "--hub-every", 1),
                  env=env)
    assert "hub: push of step" in res.output and "failed" in res.output
    assert (tmp_path / "final_model.pt").is_file()


# -- bench ----------------------------------------------------------------------------------------
def test_bench_train_cpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CPU behaviour only")
    res = run_cli(["bench", "train", "--preset", "seed", "--device", "cpu"], ok=False)
    assert res.exit_code == 1 and "no CUDA GPU" in res.output
    out = tmp_path / "b.json"
    res = run_cli(["bench", "train", "--preset", "tiny", "--device", "cpu", "--steps", 2, "--warmup", 1,
                   "--micro-batch-seqs", 2, "--json-out", out])
    assert "recurrence_off:" in res.output and "recurrence_on:" in res.output and "ms/step" in res.output
    r = json.loads(out.read_text())
    off, on = r["phases"]["recurrence_off"], r["phases"]["recurrence_on"]
    assert off["tok_s"] > 0 and on["flops_per_step"] > off["flops_per_step"]  # looped layers cost FLOPs
