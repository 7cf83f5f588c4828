"""``golf plan`` (and ``golf train --dry-run``): what a run costs before it runs.

Everything here is arithmetic on the config; nothing is allocated or trained:

* parameters per optimizer group, counted from the :class:`ModelConfig` shapes (the tests check
  them against ``count_params`` on the meta device);
* training FLOPs per token = 3 × forward (backward = 2 × forward), before and after the
  recurrence switch: 2 FLOPs per weight per token for every matrix product (blocks once per
  *virtual* layer, the tied/untied head, the value-embedding projection) plus attention counted
  as the full T×T products ``4·T·model_dim`` per layer, as ``torch.utils.flop_counter`` counts
  SDPA (a causal kernel does about half of that; MFU below uses the same convention);
* memory per GPU: fp32 weights and gradients, Muon momentum, AdamW moments, the fp32 EMA
  copy, and the activations autograd keeps at the micro-batch
  (per-token byte counts fitted on the saved tensors of the eager model, see
  :func:`activation_bytes_per_token`), the half-precision weight copies autocast keeps per
  layer call, and the fp32 logits gradient during the backward;
* step time = FLOPs per GPU per step / (peak TFLOP/s × MFU).  The default MFU,
  :data:`DEFAULT_MFU`, comes from the SP4096 record on 8×H100 (SPEC §7): ≈99 ms/step before
  recurrence and ≈121 ms after for 786,432 tokens, i.e. 33–34 % of 989 TFLOP/s in this
  FLOP convention; it is an assumption for every other GPU (``--mfu`` overrides it);
* steps that fit in the wallclock cap (minus the GPTQ reserve), with the recurrence switch at
  ``recur_start_step`` or ``recur_start_frac`` of progress as the loop decides it;
* the train shards those steps read and whether they are present under ``--data``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from golf.config import GolfConfig, ModelConfig, layer_schedule
from golf.errors import GolfError

GiB = 2**30
# Assumed model FLOPs utilisation (see the module docstring for where 0.33 comes from).
DEFAULT_MFU = 0.33
# Compiled (inductor) runs keep fewer activations than eager autograd: SP4096 record measured
# 30,120 MiB peak at 48x2048 tokens/GPU (SPEC §7) where the eager count below gives ~1.45x that.
COMPILED_ACTIVATION_FACTOR = 0.7
# Tokens per official train shard (the published FineWeb shards; `golf data build` default).
SHARD_TOKENS = 100_000_000


@dataclass(frozen=True)
class GpuSpec:
    name: str
    peak_tflops: float  # dense bf16 (fp16 where there is no bf16) tensor-core peak
    memory_gib: float  # usable device memory
    bf16: bool
    capability: tuple[int, int]


# The GPUs golf knows by name (peaks: vendor dense figures, no sparsity).  Matching a device
# name tries the longer keys first ("H100 PCIe" before "H100").
GPUS: dict[str, GpuSpec] = {s.name: s for s in (
    GpuSpec("T4", 65.0, 15.0, False, (7, 5)),
    GpuSpec("P100", 18.7, 16.0, False, (6, 0)),
    GpuSpec("V100", 125.0, 16.0, False, (7, 0)),
    GpuSpec("A10G", 125.0, 22.0, True, (8, 6)),
    GpuSpec("L4", 121.0, 22.0, True, (8, 9)),
    GpuSpec("L40", 181.0, 44.0, True, (8, 9)),
    GpuSpec("3090", 71.0, 24.0, True, (8, 6)),
    GpuSpec("4090", 165.0, 24.0, True, (8, 9)),
    GpuSpec("A100", 312.0, 79.0, True, (8, 0)),
    GpuSpec("H100 PCIe", 756.0, 79.0, True, (9, 0)),
    GpuSpec("H100", 989.0, 79.0, True, (9, 0)),
    GpuSpec("H200", 989.0, 139.0, True, (9, 0)),
    GpuSpec("GH200", 989.0, 94.0, True, (9, 0)),
)}

# The hardware each preset is sized for: (GPU, count).  None = the CPU.
PRESET_HARDWARE: dict[str, tuple[str | None, int]] = {
    "seed": ("H100", 1), "sp4096-record": ("H100", 8), "frontier": ("H100", 8), "8xh100": ("H100", 8),
    "tiny": (None, 1),
    "kaggle-quick": ("T4", 2), "kaggle-1h": ("T4", 2), "kaggle-12h": ("T4", 2),
    "colab-quick": ("T4", 1), "colab-1h": ("T4", 1), "colab-max": ("T4", 1),
}


# What the records' own logs measured on 8xH100 (SPEC §7): mean step ms before / after the recurrence
# switch and the steps reached in the 600 s budget; the plan prints its estimate beside them.
RECORD_LOGS: dict[str, dict[str, float]] = {
    "sp4096-record": {"before_ms": 99.0, "after_ms": 121.0, "steps": 5451},
    "frontier": {"before_ms": 96.5, "after_ms": 141.0, "steps": 4931},
}


class PlanError(ValueError, GolfError):
    """A plan that cannot be made (unknown GPU, inconsistent batch); the message says which input."""


def gpu_spec(name: str, memory_gib: float | None = None) -> GpuSpec:
    """The spec of a GPU named like ``T4`` or ``NVIDIA H100 80GB HBM3`` (memory from the device if given)."""
    for key in sorted(GPUS, key=len, reverse=True):
        if key.lower() in name.lower():
            spec = GPUS[key]
            if memory_gib is not None:
                spec = GpuSpec(spec.name, spec.peak_tflops, memory_gib, spec.bf16, spec.capability)
            return spec
    raise PlanError(f"unknown GPU {name!r} (known: {', '.join(GPUS)}); pass --peak-tflops and --memory-gib")


def detected_spec(name: str, memory_gib: float, capability: tuple[int, int]) -> GpuSpec:
    """The spec of a visible GPU; one golf has no peak for gets peak 0 (memory judged, no step time)."""
    try:
        return gpu_spec(name, memory_gib)
    except PlanError:
        return GpuSpec(name, 0.0, memory_gib, capability[0] >= 8, tuple(capability))


# -- model arithmetic ------------------------------------------------------------------------------
def virtual_layers(m: ModelConfig, recurrent: bool) -> int:
    return len(layer_schedule(m, recurrent))


def _widths(m: ModelConfig) -> tuple[int, int, int]:
    """(model_dim, kv width, MLP hidden width)."""
    return m.model_dim, m.num_kv_heads * m.head_dim, int(m.mlp_mult * m.model_dim)


def param_counts(m: ModelConfig) -> dict[str, int]:
    """Parameters per optimizer group (``matrix`` = Muon, ``embed``, ``scalar``) and ``total``."""
    from golf.model.gpt import num_skips
    d, kv, hid = _widths(m)
    block_mm = 2 * d * d + 2 * d * kv + 2 * d * hid  # q, proj, k, v, fc, mlp proj
    n_route = sum(1 for i in range(m.num_layers)
                  if m.parallel_mode == "route" and 0 <= m.parallel_start_layer <= i)
    if m.parallel_mode == "top" and m.parallel_start_layer >= 0:
        n_route = m.num_layers  # the record's layout: lane weights for every layer
    scalar = m.num_layers * (m.num_heads + 2 * d + (2 * d if m.resid_mix else 0)) + 6 * n_route
    scalar += m.num_layers * m.num_heads * m.gate_window if m.sparse_attn_gate else 0
    scalar += m.gate_window + 1 if m.smear_gate else 0
    n_skip = num_skips(m)
    scalar += n_skip * d * (2 if m.skip_gates else 1)
    scalar += 1 if m.parallel_start_layer >= 0 and m.parallel_mode == "merge" else 0
    matrix = m.num_layers * block_mm
    embed = m.vocab_size * d * (1 if m.tie_embeddings else 2)
    if m.ve_enabled:
        matrix += m.ve_dim * kv
        embed += m.vocab_size * m.ve_dim
        scalar += 1 + len(m.ve_layers)
    return {"matrix": matrix, "embed": embed, "scalar": scalar, "total": matrix + embed + scalar}


def flops_per_token(cfg: GolfConfig, recurrent: bool) -> dict[str, float]:
    """Training FLOPs per token (3 × forward): ``matmul``, ``attention`` and ``total``."""
    m = cfg.model
    d, kv, hid = _widths(m)
    n_virt = virtual_layers(m, recurrent)
    fwd_mm = 2.0 * (n_virt * (2 * d * d + 2 * d * kv + 2 * d * hid) + m.vocab_size * d
                    + (m.ve_dim * kv if m.ve_enabled else 0))
    fwd_attn = 4.0 * n_virt * cfg.train.train_seq_len * d
    return {"matmul": 3 * fwd_mm, "attention": 3 * fwd_attn, "total": 3 * (fwd_mm + fwd_attn)}


def activation_bytes_per_token(m: ModelConfig, label: str, recurrent: bool) -> float:
    """Bytes autograd keeps per token in the eager model for precision ``label`` (fp32|bf16|fp16).

    Per virtual layer ``a·d + b·hid + c·kv`` elements (fitted on the saved tensors of the eager
    model, exact to ~2 % over model widths 64-512), plus the embedding/logits ends ``8·V`` bytes
    (fp32 soft-capped logits) and a few residual vectors.
    """
    d, kv, hid = _widths(m)
    n_virt = virtual_layers(m, recurrent)
    if label == "fp32":
        layer, ends = 4 * (11 * d + 3 * hid + 3 * kv + 3 * m.num_heads), 8 * m.vocab_size + 12 * d
    elif label == "fp16":  # residual stream and norms stay fp32
        layer, ends = 2 * (17 * d + 3 * hid + 4 * kv), 8 * m.vocab_size + 10 * d
    else:
        layer, ends = 2 * (15 * d + 3 * hid + 4 * kv), 8 * m.vocab_size + 8 * d
    if m.ve_enabled:
        ends += 2 * (m.ve_dim + kv) * (2 if label == "fp32" else 1)
    return float(n_virt * layer + ends)


def cast_weight_bytes(m: ModelConfig, label: str, recurrent: bool) -> float:
    """Half-precision copies of the matrices that autocast makes and autograd keeps: one per
    *virtual* layer call (a looped layer is cast again), plus the head; none in fp32."""
    if label == "fp32":
        return 0.0
    d, kv, hid = _widths(m)
    n_virt = virtual_layers(m, recurrent)
    return 2.0 * (n_virt * (2 * d * d + 2 * d * kv + 2 * d * hid) + m.vocab_size * d
                  + (m.ve_dim * kv if m.ve_enabled else 0))


def precision_label(dtype: str, gpu: GpuSpec | None) -> str:
    """What ``train.dtype`` resolves to on ``gpu`` (None = CPU), as ``resolve_precision`` decides it."""
    if gpu is None:
        return "bf16" if dtype == "bf16" else "fp32"
    if dtype == "auto":
        return "bf16" if gpu.bf16 else "fp16"
    return dtype


def memory_estimate(cfg: GolfConfig, micro_seqs: int, label: str, recurrent: bool = True,
                    compiled: bool | None = None) -> dict[str, float]:
    """Estimated peak bytes per GPU: weights, grads, optimizer, EMA, activations, logits grad, total."""
    p = param_counts(cfg.model)
    tokens = micro_seqs * cfg.train.train_seq_len
    compiled = cfg.train.compile if compiled is None else compiled
    act = activation_bytes_per_token(cfg.model, label, recurrent) * tokens
    if compiled:
        act *= COMPILED_ACTIVATION_FACTOR
    out = {
        "weights": 4.0 * p["total"],
        "grads": 4.0 * p["total"],
        # Muon: one fp32 momentum per matrix; AdamW: two fp32 moments
        "optimizer": 4.0 * p["matrix"] + 8.0 * (p["embed"] + p["scalar"]),
        "ema": 4.0 * p["total"],
        "activations": act,
        "weight_casts": cast_weight_bytes(cfg.model, label, recurrent),
        "logits_grad": 4.0 * cfg.model.vocab_size * tokens,
    }
    out["total"] = sum(out.values())
    return out


# -- time and data ---------------------------------------------------------------------------------
def steps_in_cap(cfg: GolfConfig, ms_off: float, ms_on: float) -> dict:
    """Steps the run makes: until ``iterations`` or the wallclock cap, recurrence switching as the loop does."""
    from golf.model.gpt import recurrence_enabled
    from golf.trainer.schedule import effective_cap_ms
    t = cfg.train
    cap = effective_cap_ms(t)
    recur = recurrence_enabled(cfg.model)
    if not recur:
        switch = t.iterations
    elif t.recur_start_step > 0:
        switch = min(t.recur_start_step, t.iterations)
    elif t.recur_start_frac <= 0:
        switch = 0
    else:  # progress = max(step fraction, time fraction)
        switch = min(math.ceil(t.recur_start_frac * t.iterations),
                     math.ceil(t.recur_start_frac * cap / ms_off) if cap > 0 else t.iterations)
    if cap > 0:
        switch = min(switch, math.ceil(cap / ms_off))
    time_off = switch * ms_off
    left = t.iterations - switch
    if cap > 0:
        left = min(left, max(0, math.ceil((cap - time_off) / ms_on)))
    steps = switch + left
    return {"steps": steps, "steps_before_recurrence": switch, "cap_ms": cap, "train_ms": time_off + left * ms_on,
            "capped": cap > 0 and steps < t.iterations}


def shard_plan(cfg: GolfConfig, tokens_needed: float, data_dir: str | None) -> dict:
    """Train shards the run reads and which are present (``data_dir`` None: not checked)."""
    from golf.data.shards import ShardError, data_paths, list_shards, read_shard_header
    need = max(1, math.ceil(tokens_needed / SHARD_TOKENS))
    out = {"tokens_needed": int(tokens_needed), "shards_needed": need, "shard_tokens": SHARD_TOKENS,
           "train_shards_setting": cfg.train.train_shards, "data_dir": data_dir}
    if cfg.train.train_shards > 0 and cfg.train.train_shards < need:
        out["note"] = (f"train.train_shards={cfg.train.train_shards} < {need} needed: the loader wraps around "
                       f"({tokens_needed / (cfg.train.train_shards * SHARD_TOKENS):.1f} passes)")
    if data_dir is None:
        return out
    dataset, tok = data_paths(data_dir, cfg.model.vocab_size)
    present = 0
    for f in list_shards(dataset, "train"):
        try:
            present += read_shard_header(f)
        except ShardError:
            continue
    out.update({"dataset_dir": str(dataset), "train_shards_present": len(list_shards(dataset, "train")),
                "train_tokens_present": present, "val_present": bool(list_shards(dataset, "val")),
                "tokenizer_present": Path(tok).is_file()})
    out["enough"] = out["val_present"] and out["tokenizer_present"] and present > 0 and (
        present >= tokens_needed or cfg.train.train_shards > 0)
    return out


def default_hardware(cfg: GolfConfig) -> tuple[GpuSpec | None, int, str]:
    """(GPU, count, where it came from): the visible GPUs, else what the preset is sized for."""
    import torch
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return detected_spec(props.name, props.total_memory / GiB, (props.major, props.minor)), \
            torch.cuda.device_count(), "detected"
    name, count = PRESET_HARDWARE.get(cfg.preset, ("H100", 1))
    return (GPUS[name] if name else None), count, f"assumed for preset {cfg.preset} (no GPU visible)"


def make_plan(cfg: GolfConfig, gpu: GpuSpec | None = None, world: int | None = None, mfu: float | None = None,
              data_dir: str | None = None, source: str = "named") -> dict:
    """The whole plan as a JSON-able dict; ``gpu`` None with ``source`` "cpu" plans a CPU run."""
    from golf.model.gpt import recurrence_enabled
    from golf.trainer.loop import TrainError, batch_plan
    if gpu is None and source != "cpu":
        gpu, count, source = default_hardware(cfg)
        world = world or count
    world = world or 1
    try:
        global_seqs, micro, accum = batch_plan(cfg.train, world)
    except TrainError as e:
        raise PlanError(str(e)) from None
    mfu = DEFAULT_MFU if mfu is None else mfu
    label = precision_label(cfg.train.dtype, gpu)
    tokens_step = global_seqs * cfg.train.train_seq_len
    recur = recurrence_enabled(cfg.model)
    plan = {"preset": cfg.preset, "params": param_counts(cfg.model), "world_size": world,
            "gpu": gpu.name if gpu else "cpu", "gpu_source": source, "dtype": label,
            "tokens_per_step": tokens_step, "micro_batch_seqs": micro, "grad_accum_steps": accum,
            "seq_len": cfg.train.train_seq_len, "mfu": mfu, "compile": cfg.train.compile,
            "virtual_layers": {"before": virtual_layers(cfg.model, False), "after": virtual_layers(cfg.model, True)},
            "flops_per_token": {"before": flops_per_token(cfg, False), "after": flops_per_token(cfg, True)},
            "memory": memory_estimate(cfg, micro, label, recurrent=recur),
            "memory_gib_available": gpu.memory_gib if gpu else None}
    tokens = cfg.train.iterations * tokens_step
    if gpu is not None:
        plan["fits_memory"] = plan["memory"]["total"] <= gpu.memory_gib * GiB
        plan["max_micro_batch_seqs"] = max_micro_batch(cfg, gpu, label, world)
    if gpu is not None and gpu.peak_tflops > 0:
        rate = gpu.peak_tflops * 1e12 * mfu
        ms = {k: 1000.0 * v["total"] * tokens_step / world / rate for k, v in plan["flops_per_token"].items()}
        plan["step_ms"] = ms
        plan["peak_tflops"] = gpu.peak_tflops
        plan["run"] = steps_in_cap(cfg, ms["before"], ms["after"] if recur else ms["before"])
        if cfg.preset in RECORD_LOGS and gpu.name == "H100" and world == 8:
            plan["record_log"] = RECORD_LOGS[cfg.preset]
        tokens = plan["run"]["steps"] * tokens_step
    plan["shards"] = shard_plan(cfg, tokens, data_dir)
    return plan


def max_micro_batch(cfg: GolfConfig, gpu: GpuSpec, label: str, world: int = 1) -> int:
    """Largest micro-batch (sequences) that divides the per-GPU batch and whose estimate fits
    ``gpu``'s memory (0: not even one sequence fits)."""
    fixed = memory_estimate(cfg, 0, label)["total"]
    per_seq = memory_estimate(cfg, 1, label)["total"] - fixed
    fits = int((gpu.memory_gib * GiB - fixed) // per_seq)
    per_rank = max(1, cfg.train.train_batch_tokens // max(cfg.train.train_seq_len, 1) // world)
    return max([m for m in range(1, min(fits, per_rank) + 1) if per_rank % m == 0], default=0)


# -- report ----------------------------------------------------------------------------------------
def _gib(b: float) -> str:
    return f"{b / GiB:.2f} GiB"


def format_plan(plan: dict) -> list[str]:
    """The plan as the lines ``golf plan`` prints."""
    p, f, mem = plan["params"], plan["flops_per_token"], plan["memory"]
    vl = plan["virtual_layers"]
    lines = [
        f"plan: preset {plan['preset']} on {plan['world_size']}x{plan['gpu']} ({plan['gpu_source']}), "
        f"dtype {plan['dtype']}, compile {plan['compile']}",
        f"params: {p['total']:,} (matrix {p['matrix']:,}, embed {p['embed']:,}, scalar {p['scalar']:,})",
        f"flops/token (train, 3x forward): before recurrence {f['before']['total'] / 1e6:.1f} M "
        f"({vl['before']} layers), after {f['after']['total'] / 1e6:.1f} M ({vl['after']} layers); "
        f"attention {f['before']['attention'] / f['before']['total']:.0%} of it, counted as full TxT",
        f"batch: {plan['tokens_per_step']:,} tokens/step = {plan['world_size']} process x {plan['grad_accum_steps']} "
        f"accum x {plan['micro_batch_seqs']} seqs x {plan['seq_len']}",
        f"memory/GPU (estimate, micro-batch {plan['micro_batch_seqs']}x{plan['seq_len']}): weights "
        f"{_gib(mem['weights'])}, grads {_gib(mem['grads'])}, optimizer {_gib(mem['optimizer'])}, "
        f"ema {_gib(mem['ema'])}, activations {_gib(mem['activations'])}, weight casts "
        f"{_gib(mem['weight_casts'])}, logits grad "
        f"{_gib(mem['logits_grad'])} = {_gib(mem['total'])}",
    ]
    if "fits_memory" in plan:
        fit = "fits" if plan["fits_memory"] else "DOES NOT FIT"
        lines.append(f"memory: {fit} in {plan['memory_gib_available']:.0f} GiB (largest micro-batch that fits: "
                     f"{plan['max_micro_batch_seqs']} seqs)")
    if plan.get("step_ms"):
        ms, run = plan["step_ms"], plan["run"]
        lines.append(f"step time at {plan['mfu']:.0%} MFU of {plan['peak_tflops']:.0f} TFLOP/s: "
                     f"{ms['before']:.1f} ms before recurrence, {ms['after']:.1f} ms after; "
                     f"tok/s {plan['tokens_per_step'] / ms['before'] * 1000:,.0f} / "
                     f"{plan['tokens_per_step'] / ms['after'] * 1000:,.0f}")
        cap = f"{run['cap_ms'] / 1000:.0f} s cap" if run["cap_ms"] > 0 else "no cap"
        capped = "; stops at the cap before iterations" if run["capped"] else ""
        lines.append(f"run: {run['steps']:,} steps in {run['train_ms'] / 1000:.0f} s ({cap}; recurrence from step "
                     f"{run['steps_before_recurrence']:,}){capped}")
        log = plan.get("record_log")
        if log:
            rb, ra = ms["before"] / log["before_ms"], ms["after"] / log["after_ms"]
            lines.append(f"record's log (8xH100): {log['before_ms']:.1f} ms before recurrence, {log['after_ms']:.1f} "
                         f"ms after, {log['steps']:,.0f} steps; this plan is x{rb:.2f} / x{ra:.2f} of its step times "
                         f"(MFU there {plan['mfu'] * rb:.0%} / {plan['mfu'] * ra:.0%})")
    s = plan["shards"]
    line = f"data: {s['tokens_needed']:,} train tokens = {s['shards_needed']} shards of {s['shard_tokens']:,}"
    if "dataset_dir" in s:
        line += (f"; present in {s['dataset_dir']}: {s['train_shards_present']} train shards "
                 f"({s['train_tokens_present']:,} tokens), val {'yes' if s['val_present'] else 'NO'}, "
                 f"tokenizer {'yes' if s['tokenizer_present'] else 'NO'}")
    lines.append(line)
    if s.get("note"):
        lines.append("data: " + s["note"])
    return lines


# -- command ---------------------------------------------------------------------------------------
def plan_for(cfg: GolfConfig, gpu_name: str | None, gpus: int | None, mfu: float | None, data_dir: str | None,
             peak_tflops: float | None = None, memory_gib: float | None = None) -> dict:
    """``make_plan`` for a GPU given by name ("cpu" plans a CPU run; None = detected or preset's)."""
    if gpu_name and gpu_name.lower() == "cpu":
        return make_plan(cfg, None, gpus or 1, mfu, data_dir, source="cpu")
    spec = gpu_spec(gpu_name) if gpu_name else None
    if spec is None and peak_tflops is None and memory_gib is None:
        return make_plan(cfg, None, gpus, mfu, data_dir, source="detected")
    spec = spec or default_hardware(cfg)[0] or GPUS["H100"]
    spec = GpuSpec(spec.name, peak_tflops or spec.peak_tflops, memory_gib or spec.memory_gib, spec.bf16,
                   spec.capability)
    return make_plan(cfg, spec, gpus or 1, mfu, data_dir, source="named")


def _gpu_names() -> str:
    return ", ".join(GPUS)


def plan_options(f):
    """The hardware options ``golf plan`` and ``golf train --dry-run`` share."""
    import click
    for opt in reversed((
        click.option("--gpu", "gpu_name", default=None, metavar="NAME|cpu",
                     help=f"Plan for this GPU ({_gpu_names()}) or cpu; default: the visible GPU, "
                          "else the one the preset is sized for."),
        click.option("--gpus", type=int, default=None, help="GPUs (processes) sharing the batch; default: "
                     "visible GPUs, else the preset's."),
        click.option("--mfu", type=float, default=None, help=f"Assumed model FLOPs utilisation [{DEFAULT_MFU}]."),
        click.option("--peak-tflops", type=float, default=None, help="Override the GPU's peak dense TFLOP/s."),
        click.option("--memory-gib", type=float, default=None, help="Override the GPU's memory in GiB."),
    )):
        f = opt(f)
    return f


def echo_plan(cfg: GolfConfig, gpu_name, gpus, mfu, peak_tflops, memory_gib, data_dir, json_out=None) -> dict:
    """Make the plan, print it, optionally write it as JSON; PlanError becomes a one-line click error."""
    import click

    from golf.fsutil import atomic_write_json
    if mfu is not None and not 0 < mfu <= 1:
        raise click.UsageError(f"--mfu must be in (0, 1], got {mfu}")
    try:
        plan = plan_for(cfg, gpu_name, gpus, mfu, data_dir, peak_tflops, memory_gib)
    except PlanError as e:
        raise click.ClickException(str(e)) from None
    for line in format_plan(plan):
        click.echo(line)
    if json_out:
        atomic_write_json(json_out, plan, sort_keys=True)
    return plan


def _plan_command():
    import click

    from golf.presets import PRESETS

    @click.command("plan")
    @click.option("--preset", type=click.Choice(list(PRESETS)), default="seed", show_default=True)
    @click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
                  help="Plan a saved config JSON (e.g. RUN/config.json) instead of a preset.")
    @click.option("--set", "sets", multiple=True, metavar="SECTION.NAME=VALUE", help="Override config fields.")
    @click.option("--data", "data_dir", default=None, help="Data root to check for the shards the run needs.")
    @plan_options
    @click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write the plan as JSON.")
    def plan(preset, config_file, sets, data_dir, gpu_name, gpus, mfu, peak_tflops, memory_gib, json_out):
        """Estimate a run without training: parameters, FLOPs/token before and after recurrence,
        batch split, peak memory per GPU, step time at an assumed MFU, steps in the wallclock cap,
        and the shards it reads.

        \b
        Examples:
          golf plan --preset seed --gpu H100
          golf plan --preset kaggle-1h --gpu T4 --gpus 2 --data ./data
          golf plan --preset seed --gpu T4 --set train.micro_batch_seqs=4
        """
        from golf.config import ConfigError
        from golf.resolve import parse_sets, resolve_config
        try:
            cfg, _ = resolve_config(preset, config_file, sets=parse_sets(sets), environ={})
        except ConfigError as e:
            raise click.UsageError(str(e)) from None
        echo_plan(cfg, gpu_name, gpus, mfu, peak_tflops, memory_gib, data_dir or cfg.train.data_dir, json_out)

    return plan


plan_command = _plan_command()
