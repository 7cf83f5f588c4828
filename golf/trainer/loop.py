"""The training loop behind ``golf train`` (CPU, one GPU, T4 fp16, torchrun DDP).

``train(cfg, RunOptions(...))`` runs the recipe in ``cfg`` and writes the run directory
(DESIGN.md "Run directory"): ``config.json``, ``train.log``, ``metrics.jsonl``,
``checkpoints/step_NNNNNN.pt``, ``final_model.pt`` and ``final.json``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from golf import TOOLKIT
from golf.config import GolfConfig
from golf.data.loader import TrainLoader, load_val_tokens
from golf.data.shards import data_paths, list_shards, read_shard_header
from golf.device import RunError, resolve_device, resolve_precision
from golf.fsutil import atomic_write_json
from golf.progress import maybe_tqdm
from golf.trainer import checkpoint as ckpt
from golf.trainer.ema import EMA
from golf.trainer.optim import Optimizers
from golf.trainer.runlog import RunLog
from golf.trainer.schedule import (effective_cap_ms, in_warmdown, lr_multiplier, muon_momentum, progress,
                                   schedule_from_config)


class TrainError(RunError):
    """A problem with the run's inputs or settings; the message says what to change."""


@dataclass
class RunOptions:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    echo: bool = True  # print log lines to stdout (they always go to RUN/train.log)
    if TOOLKIT:  # the rest steer toolkit-only features (not fields in train_gpt.py)
        resume: str | None = None  # "auto" | checkpoint file | run dir
        resume_from_hub: str | None = None  # Hub repo id to fetch the latest checkpoint from
        stop_at_step: int = 0  # pause (checkpoint, no final eval) once this many steps are done
        progress: bool | None = None  # tqdm bar; None = only on a terminal (golf.progress)
        hub_endpoint: str | None = None  # default: HF_ENDPOINT or huggingface.co
        command: str = ""  # the command line that started the run (logged as `command: ...`)
    return_state: bool = False  # put the final (post-EMA) state dict in the summary under "state"


# -- setup helpers ---------------------------------------------------------------------
def resolve_data_paths(data_dir: str | os.PathLike, vocab_size: int) -> tuple[Path, Path]:
    """``(dataset_dir, tokenizer_path)`` for a data root (or a dataset dir), checked for training."""
    dataset, tok = data_paths(data_dir, vocab_size)
    if not list_shards(dataset, "train"):
        hint = "get them with `golf data download` or `golf data build`, or pass --data DIR" if TOOLKIT else \
            "set DATA_DIR or DATA_PATH"  # train_gpt.py has no CLI: env vars only
        raise TrainError(f"no training shards for vocab {vocab_size}: expected {dataset}/fineweb_train_*.bin ({hint})")
    if not tok.is_file():
        raise TrainError(f"tokenizer not found: {tok} (needed for val_bpb; set TOKENIZER_PATH to override)")
    return dataset, tok


def batch_plan(tcfg, world_size: int) -> tuple[int, int, int]:
    """``(global_seqs, micro_seqs, accum_steps)`` keeping the global batch independent of world size."""
    L, B = tcfg.train_seq_len, tcfg.train_batch_tokens
    if L <= 0 or B <= 0 or B % L:
        raise TrainError(f"train_batch_tokens={B} must be a positive multiple of train_seq_len={L}")
    global_seqs = B // L
    if global_seqs % world_size:
        raise TrainError(f"the global batch of {global_seqs} sequences does not split over {world_size} processes")
    per_rank = global_seqs // world_size
    micro = tcfg.micro_batch_seqs if tcfg.micro_batch_seqs > 0 else per_rank
    micro = min(micro, per_rank)
    if per_rank % micro:
        raise TrainError(f"micro_batch_seqs={micro} must divide the per-process batch of {per_rank} sequences "
                         f"({global_seqs} sequences / {world_size} processes)")
    return global_seqs, micro, per_rank // micro


def setup_distributed(device_spec: str) -> tuple[int, int, int, torch.device, bool]:
    """Init torch.distributed when launched by torchrun; ``(rank, world, local_rank, device, initialized_here)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec, local_rank)
    init_here = False
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        init_here = True
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return rank, world, local_rank, device, init_here


def shutdown_distributed() -> None:
    """Barrier, then destroy the process group (tearing gloo down while a peer is busy can abort)."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def config_summary(cfg: GolfConfig) -> list[str]:
    d = cfg.to_dict()
    lines = [f"preset:{cfg.preset}"]
    for section in ("model", "train", "eval", "quant"):
        items = " ".join(f"{k}={v}" for k, v in d[section].items())
        lines.append(f"config.{section}: {items}")
    return lines


def numel_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def hardware_summary(device: torch.device, world: int) -> str:
    """E.g. ``8xNVIDIA H100 80GB HBM3`` or ``1xCPU (2 threads)``."""
    if device.type == "cuda":
        return f"{world}x{torch.cuda.get_device_name(device)}"
    return f"{world}xCPU ({torch.get_num_threads()} threads)"


def peak_memory_line(device: torch.device) -> str:
    if device.type == "cuda":
        alloc = torch.cuda.max_memory_allocated(device) // 2**20
        reserved = torch.cuda.max_memory_reserved(device) // 2**20
        return f"peak memory allocated: {alloc} MiB reserved: {reserved} MiB"
    try:
        import resource
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux
    except Exception:  # pragma: no cover - non-POSIX
        rss = 0
    return f"peak memory allocated: {rss} MiB reserved: {rss} MiB (cpu: peak RSS)"


def write_json_atomic(path: Path, obj) -> None:
    atomic_write_json(path, obj, sort_keys=True)


def partial_val_label(dataset_dir: Path, val_tokens, seq_len: int) -> str:
    """`` (partial: N of M val tokens)`` when ``val_max_tokens`` cut the validation set, so a
    train-time val_bpb is not mistaken for the full-set number `golf build` reports; else ``""``."""
    full = (sum(read_shard_header(f) for f in list_shards(dataset_dir, "val")) - 1) // seq_len * seq_len
    n = len(val_tokens) - 1
    return f" (partial: {n:,} of {full:,} val tokens)" if n < full else ""


# -- one optimizer step ----------------------------------------------------------------------
class Stepper:
    """Forward/backward over the micro-batches of one step, clipping and the optimizer step."""

    def __init__(self, model, fwd_model, optim: Optimizers, device: torch.device, amp_dtype, scaler,
                 grad_clip: float, distributed: bool):
        self.model, self.fwd, self.optim = model, fwd_model, optim
        self.device, self.amp_dtype, self.scaler = device, amp_dtype, scaler
        self.grad_clip, self.distributed = grad_clip, distributed

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def __call__(self, micro_batches) -> torch.Tensor:
        """Returns this rank's mean loss over the step (detached)."""
        accum = len(micro_batches)
        total = torch.zeros((), device=self.device, dtype=torch.float32)
        for i, (x, y) in enumerate(micro_batches):
            x = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.int64).to(self.device, non_blocking=True)
            y = torch.as_tensor(np.ascontiguousarray(y), dtype=torch.int64).to(self.device, non_blocking=True)
            sync = (self.distributed and i < accum - 1 and hasattr(self.fwd, "no_sync"))
            with (self.fwd.no_sync() if sync else contextlib.nullcontext()):
                with self._autocast():
                    loss = self.fwd(x, y)
                scaled = loss.float() / accum
                if self.scaler is not None:
                    scaled = self.scaler.scale(scaled)
                scaled.backward()
            total += loss.detach().float()
        if self.scaler is not None:
            self.optim.unscale_(self.scaler)
        if self.grad_clip and self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optim.step(self.scaler)
        if self.scaler is not None:
            self.scaler.update()
        self.optim.zero_grad()
        return total / accum


def _prime_compile(model, optim, scaler, stepper, loader, global_seqs, accum, n, recur_possible, log) -> None:
    """Untimed torch.compile priming (SPEC §4.3 WARMUP_STEPS): run ``n`` real steps (the last half
    with recurrence on, so both graphs compile), then restore weights, optimizer, scaler, loader, RNG."""
    import copy
    t0 = time.perf_counter()
    saved = (copy.deepcopy(model.state_dict()), copy.deepcopy(optim.state_dict()),
             copy.deepcopy(scaler.state_dict()) if scaler is not None else None, loader.state_dict(), ckpt.rng_state())
    for i in range(n):
        if recur_possible:
            model.set_recurrence(i >= n // 2)
        stepper(loader.next_batch(global_seqs, accum))
    if recur_possible:
        model.set_recurrence(False)
    model.load_state_dict(saved[0])
    optim.load_state_dict(saved[1])
    if scaler is not None:
        scaler.load_state_dict(saved[2])
    loader.load_state_dict(saved[3])
    ckpt.set_rng_state(saved[4])
    log.line(f"compile_warmup: {n} steps in {1000 * (time.perf_counter() - t0):.0f}ms (not timed; state reset)")


# -- the run -----------------------------------------------------------------------------------
def train(cfg: GolfConfig, opts: RunOptions | None = None) -> dict:
    """Run training as configured; returns the summary written to ``final.json`` (or a pause summary)."""
    opts = opts or RunOptions()
    rank, world, local_rank, device, init_here = setup_distributed(opts.device)
    try:
        return _train(cfg, opts, rank, world, device)
    finally:
        if init_here:
            shutdown_distributed()


def _barrier(distributed: bool) -> None:
    if distributed:
        dist.barrier()


def _train(cfg: GolfConfig, opts: RunOptions, rank: int, world: int, device: torch.device) -> dict:
    from golf.metric import build_byte_luts, eval_plain, model_nll_fn
    from golf.model.gpt import GPT, recurrence_enabled

    t = cfg.train
    master = rank == 0
    distributed = world > 1
    run_dir = Path(t.run_dir)
    if t.iterations <= 0:
        raise TrainError(f"train.iterations must be > 0, got {t.iterations}")
    amp_dtype, use_scaler, prec_label = resolve_precision(t.dtype, device)
    global_seqs, micro_seqs, accum = batch_plan(t, world)
    dataset_dir, tok_path = resolve_data_paths(t.data_dir, cfg.model.vocab_size)
    files = list_shards(dataset_dir, "train")
    if t.train_shards > 0:
        files = files[:t.train_shards]

    # resume target (Hub download on rank 0 first)
    resume_path = state = None
    if TOOLKIT and opts.resume_from_hub:
        if master:
            from golf.trainer.hub import download_latest
            got = download_latest(opts.resume_from_hub, ckpt.checkpoint_dir(run_dir), endpoint=opts.hub_endpoint)
            if got is None and opts.resume is None:
                print(f"hub: no checkpoints in {opts.resume_from_hub} yet; starting from scratch", flush=True)
        _barrier(distributed)
        opts = dataclasses.replace(opts, resume=opts.resume or "auto")
    if TOOLKIT and opts.resume:
        resume_path = ckpt.resolve_resume(opts.resume, run_dir)
        state = ckpt.load_checkpoint(resume_path, map_location=device) if resume_path else None
    if TOOLKIT and state is not None:
        old = GolfConfig.from_json(state["config_json"])
        if old.model != cfg.model:
            diff = [f"model.{f.name}: checkpoint {getattr(old.model, f.name)!r} vs now {getattr(cfg.model, f.name)!r}"
                    for f in dataclasses.fields(cfg.model) if getattr(old.model, f.name) != getattr(cfg.model, f.name)]
            raise TrainError(f"{resume_path}: the checkpoint's model differs from this run's: " + "; ".join(diff))

    log = RunLog(run_dir, enabled=master, echo=opts.echo)
    if TOOLKIT:  # armed just before the first step, so Ctrl-C while setting up still aborts at once
        interrupt = ckpt.StopOnInterrupt(enabled=master and not distributed, say=log.line)
    try:
        if TOOLKIT and master:
            write_json_atomic(run_dir / "config.json", cfg.to_dict())
            for line in config_summary(cfg):
                log.line(line)
        seed_everything(t.seed)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(t.seed)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        loader = TrainLoader(files, t.train_seq_len, rank=rank, world_size=world, vocab_size=cfg.model.vocab_size)
        val_tokens = load_val_tokens(dataset_dir, cfg.eval.eval_seq_len, cfg.model.vocab_size, t.val_max_tokens)
        if TOOLKIT:  # a tokenizer of another vocabulary gives a meaningless val_bpb: refuse it in one line
            from golf.data.pinning import PinError, check_tokenizer_vocab
            try:
                check_tokenizer_vocab(tok_path, cfg.model.vocab_size, "the model config")
            except PinError as e:
                raise TrainError(str(e)) from None
        luts = build_byte_luts(str(tok_path), cfg.model.vocab_size)
        val_batch_seqs = max(1, t.val_batch_tokens // cfg.eval.eval_seq_len // world)
        partial = partial_val_label(dataset_dir, val_tokens, cfg.eval.eval_seq_len) if TOOLKIT else ""

        model = GPT(cfg.model).to(device)
        n_params = sum(p.numel() for p in model.parameters())
        optim = Optimizers(model, t, device, rank, world)
        scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        ema = EMA(t.ema_decay)
        step, train_ms = 0, 0.0
        flags = {"recurrence_active": False, "warmdown_started": False, "ema_started": False}
        if TOOLKIT and state is not None:
            model.load_state_dict(state["model"])
            optim.load_state_dict(state["optimizers"])
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            if state.get("ema"):
                ema.load_state_dict(state["ema"])
            loader.load_state_dict(state["loader"])
            flags.update(state.get("flags") or {})
            step, train_ms = int(state["step"]), float(state["train_time_ms"])
            ckpt.set_rng_state(state["rng"])
            if flags["recurrence_active"]:
                model.set_recurrence(True)
            del state
        recur_possible = recurrence_enabled(cfg.model)

        log.line(f"model_params:{n_params}")
        log.line(f"device:{device} dtype:{prec_label} world_size:{world} grad_accum_steps:{accum} "
                 f"micro_batch_seqs:{micro_seqs} global_batch_tokens:{global_seqs * t.train_seq_len} "
                 f"seq_len:{t.train_seq_len}")
        log.line(f"hardware:{hardware_summary(device, world)}")
        if TOOLKIT and opts.command:
            log.line(f"command: {opts.command}")
        log.line(f"train_shards:{len(files)} val_tokens:{len(val_tokens) - 1} dataset:{dataset_dir}")
        if TOOLKIT and resume_path is not None:
            log.line(f"resumed: {resume_path} step:{step}/{t.iterations} train_time:{train_ms:.0f}ms")
        if TOOLKIT:
            log.metric("start", model_params=n_params, world_size=world, accum=accum, micro_batch_seqs=micro_seqs,
                       step=step, iterations=t.iterations, resumed_from=str(resume_path) if resume_path else None)

        fwd_model = model
        if distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP
            fwd_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        if t.compile:
            fwd_model = torch.compile(fwd_model)
        stepper = Stepper(model, fwd_model, optim, device, amp_dtype, scaler, t.grad_clip_norm, distributed)

        cap_ms = effective_cap_ms(t)
        sched = schedule_from_config(t)
        tokens_per_step = global_seqs * t.train_seq_len
        hub = None
        if TOOLKIT and master and t.hub_repo and t.hub_every > 0:
            from golf.trainer.hub import HubSync
            hub = HubSync(t.hub_repo, endpoint=opts.hub_endpoint, private=t.hub_private, log=log.line,
                          staging_dir=run_dir / ".hub_staging")

        def run_val() -> tuple[float, float, float]:
            model.eval()
            try:
                res = eval_plain(model_nll_fn(model, amp_dtype), val_tokens, luts, cfg.eval.eval_seq_len,
                                 val_batch_seqs, device=device, rank=rank, world_size=world)
            finally:
                model.train()
            return res.val_loss, res.val_bpb, res.elapsed_ms

        if TOOLKIT:
            def save_ckpt() -> Path | None:
                path = None
                if master:
                    path = ckpt.save_checkpoint(
                        ckpt.checkpoint_path(run_dir, step), cfg=cfg, step=step, train_time_ms=train_ms,
                        model_state=model.state_dict(), ema_state=ema.state_dict() if ema.active else None,
                        optim_state=optim.state_dict(), scaler_state=scaler.state_dict() if scaler else None,
                        loader_state=loader.state_dict(), flags=dict(flags), keep=t.keep_checkpoints)
                    log.metric("checkpoint", step=step, path=str(path))
                _barrier(distributed)
                return path

        def maybe_start_ema() -> None:
            if not flags["ema_started"] and step >= t.ema_start_step:
                ema.start(model)
                flags["ema_started"] = True
                log.line(f"ema:start step:{step}/{t.iterations} decay:{t.ema_decay}")
                if TOOLKIT:
                    log.metric("ema_start", step=step, decay=t.ema_decay)

        if TOOLKIT and flags["ema_started"] and not ema.active:  # checkpoint predates EMA bookkeeping
            flags["ema_started"] = False
        maybe_start_ema()

        if t.compile and t.compile_warmup_steps > 0 and step == 0:
            _prime_compile(model, optim, scaler, stepper, loader, global_seqs, accum, t.compile_warmup_steps,
                           recur_possible, log)
        if TOOLKIT and t.compile:  # graphs built so far; the timed loop must add none
            from golf.trainer.bench import compiled_graphs
            graphs_primed = compiled_graphs()

        bar = None
        if TOOLKIT and master:
            bar = log.bar = maybe_tqdm(None, opts.progress, total=t.iterations, initial=step, unit="step",
                                       dynamic_ncols=True, desc="train")
            interrupt.arm()

        model.train()
        paused = stopped_early = False
        stop_path = None
        last_log_step, last_log_ms = step, train_ms
        while step < t.iterations:
            # recurrence switch-on (before the step that crosses the configured fraction)
            if recur_possible and not flags["recurrence_active"]:
                frac = progress(step, t.iterations, train_ms, cap_ms)
                due = step >= t.recur_start_step if t.recur_start_step > 0 else \
                    (t.recur_start_frac <= 0 or frac >= t.recur_start_frac)
                if due:
                    model.set_recurrence(True)
                    flags["recurrence_active"] = True
                    log.line(f"recurrence:on step:{step}/{t.iterations} train_time:{train_ms:.0f}ms "
                             f"layers:{cfg.model.recur_start}-{cfg.model.recur_end} loops:{cfg.model.recur_loops}")
                    if TOOLKIT:
                        log.metric("recurrence_on", step=step, train_time_ms=train_ms)
            mult = lr_multiplier(step, t.iterations, elapsed_ms=train_ms, cap_ms=cap_ms, **sched)
            mom = muon_momentum(step, t.muon_momentum, t.muon_momentum_warmup_start, t.muon_momentum_warmup_steps)
            if not flags["warmdown_started"] and in_warmdown(step, t.iterations, elapsed_ms=train_ms, cap_ms=cap_ms,
                                                            warmdown_iters=t.warmdown_iters,
                                                            warmdown_frac=t.warmdown_frac):
                flags["warmdown_started"] = True
                log.line(f"warmdown:start step:{step}/{t.iterations} lr_mult:{mult:.4f} train_time:{train_ms:.0f}ms")
                if TOOLKIT:
                    log.metric("warmdown_start", step=step, lr_mult=mult, train_time_ms=train_ms)
            optim.set_schedule(mult, mom)

            t0 = time.perf_counter()
            micro = loader.next_batch(global_seqs, accum)
            loss = stepper(micro)
            step += 1
            if flags["ema_started"]:
                ema.update(model)
            else:
                maybe_start_ema()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            train_ms += 1000.0 * (time.perf_counter() - t0)
            if cap_ms > 0 and distributed:  # ranks agree on the clock (MAX) so time-based decisions match
                tm = torch.tensor([train_ms], dtype=torch.float64, device=device)
                dist.all_reduce(tm, op=dist.ReduceOp.MAX)
                train_ms = float(tm.item())
            reached_cap = cap_ms > 0 and train_ms >= cap_ms
            last = step >= t.iterations or reached_cap

            should_log = t.train_log_every > 0 and (step <= 10 or step % t.train_log_every == 0 or last)
            if should_log:
                lv = loss.detach().clone()
                if distributed:
                    dist.all_reduce(lv, op=dist.ReduceOp.AVG if device.type == "cuda" else dist.ReduceOp.SUM)
                    if device.type != "cuda":
                        lv /= world
                lval = float(lv.item())
                dt = train_ms - last_log_ms
                tok_s = (step - last_log_step) * tokens_per_step / (dt / 1000.0) if dt > 0 else 0.0
                last_log_step, last_log_ms = step, train_ms
                log.line(f"step:{step}/{t.iterations} train_loss:{lval:.4f} train_time:{train_ms:.0f}ms "
                         f"step_avg:{train_ms / step:.2f}ms tok/s:{tok_s:.0f}")
                if TOOLKIT:
                    log.metric("train", step=step, train_loss=lval, train_time_ms=train_ms,
                               step_avg_ms=train_ms / step, tok_s=tok_s, lr_mult=mult, muon_momentum=mom,
                               recurrence=flags["recurrence_active"], ema=flags["ema_started"])
                if not math.isfinite(lval):
                    raise TrainError(f"training diverged: train_loss is {lval} at step {step} "
                                     f"(lower the learning rates or check the data)")
            if TOOLKIT and bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"loss {float(loss):.3f} tok/s {tokens_per_step * step / max(train_ms, 1e-9) * 1000:.0f}",
                                    refresh=False)

            if t.val_loss_every > 0 and (step % t.val_loss_every == 0 or last):
                vl, vb, vms = run_val()
                log.line(f"step:{step}/{t.iterations} val_loss:{vl:.4f} val_bpb:{vb:.4f} train_time:{train_ms:.0f}ms "
                         f"step_avg:{train_ms / step:.2f}ms eval_time:{vms:.0f}ms{partial}")
                if TOOLKIT:
                    log.metric("val", step=step, val_loss=vl, val_bpb=vb, train_time_ms=train_ms, eval_time_ms=vms)

            if reached_cap and step < t.iterations:
                stopped_early = True
                log.line(f"stopping_early: wallclock_cap train_time:{train_ms:.0f}ms step:{step}/{t.iterations}")
                if TOOLKIT:
                    log.metric("stopping_early", step=step, train_time_ms=train_ms, cap_ms=cap_ms)
            if TOOLKIT:
                pause = bool(opts.stop_at_step) and step >= opts.stop_at_step and not last
                stop = interrupt.requested and not last  # Ctrl-C: checkpoint at this step boundary, then stop
                want_ckpt = t.checkpoint_every > 0 and step % t.checkpoint_every == 0 and not last
                want_hub = hub is not None and step % t.hub_every == 0 and not last
                if pause or stop or want_ckpt or want_hub:
                    stop_path = save_ckpt()
                    if want_hub and stop_path is not None:
                        hub.push(stop_path, step, extra={"config.json": run_dir / "config.json"})
                if pause or stop:
                    paused = True
                    why = "interrupted" if stop else "paused"
                    log.line(f"{why}: step:{step}/{t.iterations} train_time:{train_ms:.0f}ms checkpoint:{stop_path} "
                             f"(continue with --resume auto)")
                    log.metric(why, step=step, train_time_ms=train_ms, checkpoint=str(stop_path))
                    break
            if stopped_early:
                break

        if TOOLKIT:
            interrupt.disarm()
            if bar is not None:
                bar.close()
                log.bar = None
        if TOOLKIT and t.compile:
            new_graphs = compiled_graphs() - graphs_primed
            log.line(f"compile: graphs_after_priming:{graphs_primed} new_in_timed_loop:{new_graphs}")
            log.metric("compile", graphs_after_priming=graphs_primed, new_in_timed_loop=new_graphs)
        summary: dict = {"recurrence_active": flags["recurrence_active"]}  # what train_gpt.py needs (+ "state")
        if TOOLKIT:  # the rest is for final.json and golf's callers
            summary.update(steps=step, iterations=t.iterations, train_time_ms=round(train_ms, 3), model_params=n_params,
                           stopped_early=stopped_early, world_size=world)
        if TOOLKIT and paused:
            summary.update(paused=True, interrupted=interrupt.requested, checkpoint=str(stop_path))
            if hub is not None:
                hub.close(log_wait=True)
            return summary

        log.line(peak_memory_line(device))
        final_ckpt = save_ckpt() if TOOLKIT else None
        if ema.active:
            ema.copy_to(model)
            log.line(f"ema:applied decay:{t.ema_decay}")
            if TOOLKIT:
                log.metric("ema_applied", step=step)
        if TOOLKIT and master:
            ckpt.save_final(run_dir, cfg, model.state_dict(), flags["recurrence_active"],
                            extra={"step": step, "train_time_ms": train_ms})
        _barrier(distributed)
        vl, vb, vms = run_val()
        log.line(f"final_model val_loss:{vl:.8f} val_bpb:{vb:.8f} eval_time:{vms:.0f}ms{partial}")
        if TOOLKIT:
            summary.update(val_loss=vl, val_bpb=vb, eval_time_ms=round(vms, 3), ema=ema.active,
                           val_tokens=len(val_tokens) - 1, seq_len=cfg.eval.eval_seq_len)
        if TOOLKIT and master:
            log.metric("final", step=step, val_loss=vl, val_bpb=vb, train_time_ms=train_ms, eval_time_ms=vms)
            write_json_atomic(run_dir / "final.json", summary)
            if hub is not None:
                hub.push(final_ckpt, step, extra={"config.json": run_dir / "config.json",
                                                  "final_model.pt": run_dir / ckpt.FINAL_NAME,
                                                  "final.json": run_dir / "final.json"})
                hub.close(log_wait=True)
        if opts.return_state:
            summary["state"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return summary
    finally:
        if TOOLKIT:
            interrupt.disarm()
        log.close()
