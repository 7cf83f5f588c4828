"""``golf bench train``: training throughput on random tokens, before and after recurrence.

FLOPs per step are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one eager
micro-step (forward + backward, attention included) and scaled to the step; if that fails,
the estimate ``6·params·tokens + 12·layers·seq·dim·tokens`` (layers = virtual layers) is used.
MFU = achieved FLOP/s / peak dense bf16 (fp16 on T4) FLOP/s of the GPU.
"""
from __future__ import annotations

import contextlib
import time

import torch

from golf.config import GolfConfig
from golf.device import RunError, resolve_device, resolve_precision
from golf.errors import GolfError
from golf.trainer.loop import Optimizers, Stepper, numel_params, seed_everything

PEAK_TFLOPS = {  # dense bf16/fp16 tensor-core peaks
    "H100": 989.0, "H200": 989.0, "GH200": 989.0, "A100": 312.0, "A10G": 125.0, "L4": 121.0, "L40": 181.0,
    "4090": 165.0, "3090": 71.0, "T4": 65.0, "V100": 125.0, "P100": 18.7,
}


class BenchError(RuntimeError, GolfError):
    pass


def guess_peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    if "H100" in name and "PCIe" in name:
        return 756.0
    for key, val in PEAK_TFLOPS.items():
        if key in name:
            return val
    return None


def _virtual_layers(cfg: GolfConfig, recurrent: bool) -> int:
    m = cfg.model
    n = m.num_layers
    if recurrent and m.recur_start >= 0 and m.recur_loops > 0:
        n += (m.recur_end - m.recur_start + 1) * m.recur_loops
    return n


def estimate_flops(cfg: GolfConfig, n_params: int, tokens: int, recurrent: bool) -> float:
    m = cfg.model
    L_phys, L_virt = m.num_layers, _virtual_layers(cfg, recurrent)
    emb = m.vocab_size * m.model_dim
    block = max(n_params - emb, 0) / max(L_phys, 1)
    eff = emb + block * L_virt
    T = cfg.train.train_seq_len
    return 6.0 * eff * tokens + 12.0 * L_virt * T * m.model_dim * tokens


def count_flops(model, x, y, amp_dtype) -> float | None:
    try:
        from torch.utils.flop_counter import FlopCounterMode
        model.zero_grad(set_to_none=True)
        ctx = torch.autocast(x.device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
        with FlopCounterMode(display=False) as fc:
            with ctx:
                loss = model(x, y)
            loss.float().backward()
        model.zero_grad(set_to_none=True)
        return float(fc.get_total_flops())
    except Exception:
        model.zero_grad(set_to_none=True)
        return None


def run_bench(cfg: GolfConfig, *, steps: int = 20, warmup: int = 5, micro_batch_seqs: int | None = None,
              accum: int = 1, device: str = "auto", compile: bool | None = None, peak_tflops: float | None = None,
              echo=print) -> dict:
    from golf.model.gpt import GPT

    try:
        dev = resolve_device(device)
    except RunError as e:
        raise BenchError(str(e)) from None
    if dev.type != "cuda" and cfg.preset != "tiny":
        raise BenchError(f"no CUDA GPU (device {dev}): `golf bench train --preset {cfg.preset}` measures GPU "
                         "throughput. For a CPU smoke run use `golf bench train --preset tiny --device cpu`.")
    t = cfg.train
    amp_dtype, use_scaler, label = resolve_precision(t.dtype, dev)
    L = t.train_seq_len
    micro = micro_batch_seqs or t.micro_batch_seqs or max(1, t.train_batch_tokens // L)
    seed_everything(t.seed)
    model = GPT(cfg.model).to(dev)
    n_params = numel_params(model)
    optim = Optimizers(model, t, dev)
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    use_compile = (dev.type == "cuda") if compile is None else compile
    fwd = torch.compile(model) if use_compile else model
    stepper = Stepper(model, fwd, optim, dev, amp_dtype, scaler, t.grad_clip_norm, False)
    optim.set_schedule(1.0, t.muon_momentum)
    gen = torch.Generator().manual_seed(t.seed)
    tokens_per_step = micro * accum * L

    def batch():
        xs = torch.randint(0, cfg.model.vocab_size, (accum, micro, L + 1), generator=gen)
        return [(xs[i, :, :-1].numpy(), xs[i, :, 1:].numpy()) for i in range(accum)]

    echo(f"bench: preset {cfg.preset} params {n_params:,} device {dev} "
         f"({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}) dtype {label} compile {use_compile} "
         f"micro {micro}x{L} accum {accum} = {tokens_per_step:,} tokens/step")
    peak = peak_tflops or guess_peak_tflops(dev)
    phases = [False]
    if hasattr(model, "set_recurrence") and cfg.model.recur_start >= 0 and cfg.model.recur_loops > 0:
        phases.append(True)
    results = {"preset": cfg.preset, "params": n_params, "device": str(dev), "dtype": label,
               "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
               "compile": use_compile, "tokens_per_step": tokens_per_step, "phases": {}}
    for rec in phases:
        if hasattr(model, "set_recurrence"):
            model.set_recurrence(rec)
        name = "recurrence_on" if rec else "recurrence_off"
        xs = torch.randint(0, cfg.model.vocab_size, (1, L + 1), generator=gen).to(dev)
        flops1 = count_flops(model, xs[:, :-1], xs[:, 1:], amp_dtype)
        flops_step = flops1 * micro * accum if flops1 else estimate_flops(cfg, n_params, tokens_per_step, rec)
        try:
            for _ in range(warmup):
                stepper(batch())
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
                torch.cuda.reset_peak_memory_stats(dev)
            batches = [batch() for _ in range(steps)]
            t0 = time.perf_counter()
            for b in batches:
                stepper(b)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            dt = time.perf_counter() - t0
        except torch.cuda.OutOfMemoryError as e:
            raise BenchError(f"out of GPU memory with micro-batch {micro}x{L}: lower --micro-batch-seqs "
                             f"({str(e).splitlines()[0]})") from None
        ms = 1000.0 * dt / steps
        tok_s = tokens_per_step * steps / dt
        r = {"ms_per_step": ms, "tok_s": tok_s, "flops_per_step": flops_step,
             "flops_source": "FlopCounterMode" if flops1 else "estimate"}
        if dev.type == "cuda":
            r["peak_alloc_mib"] = torch.cuda.max_memory_allocated(dev) / 2**20
            r["peak_reserved_mib"] = torch.cuda.max_memory_reserved(dev) / 2**20
        tflops = flops_step * steps / dt / 1e12
        r["tflops"] = tflops
        r["mfu"] = tflops / peak if peak else None
        results["phases"][name] = r
        mem = (f" peak memory allocated: {r['peak_alloc_mib']:.0f} MiB reserved: {r['peak_reserved_mib']:.0f} MiB"
               if dev.type == "cuda" else "")
        mfu = f" MFU {100 * r['mfu']:.1f}% of {peak:.0f} TFLOP/s" if r["mfu"] is not None else ""
        echo(f"{name}: {ms:.2f} ms/step  tok/s {tok_s:,.0f}  {tflops:.1f} TFLOP/s ({r['flops_source']}){mfu}{mem}")
    results["peak_tflops"] = peak
    return results
