"""The GPU code paths, exercised on the CPU: torch.compile (inductor), bf16 autocast, fp16 + GradScaler.

* ``compile`` (marked; inductor compiles C++ kernels, minutes on a shared 2-core box, so these run in
  their own ``.ci/run`` step with a time budget: ``python -m pytest -q -m compile``): a real
  ``golf train --compile`` of a 4-layer tiny model must give eager's per-step losses within 1e-4
  (measured: 2.4e-6 at most; inductor reorders fp32 reductions) over a run that crosses the recurrence
  switch, and after the untimed priming the timed loop must compile no new graph (torch._dynamo's
  ``unique_graphs`` counter, logged by the loop).
* bf16 autocast on the CPU: the bf16 residual stream, loss close to fp32, a real ``golf train --dtype bf16``.
* The T4 path (fp16 autocast + GradScaler) through golf's ``Stepper`` with CPU autocast and a CPU
  GradScaler: losses close to fp32, an overflowing scale skips the step and backs off.  Not covered
  on the CPU: CUDA's fp16 kernels (tensor cores, SDPA's fp16 kernels on sm_75), the T4's 15 GiB,
  fused CUDA AdamW, NCCL between two T4s; ``golf train --dtype fp16`` itself refuses the CPU
  (``resolve_precision``), so the CLI path is left to ``golf bench gpu`` on a GPU.
The 2-process gloo DDP test stays in test_trainer.py.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from golf.cli import main
from golf.model.gpt import GPT
from golf.presets import preset_config
from golf.trainer.loop import Optimizers, Stepper, seed_everything

SMALL = ("--set", "model.num_layers=4", "--set", "model.recur_start=1", "--set", "model.recur_end=1",
         "--set", "model.parallel_start_layer=3")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run_cli(args):
    env = {"ITERATIONS": None, "TRAIN_SEQ_LEN": None, "HF_ENDPOINT": None}
    res = CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def train_args(data, run_dir, *extra):
    return ["train", "--preset", "tiny", "--data", data["data_dir"], "--run-dir", run_dir, "--device", "cpu",
            "--iterations", 6, "--train-batch-tokens", 1024, "--val-max-tokens", 2048, "--warmdown-iters", 2,
            "--set", "train.val_batch_tokens=2048", "--set", "train.recur_start_frac=0.5",
            "--train-log-every", 1, "--val-loss-every", 0, "--no-progress", *SMALL, *extra]


def losses(run_dir: Path) -> dict[int, float]:
    events = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {e["step"]: e["train_loss"] for e in events if e["event"] == "train"}


@pytest.mark.compile
def test_compiled_training_equals_eager_and_compiles_nothing_after_priming(tiny_data, tmp_path):
    eager, comp = tmp_path / "eager", tmp_path / "compiled"
    run_cli(train_args(tiny_data, eager))
    res = run_cli(train_args(tiny_data, comp, "--compile", "--set", "train.compile_warmup_steps=2"))
    log = (comp / "train.log").read_text()
    assert "recurrence:on step:3/6" in log  # the run crosses the switch with both graphs primed
    assert "compile: graphs_after_priming:2 new_in_timed_loop:0" in log, res.output
    le, lc = losses(eager), losses(comp)
    assert sorted(le) == sorted(lc) == list(range(1, 7))
    for step in le:
        assert abs(lc[step] - le[step]) <= 1e-4, (step, lc[step], le[step])


def _stepper(amp_dtype, scaler, seed=0):
    cfg = preset_config("tiny")
    seed_everything(seed)
    model = GPT(cfg.model)
    model.set_recurrence(True)
    optim = Optimizers(model, cfg.train)
    optim.set_schedule(1.0, 0.9)
    return model, Stepper(model, model, optim, torch.device("cpu"), amp_dtype, scaler, 0.3, False)


def _batches(n, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 1024, (n, 4, 65), generator=g)
    return [[(x[i, :, :-1].numpy(), x[i, :, 1:].numpy())] for i in range(n)]


def _run(amp_dtype, scaler=None, n=3):
    model, stepper = _stepper(amp_dtype, scaler)
    return [float(stepper(b)) for b in _batches(n)], model


def test_bf16_autocast_on_cpu():
    ref, _ = _run(None)
    got, model = _run(torch.bfloat16)
    assert all(np.isfinite(got))
    assert got == pytest.approx(ref, abs=0.05)  # bf16 has 8 mantissa bits; 3 steps, loss ~7
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = model.hidden(torch.zeros(1, 8, dtype=torch.long))
    assert h.dtype == torch.bfloat16  # the residual stream runs in bf16, as on the GPU


def test_bf16_training_run_on_cpu(tiny_data, tmp_path):
    run_cli(train_args(tiny_data, tmp_path, "--dtype", "bf16", "--iterations", 2))
    log = (tmp_path / "train.log").read_text()
    assert "dtype:bf16" in log and "final_model val_loss:" in log
    assert all(np.isfinite(list(losses(tmp_path).values())))


def test_fp16_autocast_with_grad_scaler_on_cpu():
    """The T4 recipe: fp16 autocast, fp32 residual stream, GradScaler."""
    ref, _ = _run(None)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    got, model = _run(torch.float16, scaler)
    assert all(np.isfinite(got)) and got == pytest.approx(ref, abs=0.05)
    assert scaler.get_scale() == 2.0**10  # no overflow, no back-off
    with torch.autocast("cpu", dtype=torch.float16):
        h = model.hidden(torch.zeros(1, 8, dtype=torch.long))
    assert h.dtype == torch.float32  # fp16 autocast keeps the residual stream in fp32 (overflow safety)


def test_grad_scaler_skips_an_overflowing_step_and_backs_off():
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)  # scaled loss overflows fp16 in the backward
    model, stepper = _stepper(torch.float16, scaler)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss = stepper(_batches(1)[0])
    assert np.isfinite(float(loss))
    assert scaler.get_scale() == 2.0**39
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # step skipped


@pytest.mark.compile
def test_doctor_try_compile_compiles_for_real(tiny_data):
    res = CliRunner().invoke(main, ["doctor", "--preset", "tiny", "--data", str(tiny_data["data_dir"]),
                                    "--try-compile"], env={"HF_ENDPOINT": None}, catch_exceptions=False)
    assert "torch.compile: works" in res.output and "test compile ok" in res.output, res.output
