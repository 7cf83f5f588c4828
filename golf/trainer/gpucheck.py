"""``golf bench gpu``: the one command to run the day a GPU is there (``benchmarks/gpu_check.sh`` calls it).

Steps, each a real ``golf`` command in a subprocess with its own time limit inside one total
budget (default 480 s, the 8 minutes of the issue), so one failure never hides the rest:

1. ``golf doctor`` (facts + verdict for the preset);
2. data: ``--data`` if it holds the preset's vocabulary, else ``golf data build`` from the
   embedded sample (throughput does not care which tokens; val_bpb of such a run means little);
3. ``golf bench train``: tok/s and MFU before/after recurrence, peak memory, compile (warm-up)
   time, graphs compiled while timed, time lost at the recurrence switch;
4. ``golf train`` of the preset for ``--steps`` steps with validation and compile, per-step times
   (recurrence switch at 35 % of the steps);
5. the Hessian collection alone (timed in-process), then ``golf build`` (its report splits
   calibrate+quantize from pack);
6. ``golf verify`` of the artifact on the same device;
7. when the record script is present (``--reference``, default ``../shared/reference/
   sp4096_record_train_gpt.py`` or ``shared/reference/`` inside the checkout) and a GPU is used:
   the record script for the same steps,
   tokens/step and micro-batch, for a side-by-side tok/s ratio (with an SDPA stand-in for
   ``flash_attn_interface`` when FlashAttention-3 is not installed, as the record's 0.865 M
   tok/s on one H100 was measured).

Writes ``OUT/gpu_check.json`` and ``OUT/gpu_check.md``.  ``--cpu-smoke`` runs the same
pipeline with the tiny preset on the CPU in a few minutes (no compile, no reference run), so
the command is tested where no GPU is.
"""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from golf.protocol import ENV_DATA_DIR, REPORT_NAME, VERIFY_NAME

_REPO = Path(__file__).resolve().parents[2]
# where the record script may lie: ../shared/reference/ beside the checkout, or shared/reference/ inside it
REFERENCES = tuple(base / "shared" / "reference" / "sp4096_record_train_gpt.py" for base in (_REPO / "..", _REPO))
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "sample_docs.jsonl.xz"
# SDPA stand-in for FlashAttention-3's flash_attn_func (layout [B, T, H, D], GQA), for the record script
FA3_SHIM = '''import torch
import torch.nn.functional as F


def flash_attn_func(q, k, v, causal=False, **_):
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=k.size(1) != q.size(1))
    return y.transpose(1, 2).contiguous()
'''


@dataclass
class Mode:
    """What a check runs: the GPU check or its CPU smoke version."""
    preset: str
    device: str
    steps: int
    train_batch_tokens: int
    micro_batch_seqs: int
    val_max_tokens: int
    bench_args: list[str]
    compile: bool
    vocab: int
    extra_train: list[str] = field(default_factory=list)


def gpu_mode(steps: int, batch_tokens: int) -> Mode:
    # micro-batch = what the record script uses at this batch on one GPU (8 accumulation steps); the
    # bench uses it too, so the training run finds its compiled graphs in inductor's cache
    micro = batch_tokens // 8 // 2048
    return Mode("seed", "cuda", steps, batch_tokens, micro, 262_144,
                ["--steps", "10", "--warmup", "3", "--micro-batch-seqs", str(micro)], True, 4096)


def smoke_mode(steps: int) -> Mode:
    # small enough for a shared 2-core box: 8 steps of 1,024 tokens, one calibration batch
    return Mode("tiny", "cpu", min(steps, 8), 1024, 4, 4096,
                ["--steps", "2", "--warmup", "1", "--micro-batch-seqs", "2", "--device", "cpu"], False, 1024,
                ["--set", "train.ema_start_step=2", "--set", "quant.calibration_batches=1",
                 "--set", "quant.calibration_batch_tokens=2048", "--set", "train.val_batch_tokens=4096"])


class Runner:
    """Runs the steps under one budget, records each step's command, status, seconds and output tail."""

    def __init__(self, out: Path, budget_s: float, echo):
        self.out, self.deadline, self.echo = out, time.monotonic() + budget_s, echo
        self.steps: dict[str, dict] = {}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, cmd: list[str], limit_s: float, env: dict | None = None, cwd=None) -> dict:
        timeout = min(limit_s, self.left())
        rec = {"command": " ".join(map(str, cmd)), "limit_s": round(timeout, 1)}
        self.steps[name] = rec
        if timeout < 5:
            rec.update(status="skipped", reason="time budget spent")
            self.echo(f"[{name}] skipped: time budget spent")
            return rec
        self.echo(f"[{name}] {rec['command']}")
        t0 = time.perf_counter()
        log = self.out / f"{name}.log"
        with open(log, "w", encoding="utf-8") as f:
            p = subprocess.Popen([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, cwd=cwd,
                                 env={**os.environ, **(env or {})}, start_new_session=True)
            try:
                p.wait(timeout)
                rec["status"], rec["rc"] = ("ok" if p.returncode == 0 else "failed"), p.returncode
            except subprocess.TimeoutExpired:
                stop_group(p)
                rec["status"] = "timeout"
        rec["seconds"] = round(time.perf_counter() - t0, 1)
        rec["log"] = str(log)
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-3:]
        self.echo(f"[{name}] {rec['status']} in {rec['seconds']} s" + ("" if rec["status"] == "ok" else
                                                                        " | " + " | ".join(tail)))
        return rec


def stop_group(p: subprocess.Popen, grace_s: float = 15.0) -> None:
    """Stop a timed-out step and its children: SIGINT first (its ``finally`` blocks clean up, e.g. the
    verifier's sandboxed process), SIGKILL to the group after ``grace_s``."""
    import signal
    for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(p.pid, sig)
            p.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def golf_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "golf", *map(str, args)]


# -- reading what the steps wrote ----------------------------------------------------------------------
def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def train_numbers(run_dir: Path) -> dict:
    """tok/s before/after the switch, time lost at it, compile priming, graphs, peak memory, val_bpb."""
    out: dict = {}
    try:
        events = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        log = (run_dir / "train.log").read_text()
    except (OSError, ValueError):
        return out
    train = [e for e in events if e["event"] == "train"]
    start = next((e for e in events if e["event"] == "start"), {})
    switch = next((e["step"] for e in events if e["event"] == "recurrence_on"), None)
    dts = {b["step"]: b["train_time_ms"] - a["train_time_ms"] for a, b in zip(train, train[1:])
           if b["step"] == a["step"] + 1}
    m = re.search(r"global_batch_tokens:(\d+)", log)
    tps = int(m.group(1)) if m else 0
    before = [dt for s, dt in dts.items() if switch is None or s <= switch]
    after = [dt for s, dt in dts.items() if switch is not None and s > switch + 1]
    if before:
        out["tok_s_before_recurrence"] = tps / (statistics.median(before) / 1000)
    if after:
        out["tok_s_after_recurrence"] = tps / (statistics.median(after) / 1000)
    if switch is not None and (switch + 1) in dts and after:
        out["recurrence_switch_ms"] = dts[switch + 1] - statistics.median(after)
    if train:
        out["tok_s_overall"] = tps * train[-1]["step"] / (train[-1]["train_time_ms"] / 1000)
        out["steps"] = train[-1]["step"]
    out["recurrence_on_step"] = switch
    for pat, key in ((r"compile_warmup: \d+ steps in (\d+)ms", "compile_priming_ms"),
                     (r"new_in_timed_loop:(\d+)", "graphs_compiled_in_timed_loop"),
                     (r"peak memory allocated: (\d+) MiB", "peak_alloc_mib")):
        m = re.search(pat, log)
        if m:
            out[key] = int(m.group(1))
    final = _json(run_dir / "final.json") or {}
    out["val_bpb"] = final.get("val_bpb")
    out["micro_batch_seqs"], out["grad_accum_steps"] = start.get("micro_batch_seqs"), start.get("accum")
    return out


def reference_tok_s(log_path: Path) -> float | None:
    """The record script's last cumulative ``tok/s:`` value."""
    try:
        vals = re.findall(r"train_time: [\d.]+m tok/s: (\d+)", log_path.read_text(errors="replace"))
    except OSError:
        return None
    return float(vals[-1]) if vals else None


# -- the steps -------------------------------------------------------------------------------------------
def prepare_data(r: Runner, mode: Mode, data: str | None) -> Path:
    """``data`` when it holds the preset's vocabulary, else a dataset built from the embedded sample."""
    from golf.data.shards import data_paths, list_shards
    if data:
        ds, tok = data_paths(data, mode.vocab, environ={})
        if list_shards(ds, "train") and list_shards(ds, "val") and Path(tok).is_file():
            r.steps["data"] = {"status": "ok", "source": str(data)}
            return Path(data)
    built = r.out / "data"
    r.run("data", golf_cmd("data", "build", "--docs", SAMPLE, "--vocab-size", mode.vocab, "--out", built,
                           "--num-val-docs", 60, "--shard-tokens", 1_000_000, "--force", "--no-progress"), 240)
    r.steps["data"]["source"] = f"built from {SAMPLE.name}"
    return built


def hessian_seconds(run_dir: str, data_dir: str, device: str) -> float:
    """Seconds ``golf build``'s Hessian collection takes for this run (the same calls, timed alone)."""
    import torch

    from golf.builder import entry, quant
    from golf.data.shards import data_paths
    from golf.device import autocast_dtype
    from golf.model.gpt import CONTROL_PATTERNS
    from golf.trainer.checkpoint import load_final_full

    cfg, state, recurrence = load_final_full(run_dir)
    dev = entry.pick_device(device)
    model = entry.build_model(cfg, state, recurrence, dev)
    ds, _ = data_paths(data_dir, cfg.model.vocab_size, environ={})
    st = model.state_dict()
    lin, emb = set(quant.linear_weights(model)), set(quant.embedding_weights(model))
    want = [n for n, t in st.items() if quant.classify(n, t, cfg.quant, CONTROL_PATTERNS, emb, lin, set())
            in ("attn", "mlp", "other", "embed")]
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    quant.collect_hessians(model, quant.calibration_batches(cfg, ds), want, dev, autocast_dtype(dev))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - t0


def run_reference(r: Runner, mode: Mode, data: Path, reference: Path, switch_step: int) -> dict:
    """The record script for the same steps / batch / micro-batch on the same GPU."""
    work = r.out / "reference"
    work.mkdir(exist_ok=True)
    env = {ENV_DATA_DIR: str(data.resolve()) + "/", "VOCAB_SIZE": str(mode.vocab), "ITERATIONS": str(mode.steps),
           "TRAIN_BATCH_TOKENS": str(mode.train_batch_tokens), "VAL_LOSS_EVERY": "0", "GPTQ_ENABLED": "0",
           "SLIDING_WINDOW_ENABLED": "0", "MAX_WALLCLOCK_SECONDS": "0", "TRAIN_LOG_EVERY": "10",
           "RECUR_START_STEP": str(switch_step), "TTT_ENABLED": "0", "RUN_ID": "golf_gpu_check"}
    try:
        __import__("flash_attn_interface")
        attn = "FlashAttention-3"
    except Exception:
        shim = work / "shim"
        shim.mkdir(exist_ok=True)
        (shim / "flash_attn_interface.py").write_text(FA3_SHIM)
        env["PYTHONPATH"] = os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])
        attn = "SDPA stand-in"
    rec = r.run("reference", [sys.executable, reference.resolve()], 200, env=env, cwd=work)
    rec["attention"] = attn
    rec["tok_s"] = reference_tok_s(r.out / "reference.log")
    return rec


def run_check(out: str | Path, *, data: str | None = None, steps: int = 300, batch_tokens: int = 196608,
              cpu_smoke: bool = False, budget_s: float = 480.0, reference: str | None = None, echo=print) -> dict:
    """Run the whole check; returns (and writes) the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    mode = smoke_mode(steps) if cpu_smoke else gpu_mode(steps, batch_tokens)
    r = Runner(out, budget_s, echo)
    t0 = time.perf_counter()
    r.run("doctor", golf_cmd("doctor", "--preset", mode.preset, "--data", data or out / "data",
                             "--json", out / "doctor.json"), 60)
    data_dir = prepare_data(r, mode, data)
    r.run("bench", golf_cmd("bench", "train", "--preset", mode.preset, *mode.bench_args,
                            "--json-out", out / "bench.json"), 180)
    run_dir, art = out / "run", out / "artifact"
    switch = max(1, round(0.35 * mode.steps))
    r.run("train", golf_cmd("train", "--preset", mode.preset, "--data", data_dir, "--run-dir", run_dir,
                            "--device", mode.device, "--iterations", mode.steps,
                            "--train-batch-tokens", mode.train_batch_tokens,
                            "--micro-batch-seqs", mode.micro_batch_seqs, "--val-loss-every", max(1, mode.steps // 2),
                            "--val-max-tokens", mode.val_max_tokens, "--train-log-every", 1,
                            "--max-wallclock-seconds", 0, "--set", f"train.recur_start_step={switch}",
                            "--compile" if mode.compile else "--no-compile", "--no-progress",
                            *mode.extra_train), 200)
    r.run("hessian", [sys.executable, "-m", "golf.trainer.gpucheck", "hessian", run_dir, data_dir, mode.device], 60)
    r.run("build", golf_cmd("build", "--checkpoint", run_dir, "--data", data_dir, "--out", art, "--device",
                            mode.device, "--val-max-tokens", mode.val_max_tokens, "--allow-oversize", "-q"), 150)
    # the verifier's own time limit ends first, so it stops its sandboxed run itself
    limit = min(150.0, r.left())
    r.run("verify", golf_cmd("verify", art, "--data", data_dir, "--device", mode.device, "--json",
                             out / VERIFY_NAME, "--val-max-tokens", mode.val_max_tokens, "--no-netns",
                             "--eval-time-limit", max(5, round(limit - 30))), limit)
    ref = Path(reference) if reference else next((p for p in REFERENCES if p.is_file()), REFERENCES[0])
    ref_rec = None
    if cpu_smoke and not reference:
        r.steps["reference"] = {"status": "skipped", "reason": "the record script needs a CUDA GPU"}
    elif not ref.is_file():
        r.steps["reference"] = {"status": "skipped", "reason": f"no record script at {ref}"}
    else:
        ref_rec = run_reference(r, mode, data_dir, ref, switch)
    summary = summarize(out, mode, r, ref_rec, time.perf_counter() - t0)
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=2, sort_keys=True), encoding="utf-8")
    (out / "gpu_check.md").write_text("\n".join(markdown(summary)) + "\n", encoding="utf-8")
    return summary


def summarize(out: Path, mode: Mode, r: Runner, ref_rec: dict | None, wall_s: float) -> dict:
    doctor = (_json(out / "doctor.json") or {}).get("verdict", {})
    bench = _json(out / "bench.json") or {}
    build = _json(out / "artifact" / REPORT_NAME) or {}
    verify = _json(out / VERIFY_NAME) or {}
    hlog = out / "hessian.log"
    m = re.search(r"hessian_s:([\d.]+)", hlog.read_text()) if hlog.is_file() else None
    timings = build.get("timings", {})
    train = train_numbers(out / "run")
    s = {"mode": "cpu-smoke" if mode.device == "cpu" else "gpu", "preset": mode.preset, "device": mode.device,
         "wall_s": round(wall_s, 1), "steps": r.steps, "doctor_problems": doctor.get("problems"),
         "bench": {k: bench.get(k) for k in ("device_name", "dtype", "compile", "tokens_per_step", "phases",
                                             "recurrence_switch_ms", "peak_tflops")},
         "train": train,
         "build": {"hessian_s": float(m.group(1)) if m else None,
                   "calibrate_quantize_s": timings.get("calibrate_quantize_s"),
                   "pack_s": timings.get("serialize_s"), "total_s": timings.get("total_s"),
                   "params": build.get("params"), "bytes_total": build.get("total_bytes") or build.get("bytes_total")},
         "verify": {"ok": verify.get("ok"), "exit_code": verify.get("exit_code"),
                    "val_bpb": (verify.get("score") or {}).get("val_bpb")}}
    if s["build"]["hessian_s"] is not None and s["build"]["calibrate_quantize_s"] is not None:
        s["build"]["gptq_s"] = max(0.0, s["build"]["calibrate_quantize_s"] - s["build"]["hessian_s"])
    if ref_rec is not None:
        s["reference"] = {"tok_s": ref_rec.get("tok_s"), "attention": ref_rec.get("attention"),
                          "status": ref_rec.get("status")}
        if ref_rec.get("tok_s") and train.get("tok_s_overall"):
            s["reference"]["golf_over_record_tok_s"] = train["tok_s_overall"] / ref_rec["tok_s"]
    # golf's own steps; the doctor's verdict and the record script's run are reported, not judged
    s["ok"] = all(v.get("status") in ("ok", "skipped") for k, v in r.steps.items() if k not in ("doctor", "reference"))
    return s


def _fmt(v, spec=",.0f") -> str:
    return "-" if v is None else format(v, spec)


def markdown(s: dict) -> list[str]:
    """The short summary ``gpu_check.md``."""
    b, t, q = s["bench"], s["train"], s["build"]
    ph = b.get("phases") or {}
    off, on = ph.get("recurrence_off", {}), ph.get("recurrence_on", {})
    lines = [f"# golf GPU check ({s['mode']}, preset {s['preset']}, {b.get('device_name') or s['device']})", "",
             f"overall: {'OK' if s['ok'] else 'FAILED STEPS'} in {s['wall_s']:.0f} s; doctor problems: "
             f"{len(s['doctor_problems'] or [])}", "", "| step | status | seconds |", "|---|---|---|"]
    lines += [f"| {k} | {v.get('status')} | {v.get('seconds', '-')} |" for k, v in s["steps"].items()]
    mfu = lambda p: "-" if p.get("mfu") is None else f"{100 * p['mfu']:.1f}%"  # noqa: E731
    lines += ["", "| number | before recurrence | after recurrence |", "|---|---|---|",
              f"| bench tok/s | {_fmt(off.get('tok_s'))} | {_fmt(on.get('tok_s'))} |",
              f"| bench MFU | {mfu(off)} | {mfu(on)} |",
              f"| bench peak alloc MiB | {_fmt(off.get('peak_alloc_mib'))} | {_fmt(on.get('peak_alloc_mib'))} |",
              f"| bench warm-up (compile) s | {_fmt(off.get('warmup_s'), '.1f')} | {_fmt(on.get('warmup_s'), '.1f')} |",
              f"| train tok/s (median step) | {_fmt(t.get('tok_s_before_recurrence'))} | "
              f"{_fmt(t.get('tok_s_after_recurrence'))} |", "",
              f"- recurrence switch: bench {_fmt(b.get('recurrence_switch_ms'), '.1f')} ms, "
              f"train {_fmt(t.get('recurrence_switch_ms'), '.1f')} ms (target <= 1000 ms)",
              f"- train: {t.get('steps')} steps, {_fmt(t.get('tok_s_overall'))} tok/s overall, compile priming "
              f"{_fmt(t.get('compile_priming_ms'))} ms, graphs compiled in the timed loop "
              f"{t.get('graphs_compiled_in_timed_loop', '-')}, peak {_fmt(t.get('peak_alloc_mib'))} MiB, "
              f"val_bpb {_fmt(t.get('val_bpb'), '.4f')}",
              f"- build: Hessians {_fmt(q.get('hessian_s'), '.2f')} s, GPTQ {_fmt(q.get('gptq_s'), '.2f')} s, "
              f"pack {_fmt(q.get('pack_s'), '.2f')} s for {_fmt(q.get('params'))} params (target GPTQ + pack <= 10 s "
              "at 35 M)",
              f"- verify: ok {s['verify'].get('ok')}, val_bpb {_fmt(s['verify'].get('val_bpb'), '.4f')}"]
    ref = s.get("reference")
    if ref:
        ratio = ref.get("golf_over_record_tok_s")
        lines.append(f"- record script ({ref.get('attention')}): {_fmt(ref.get('tok_s'))} tok/s; golf / record = "
                     f"{_fmt(ratio, '.3f')} (target >= 1.25)")
    else:
        lines.append(f"- record script: {s['steps'].get('reference', {}).get('reason', 'not run')}")
    return lines


def _gpu_command():
    import click

    @click.command("gpu")
    @click.option("--out", default="gpu_check", show_default=True, type=click.Path(file_okay=False),
                  help="Folder for gpu_check.json, gpu_check.md and every step's log.")
    @click.option("--data", default=None, help="Data root with the preset's shards (default: build from the sample).")
    @click.option("--steps", type=int, default=300, show_default=True, help="Training steps (golf and the record).")
    @click.option("--train-batch-tokens", type=int, default=196608, show_default=True,
                  help="Tokens per step for the training runs (micro-batch = this / 8 / 2048, as the record's).")
    @click.option("--budget-s", type=float, default=480.0, show_default=True, help="Total time budget in seconds.")
    @click.option("--reference", default=None, help="Record script for the side-by-side (default: "
                  "../shared/reference/sp4096_record_train_gpt.py when present; with --cpu-smoke only if given).")
    @click.option("--cpu-smoke", is_flag=True,
                  help="The same pipeline with the tiny preset on the CPU (no GPU needed).")
    def gpu(out, data, steps, train_batch_tokens, budget_s, reference, cpu_smoke):
        """One command for a GPU machine: doctor, bench train, a short training with validation,
        build (Hessian / GPTQ / pack times), verify, and the record script side by side.

        Writes OUT/gpu_check.json and OUT/gpu_check.md; exits 1 when a step failed.

        \b
        Examples:
          golf bench gpu --out gpu_check                # on one H100, <= 8 minutes
          golf bench gpu --cpu-smoke --out /tmp/smoke   # the same pipeline on a CPU
        """
        import torch
        if not cpu_smoke and not torch.cuda.is_available():
            raise click.ClickException("no CUDA GPU visible: `golf bench gpu` measures a GPU; "
                                       "use --cpu-smoke to exercise the pipeline on the CPU")
        if train_batch_tokens % (8 * 2048):
            raise click.UsageError(f"--train-batch-tokens {train_batch_tokens} must be a multiple of 8 x 2048")
        s = run_check(out, data=data, steps=steps, batch_tokens=train_batch_tokens, cpu_smoke=cpu_smoke,
                      budget_s=budget_s, reference=reference, echo=click.echo)
        click.echo("\n".join(markdown(s)))
        if not s["ok"]:
            sys.exit(1)

    return gpu


gpu_command = _gpu_command()

if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "hessian":
    print(f"hessian_s:{hessian_seconds(sys.argv[2], sys.argv[3], sys.argv[4]):.3f}")
