"""The training loop behind ``golf train`` (CPU, one GPU, T4 fp16, torchrun DDP).

``train(cfg, RunOptions(...))`` runs the recipe in ``cfg`` and writes the run directory
(DESIGN.md "Run directory"): ``config.json``, ``train.log``, ``metrics.jsonl``,
``checkpoints/step_NNNNNN.pt``, ``final_model.pt`` and ``final.json``.

A :class:`Run` goes setup -> (toolkit) restore -> announce -> compile -> priming -> loop -> finish
(or, toolkit, a pause).  The loop is step (schedule + optimizer step), report, maybe-validate and
(toolkit) maybe-checkpoint, each a method.  Everything a checkpoint carries is one entry of
``Run.state`` (the state map: model, optimizers, scaler, loader, and in the toolkit EMA, phase flags
and RNG), which checkpoints, resume and compile priming all save and restore with one loop
(``checkpoint.state_dicts`` / ``checkpoint.load_states``).
"""
from __future__ import annotations

import contextlib
import copy
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

from golf import TOOLKIT, TOP_CODE
from golf.config import GolfConfig
from golf.data.loader import TrainLoader, load_val_tokens
from golf.data.packing import DocPackLoader
from golf.data.shards import data_paths, list_shards, read_shard_header
from golf.device import RunError, resolve_device, resolve_precision
from golf.fsutil import atomic_write_json
from golf.progress import maybe_tqdm
from golf.protocol import EVAL_LINE, LABEL_TRAINED
from golf.trainer import checkpoint as ckpt
from golf.trainer.ema import EMA
from golf.trainer.optim import Optimizers
from golf.trainer.runlog import RunLog
from golf.trainer.schedule import (
    effective_cap_ms,
    in_warmdown,
    lr_multiplier,
    muon_momentum,
    recurrence_due,
    schedule_from_config,
)


class TrainError(RunError):
    """A problem with the run's inputs or settings; the message says what to change."""


@dataclass
class RunOptions:
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    if TOOLKIT:  # the rest steer toolkit-only features (not fields in train_gpt.py)
        echo: bool = True  # print log lines to stdout (they always go to RUN/train.log; train_gpt.py always prints)
        resume: str | None = None  # "auto" | checkpoint file | run dir
        resume_from_hub: str | None = None  # Hub repo id to fetch the latest checkpoint from
        stop_at_step: int = 0  # pause (checkpoint, no final eval) once this many steps are done
        progress: bool | None = None  # tqdm bar; None = only on a terminal (golf.progress)
        hub_endpoint: str | None = None  # default: HF_ENDPOINT or huggingface.co
        command: str = ""  # the command line that started the run (logged as `command: ...`)
        resume_checkpoint: tuple[Path, dict] | None = None  # (path, loaded checkpoint): resume reads it once
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
    """Seed torch (the model's initialisation) and, in the toolkit, python's and numpy's generators
    (train_gpt.py draws no python or numpy random numbers)."""
    if TOOLKIT:
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
        for i, (x, y, *docs) in enumerate(micro_batches):  # docs: [(cu_seqlens, max_seqlen)] when packed
            x = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.int64).to(self.device, non_blocking=True)
            y = torch.as_tensor(np.ascontiguousarray(y), dtype=torch.int64).to(self.device, non_blocking=True)
            if TOP_CODE and docs:
                docs = [(torch.as_tensor(docs[0][0]).to(self.device, non_blocking=True), docs[0][1])]
            sync = (self.distributed and i < accum - 1 and hasattr(self.fwd, "no_sync"))
            with (self.fwd.no_sync() if sync else contextlib.nullcontext()):
                with self._autocast():
                    loss = self.fwd(x, y, *docs)
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


# -- the run -----------------------------------------------------------------------------------
@dataclass
class Phase:
    """Where the run stands: steps done, timed training ms and the schedule points passed
    (the state map's ``flags`` entry)."""
    step: int = 0
    train_time_ms: float = 0.0
    recurrence_active: bool = False
    warmdown_started: bool = False
    ema_started: bool = False

    if TOOLKIT:  # checkpoints (compile priming does not move the phase)
        def state_dict(self) -> dict:
            return dict(self.__dict__)

        def load_state_dict(self, state: dict) -> None:
            self.__dict__.update(state)


if TOOLKIT:
    def fetch_hub_checkpoint(repo: str, run_dir: str | os.PathLike, *, endpoint: str | None = None,
                             master: bool = True) -> None:
        """The one place a run resumes from the Hub: rank 0 downloads the newest checkpoint of ``repo`` into
        ``RUN/checkpoints`` (where ``--resume auto`` finds it) while the other ranks wait."""
        if master:
            from golf.trainer.hub import download_latest
            got = download_latest(repo, ckpt.checkpoint_dir(run_dir), endpoint=endpoint)
            print(f"hub: fetched {got} from {repo}" if got else
                  f"hub: {repo} has no checkpoints yet; starting from scratch", flush=True)
        _barrier(dist.is_available() and dist.is_initialized())


def _barrier(distributed: bool) -> None:
    if distributed:
        dist.barrier()


class Run:
    """One training run: :meth:`setup`, :meth:`restore` (toolkit), :meth:`announce`, :meth:`compile`
    (+ :meth:`prime`), :meth:`loop` (:meth:`step`, :meth:`report`, :meth:`maybe_validate`,
    :meth:`maybe_checkpoint`; toolkit: inside :meth:`attended`), then :meth:`finish` (or :meth:`pause`).
    ``self.state`` is the state map."""

    def __init__(self, cfg: GolfConfig, opts: RunOptions, rank: int, world: int, device: torch.device):
        t = self.t = cfg.train
        if t.iterations <= 0:
            raise TrainError(f"train.iterations must be > 0, got {t.iterations}")
        self.cfg, self.opts, self.rank, self.world, self.device = cfg, opts, rank, world, device
        self.master, self.distributed, self.run_dir = rank == 0, world > 1, Path(t.run_dir)
        self.amp_dtype, use_scaler, prec = resolve_precision(t.dtype, device)
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        global_seqs, micro, accum = self.batch = batch_plan(t, world)
        self.dataset_dir, self.tok_path = resolve_data_paths(t.data_dir, cfg.model.vocab_size)
        self.files = list_shards(self.dataset_dir, "train")
        if t.train_shards > 0:
            self.files = self.files[:t.train_shards]
        self.cap_ms, self.sched = effective_cap_ms(t), schedule_from_config(t)
        self.tokens_per_step = global_seqs * t.train_seq_len
        self.plan_line = (f"device:{device} dtype:{prec} world_size:{world} grad_accum_steps:{accum} "
                          f"micro_batch_seqs:{micro} global_batch_tokens:{self.tokens_per_step} "
                          f"seq_len:{t.train_seq_len}")
        if TOOLKIT:
            self.resume_path = self.hub = self.bar = self.stop_path = None
            self.stopped_early = False

    def run(self) -> dict:
        """The whole run; returns the summary written to ``final.json`` (or a pause summary)."""
        saved = self.load_resume() if TOOLKIT else None
        self.log = RunLog(self.run_dir, self.master, self.opts.echo if TOOLKIT else True)
        if TOOLKIT:  # armed just before the first step, so Ctrl-C while setting up still aborts at once
            self.interrupt = ckpt.StopOnInterrupt(enabled=self.master and not self.distributed, say=self.log.line)
        try:
            self.setup()
            if TOOLKIT and saved is not None:
                self.restore(saved)
            saved = None  # free the checkpoint's tensors before training
            self.announce()
            self.compile()
            self.maybe_start_ema()
            n = self.t.compile_warmup_steps
            if self.t.compile and n > 0 and self.ph.step == 0:
                self.prime(n)
            if TOOLKIT:
                with self.attended():
                    done = self.loop()
                if not done:
                    return self.pause()
            else:
                self.loop()
            return self.finish()
        finally:
            self.log.close()

    def setup(self) -> None:
        """Seed, then build loader, validation set, model, optimizers, EMA and the state map."""
        from golf.metric import byte_source
        from golf.model.gpt import GPT, recurrence_enabled
        cfg, t, device = self.cfg, self.t, self.device
        if TOOLKIT and self.master:
            write_json_atomic(self.run_dir / "config.json", cfg.to_dict())
            for line in config_summary(cfg):
                self.log.line(line)
        seed_everything(t.seed)
        if device.type == "cuda":
            torch.cuda.manual_seed_all(t.seed)
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        V = cfg.model.vocab_size
        self.loader = (DocPackLoader if TOP_CODE and t.doc_packing else TrainLoader)(
            self.files, t.train_seq_len, rank=self.rank, world_size=self.world, vocab_size=V)
        self.val_tokens = load_val_tokens(self.dataset_dir, cfg.eval.eval_seq_len, V, t.val_max_tokens)
        if TOOLKIT:  # a tokenizer of another vocabulary gives a meaningless val_bpb: refuse it in one line
            from golf.data.pinning import PinError, check_tokenizer_vocab
            try:
                check_tokenizer_vocab(self.tok_path, V, "the model config")
            except PinError as e:
                raise TrainError(str(e)) from None
        self.luts = byte_source(self.dataset_dir, str(self.tok_path), V, len(self.val_tokens))
        self.partial = partial_val_label(self.dataset_dir, self.val_tokens, cfg.eval.eval_seq_len) if TOOLKIT else ""
        self.model = GPT(cfg.model).to(device)
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.optim = Optimizers(self.model, t, device, self.rank, self.world)
        self.ema, self.ph = EMA(t.ema_decay), Phase()
        self.recur_possible = recurrence_enabled(cfg.model)
        # the state map: what priming resets and a checkpoint holds, one entry per piece, loaded in this order
        self.state = {"model": self.model, "optimizers": self.optim, "scaler": self.scaler, "loader": self.loader}
        if TOOLKIT:  # what priming leaves alone (train_gpt.py draws no random numbers after the model is built)
            self.state.update(ema=self.ema, flags=self.ph, rng=ckpt.RNGState())
        if TOOLKIT and self.master and t.hub_repo and t.hub_every > 0:
            from golf.trainer.hub import HubSync
            self.hub = HubSync(t.hub_repo, endpoint=self.opts.hub_endpoint, private=t.hub_private, log=self.log.line,
                               staging_dir=self.run_dir / ".hub_staging")

    def announce(self) -> None:
        """The run's header lines and the ``start`` metric."""
        t, log, ph = self.t, self.log, self.ph
        log.line(f"model_params:{self.n_params}")
        log.line(self.plan_line)
        log.line(f"hardware:{hardware_summary(self.device, self.world)}")
        if TOOLKIT and self.opts.command:
            log.line(f"command: {self.opts.command}")
        log.line(f"train_shards:{len(self.files)} val_tokens:{len(self.val_tokens) - 1} dataset:{self.dataset_dir}")
        if TOOLKIT:
            if self.resume_path is not None:
                log.line(f"resumed: {self.resume_path} step:{ph.step}/{t.iterations} "
                         f"train_time:{ph.train_time_ms:.0f}ms")
            log.metric("start", model_params=self.n_params, world_size=self.world, accum=self.batch[2],
                       micro_batch_seqs=self.batch[1], step=ph.step, iterations=t.iterations,
                       resumed_from=str(self.resume_path) if self.resume_path else None)

    # -- compile and priming -------------------------------------------------------------------
    def compile(self) -> None:
        """Wrap the model for DDP and torch.compile; build the stepper over the wrapped model."""
        fwd = self.model
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP
            fwd = DDP(fwd, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.t.compile:
            fwd = torch.compile(fwd)
        self.stepper = Stepper(self.model, fwd, self.optim, self.device, self.amp_dtype, self.scaler,
                               self.t.grad_clip_norm, self.distributed)

    def prime(self, n: int) -> None:
        """Untimed torch.compile priming (SPEC §4.3 WARMUP_STEPS): ``n`` real steps (the last half with
        recurrence on, so both graphs compile), then the whole state map is put back as it was."""
        t0 = time.perf_counter()
        saved = copy.deepcopy(ckpt.state_dicts(self.state))
        for i in range(n):
            if self.recur_possible:
                self.model.set_recurrence(i >= n // 2)
            self.stepper(self.loader.next_batch(*self.batch[::2]))
        if self.recur_possible:
            self.model.set_recurrence(False)
        ckpt.load_states(self.state, saved)
        ms = 1000 * (time.perf_counter() - t0)
        self.log.line(f"compile_warmup: {n} steps in {ms:.0f}ms (not timed; state reset)")

    # -- the loop --------------------------------------------------------------------------------
    def loop(self) -> bool:
        """Step until the iterations or the clock run out; False when paused or interrupted (checkpoint saved)."""
        t, ph = self.t, self.ph
        self.model.train()
        self.last_report = ph.step, ph.train_time_ms
        while ph.step < t.iterations:
            loss = self.step()
            capped = self.cap_ms > 0 and ph.train_time_ms >= self.cap_ms
            last = capped or ph.step >= t.iterations
            self.report(loss, last)
            self.maybe_validate(last)
            if capped and ph.step < t.iterations:
                if TOOLKIT:
                    self.stopped_early = True
                self.log.event(f"stopping_early: wallclock_cap train_time:{ph.train_time_ms:.0f}ms "
                               f"step:{ph.step}/{t.iterations}",
                               TOOLKIT and dict(event="stopping_early", step=ph.step, train_time_ms=ph.train_time_ms,
                                                cap_ms=self.cap_ms))
                break
            if TOOLKIT and not last and self.maybe_checkpoint():
                return False
        return True

    def step(self) -> torch.Tensor:
        """One optimizer step: first the schedule (recurrence switch-on, LR multiplier and the warmdown point,
        Muon momentum), then the timed step and the EMA; advances the step count and the (rank-agreed) clock."""
        t, ph, log, device = self.t, self.ph, self.log, self.device
        clock = dict(elapsed_ms=ph.train_time_ms, cap_ms=self.cap_ms)
        if self.recur_possible and not ph.recurrence_active and recurrence_due(t, ph.step, **clock):
            self.model.set_recurrence(True)
            ph.recurrence_active = True
            m = self.cfg.model
            log.event(f"recurrence:on step:{ph.step}/{t.iterations} train_time:{ph.train_time_ms:.0f}ms "
                      f"layers:{m.recur_start}-{m.recur_end} loops:{m.recur_loops}",
                      TOOLKIT and dict(event="recurrence_on", step=ph.step, train_time_ms=ph.train_time_ms))
        mult = lr_multiplier(ph.step, t.iterations, **clock, **self.sched)
        mom = muon_momentum(ph.step, t.muon_momentum, t.muon_momentum_warmup_start, t.muon_momentum_warmup_steps)
        if TOOLKIT:  # for the train record
            self.mult, self.mom = mult, mom
        if not ph.warmdown_started and in_warmdown(ph.step, t.iterations, warmdown_iters=t.warmdown_iters,
                                                   warmdown_frac=t.warmdown_frac, **clock):
            ph.warmdown_started = True
            log.event(f"warmdown:start step:{ph.step}/{t.iterations} lr_mult:{mult:.4f} "
                      f"train_time:{ph.train_time_ms:.0f}ms",
                      TOOLKIT and dict(event="warmdown_start", step=ph.step, lr_mult=mult,
                                       train_time_ms=ph.train_time_ms))
        self.optim.set_schedule(mult, mom)
        t0 = time.perf_counter()
        loss = self.stepper(self.loader.next_batch(*self.batch[::2]))
        ph.step += 1
        if ph.ema_started:
            self.ema.update(self.model)
        else:
            self.maybe_start_ema()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        ph.train_time_ms += 1000.0 * (time.perf_counter() - t0)
        if self.cap_ms > 0 and self.distributed:  # ranks agree on the clock (MAX) so time-based decisions match
            tm = torch.tensor([ph.train_time_ms], dtype=torch.float64, device=device)
            dist.all_reduce(tm, op=dist.ReduceOp.MAX)
            ph.train_time_ms = float(tm.item())
        return loss

    def maybe_start_ema(self) -> None:
        t, ph = self.t, self.ph
        if not ph.ema_started and ph.step >= t.ema_start_step:
            self.ema.start(self.model)
            ph.ema_started = True
            self.log.event(f"ema:start step:{ph.step}/{t.iterations} decay:{t.ema_decay}",
                           TOOLKIT and dict(event="ema_start", step=ph.step, decay=t.ema_decay))

    def report(self, loss: torch.Tensor, last: bool) -> None:
        """The train line (steps 1-10, every ``train_log_every``, the last), the divergence check, the bar."""
        t, ph = self.t, self.ph
        if t.train_log_every > 0 and (ph.step <= 10 or ph.step % t.train_log_every == 0 or last):
            lv = loss.detach().clone()
            if self.distributed:
                dist.all_reduce(lv, op=dist.ReduceOp.AVG if self.device.type == "cuda" else dist.ReduceOp.SUM)
                if self.device.type != "cuda":
                    lv /= self.world
            lval = float(lv.item())
            s0, ms0 = self.last_report
            dt = ph.train_time_ms - ms0
            tok_s = (ph.step - s0) * self.tokens_per_step / (dt / 1000.0) if dt > 0 else 0.0
            self.last_report = ph.step, ph.train_time_ms
            avg = ph.train_time_ms / ph.step
            self.log.event(f"step:{ph.step}/{t.iterations} train_loss:{lval:.4f} "
                           f"train_time:{ph.train_time_ms:.0f}ms step_avg:{avg:.2f}ms tok/s:{tok_s:.0f}",
                           TOOLKIT and dict(event="train", step=ph.step, train_loss=lval,
                                            train_time_ms=ph.train_time_ms, step_avg_ms=avg, tok_s=tok_s,
                                            lr_mult=self.mult, muon_momentum=self.mom,
                                            recurrence=ph.recurrence_active, ema=ph.ema_started))
            if not math.isfinite(lval):
                raise TrainError(f"training diverged: train_loss is {lval} at step {ph.step} "
                                 f"(lower the learning rates or check the data)")
        if TOOLKIT and self.bar is not None:
            tok_s = self.tokens_per_step * ph.step / max(ph.train_time_ms, 1e-9) * 1000
            self.bar.update(1)
            self.bar.set_postfix_str(f"loss {float(loss):.3f} tok/s {tok_s:.0f}", refresh=False)

    def maybe_validate(self, last: bool) -> None:
        t, ph = self.t, self.ph
        if t.val_loss_every > 0 and (ph.step % t.val_loss_every == 0 or last):
            vl, vb, vms = self.run_val()
            self.log.event(f"step:{ph.step}/{t.iterations} val_loss:{vl:.4f} val_bpb:{vb:.4f} "
                           f"train_time:{ph.train_time_ms:.0f}ms step_avg:{ph.train_time_ms / ph.step:.2f}ms "
                           f"eval_time:{vms:.0f}ms{self.partial}",
                           TOOLKIT and dict(event="val", step=ph.step, val_loss=vl, val_bpb=vb,
                                            train_time_ms=ph.train_time_ms, eval_time_ms=vms))

    def run_val(self) -> tuple[float, float, float]:
        """``(val_loss, val_bpb, eval_ms)`` of the current weights on the (possibly capped) validation set."""
        from golf.metric import eval_plain, model_nll_fn
        model = self.model
        model.eval()
        try:
            L = self.cfg.eval.eval_seq_len
            res = eval_plain(model_nll_fn(model, self.amp_dtype), self.val_tokens, self.luts, L,
                             max(1, self.t.val_batch_tokens // L // self.world),
                             device=self.device, rank=self.rank, world_size=self.world)
        finally:
            model.train()
        return res.val_loss, res.val_bpb, res.elapsed_ms

    # -- the end -----------------------------------------------------------------------------------
    def finish(self) -> dict:
        """After the last step: final checkpoint, EMA weights in, final_model.pt, final validation, final.json."""
        t, ph, log, model = self.t, self.ph, self.log, self.model
        log.line(peak_memory_line(self.device))
        if TOOLKIT:
            final_ckpt = self.save()
        if self.ema.active:
            self.ema.copy_to(model)
            log.event(f"ema:applied decay:{t.ema_decay}", TOOLKIT and dict(event="ema_applied", step=ph.step))
        if TOOLKIT and self.master:
            ckpt.save_final(self.run_dir, self.cfg, model.state_dict(), ph.recurrence_active,
                            extra={"step": ph.step, "train_time_ms": ph.train_time_ms})
        if self.distributed:
            dist.barrier()
        vl, vb, vms = self.run_val()
        log.event(EVAL_LINE.format(LABEL_TRAINED, vl, vb, vms) + self.partial,
                  TOOLKIT and dict(event="final", step=ph.step, val_loss=vl, val_bpb=vb, train_time_ms=ph.train_time_ms,
                                   eval_time_ms=vms))
        summary = {"recurrence_active": ph.recurrence_active}
        if TOOLKIT:
            summary.update(self.summary(), val_loss=vl, val_bpb=vb, eval_time_ms=round(vms, 3), ema=self.ema.active,
                           val_tokens=len(self.val_tokens) - 1, seq_len=self.cfg.eval.eval_seq_len)
        if TOOLKIT and self.master:
            write_json_atomic(self.run_dir / "final.json", summary)
            if self.hub is not None:
                self.hub.push(final_ckpt, ph.step, extra={"config.json": self.run_dir / "config.json",
                                                          "final_model.pt": self.run_dir / ckpt.FINAL_NAME,
                                                          "final.json": self.run_dir / "final.json"})
                self.hub.close(log_wait=True)
        if self.opts.return_state:
            summary["state"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return summary

    if TOOLKIT:  # resume, checkpoints, pause/interrupt, progress bar: the toolkit's side of a run
        def load_resume(self) -> dict | None:
            """The checkpoint to continue from (``opts.resume``, after a Hub fetch when asked), checked against
            this run's model; None for a fresh start."""
            opts, cfg = self.opts, self.cfg
            spec = opts.resume
            if opts.resume_from_hub:
                fetch_hub_checkpoint(opts.resume_from_hub, self.run_dir, endpoint=opts.hub_endpoint, master=self.master)
                spec = spec or "auto"
            if opts.resume_checkpoint is not None:  # read by the caller (golf train takes its config from it)
                self.resume_path, saved = opts.resume_checkpoint
            else:
                self.resume_path = ckpt.resolve_resume(spec, self.run_dir) if spec else None
                if self.resume_path is None:
                    return None
                saved = ckpt.load_checkpoint(self.resume_path, map_location=self.device)
            old = GolfConfig.from_json(saved["config_json"])
            if old.model != cfg.model:
                diff = [f"model.{k}: checkpoint {getattr(old.model, k)!r} vs now {getattr(cfg.model, k)!r}"
                        for k in (f.name for f in dataclasses.fields(cfg.model))
                        if getattr(old.model, k) != getattr(cfg.model, k)]
                raise TrainError(f"{self.resume_path}: the checkpoint's model differs from this run's: "
                                 + "; ".join(diff))
            return saved

        def restore(self, saved: dict) -> None:
            """Continue from a checkpoint: every state-map entry loads its part, then the model follows the flags."""
            ckpt.load_states(self.state, saved)
            if self.ph.recurrence_active:
                self.model.set_recurrence(True)
            if self.ph.ema_started and not self.ema.active:  # checkpoint predates EMA bookkeeping
                self.ph.ema_started = False

        def save(self) -> Path | None:
            """Checkpoint the state map (rank 0), then all ranks meet: periodic, Hub, pause, interrupt and final."""
            path, ph = None, self.ph
            if self.master:
                path = ckpt.save_checkpoint(ckpt.checkpoint_path(self.run_dir, ph.step), cfg=self.cfg, state=self.state,
                                            keep=self.t.keep_checkpoints, step=ph.step, train_time_ms=ph.train_time_ms)
                self.log.metric("checkpoint", step=ph.step, path=str(path))
            _barrier(self.distributed)
            return path

        def maybe_checkpoint(self) -> bool:
            """Between steps (not after the last): periodic and Hub checkpoints, ``--stop-at-step`` and Ctrl-C
            (a checkpoint at this step boundary, then stop).  True when the run stops here."""
            t, ph, opts = self.t, self.ph, self.opts
            pause = bool(opts.stop_at_step) and ph.step >= opts.stop_at_step
            stop = self.interrupt.requested
            want_hub = self.hub is not None and ph.step % t.hub_every == 0
            if pause or stop or want_hub or (t.checkpoint_every > 0 and ph.step % t.checkpoint_every == 0):
                self.stop_path = self.save()
                if want_hub and self.stop_path is not None:
                    self.hub.push(self.stop_path, ph.step, extra={"config.json": self.run_dir / "config.json"})
            if pause or stop:
                why = "interrupted" if stop else "paused"
                self.log.event(f"{why}: step:{ph.step}/{t.iterations} train_time:{ph.train_time_ms:.0f}ms "
                               f"checkpoint:{self.stop_path} (continue with --resume auto)",
                               dict(event=why, step=ph.step, train_time_ms=ph.train_time_ms,
                                    checkpoint=str(self.stop_path)))
            return pause or stop

        def summary(self) -> dict:
            """The numbers every summary reports (``final.json``, ``train()``'s return value)."""
            ph = self.ph
            return {"steps": ph.step, "iterations": self.t.iterations, "train_time_ms": round(ph.train_time_ms, 3),
                    "model_params": self.n_params, "stopped_early": self.stopped_early, "world_size": self.world,
                    "recurrence_active": ph.recurrence_active}

        def pause(self) -> dict:
            """The end of a paused or interrupted run: no final evaluation, the Hub queue drained; the CLI
            prints the command that continues it."""
            summary = self.summary()
            summary.update(paused=True, interrupted=self.interrupt.requested, checkpoint=str(self.stop_path))
            if self.hub is not None:
                self.hub.close(log_wait=True)
            return summary

        @contextlib.contextmanager
        def attended(self):
            """Around the loop: the progress bar, Ctrl-C armed (:class:`checkpoint.StopOnInterrupt`), and
            afterwards the count of graphs torch.compile built in the timed loop (it must be 0)."""
            graphs = None
            if self.t.compile:  # graphs built so far (priming); the timed loop must add none
                from golf.device import compiled_graphs
                graphs = compiled_graphs()
            if self.master:
                self.bar = self.log.bar = maybe_tqdm(None, self.opts.progress, total=self.t.iterations,
                                                     initial=self.ph.step, unit="step", dynamic_ncols=True,
                                                     desc="train")
                self.interrupt.arm()
            try:
                yield
            finally:
                self.interrupt.disarm()
                if self.bar is not None:
                    self.bar.close()
                    self.bar = self.log.bar = None
            if graphs is not None:
                new = compiled_graphs() - graphs
                self.log.event(f"compile: graphs_after_priming:{graphs} new_in_timed_loop:{new}",
                               dict(event="compile", graphs_after_priming=graphs, new_in_timed_loop=new))


def train(cfg: GolfConfig, opts: RunOptions | None = None) -> dict:
    """Run training as configured; returns the summary written to ``final.json`` (or a pause summary:
    ``paused``, and ``interrupted`` after a Ctrl-C, with the ``checkpoint`` to continue from)."""
    opts = opts or RunOptions()
    rank, world, _, device, init_here = setup_distributed(opts.device)
    try:
        return Run(cfg, opts, rank, world, device).run()
    finally:
        if init_here:
            shutdown_distributed()
