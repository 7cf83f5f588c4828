"""``golf train`` and ``golf bench train``."""
from __future__ import annotations

import inspect
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import click

from golf.config import CHOICES, ENV_VARS, ConfigError, GolfConfig
from golf.presets import PRESET_HELP, PRESETS
from golf.protocol import EXIT_INTERRUPTED
from golf.resolve import parse_sets, resolve_config, train_flag_overrides
from golf.settings import FLAG_KEYS, train_setting_options


class _RawArgsCommand(click.Command):
    """Remembers the raw argument list (so ``--nproc`` can relaunch the same command under torchrun)."""

    def parse_args(self, ctx, args):
        ctx.meta["golf.raw_args"] = list(args)
        return super().parse_args(ctx, args)


def _command_line(raw: list[str]) -> str:
    """The command as typed, with the official env vars that were set in front (for logs/READMEs)."""
    env = [f"{n}={os.environ[n]}" for n in ENV_VARS if os.environ.get(n, "") != ""]
    return shlex.join(["golf", "train", *raw]) if not env else " ".join(env) + " " + shlex.join(["golf", "train", *raw])


def _sets(sets: tuple[str, ...]) -> dict[str, str]:
    try:
        return parse_sets(sets)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None


def _resolved(preset: str | None, config_file: str | None, sets: dict[str, str], flags: dict,
              base: GolfConfig | None = None) -> tuple[GolfConfig, list[str]]:
    """:func:`golf.resolve.resolve_config` for ``golf train``'s options; a bad value is a usage error."""
    try:
        return resolve_config(preset, config_file, sets=sets, flags=train_flag_overrides(flags, FLAG_KEYS),
                              base=base)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None


def preflight(cfg: GolfConfig) -> list[str]:
    """Checks that need neither torch nor the model, run before either is loaded (an error in
    seconds, not after the model is built): every shard header the run will read, the
    tokenizer (the settings themselves were checked by :func:`resolve_config`).  Raises a
    :class:`GolfError` naming the problem; returns warnings (e.g. a run that would be all warmdown)."""
    from golf.data.shards import ShardError, data_paths, list_shards, read_shard_header

    t = cfg.train
    dataset, tok = data_paths(t.data_dir, cfg.model.vocab_size)
    train_files = list_shards(dataset, "train")
    if not train_files:
        raise ShardError(f"no training shards for vocab {cfg.model.vocab_size}: expected "
                         f"{dataset}/fineweb_train_*.bin (get them with `golf data download` or `golf data build`, "
                         "or pass --data DIR)")
    val_files = list_shards(dataset, "val")
    if not val_files:
        raise ShardError(f"{dataset}: no validation shards (fineweb_val_*.bin)")
    for f in train_files[:t.train_shards] if t.train_shards > 0 else train_files:
        read_shard_header(f)
    val_tokens = sum(read_shard_header(f) for f in val_files)
    if val_tokens < cfg.eval.eval_seq_len + 1:
        raise ShardError(f"{dataset}: the validation shards hold {val_tokens} tokens, fewer than one "
                         f"sequence of eval_seq_len={cfg.eval.eval_seq_len}+1")
    if not tok.is_file():
        raise ShardError(f"tokenizer not found: {tok} (needed for val_bpb; set TOKENIZER_PATH to override)")
    return schedule_warnings(t)


def schedule_warnings(t) -> list[str]:
    """A warmdown as long as the run leaves no full-LR phase: golf does not rescale it, it warns."""
    if t.warmdown_frac <= 0 and t.warmdown_iters >= t.iterations:
        return [f"warmdown_iters={t.warmdown_iters} >= iterations={t.iterations}: the whole run is in warmdown "
                f"(the LR starts at {min(1.0, t.iterations / t.warmdown_iters):.0%} of its peak and only falls); "
                f"pass --warmdown-iters {max(1, int(0.3 * t.iterations))} (30%) or fewer for a full-LR phase"]
    return []


def resume_command(raw: list[str]) -> str:
    """The command that continues this run from its latest checkpoint: the same arguments (and
    environment settings) with any ``--resume X`` replaced by ``--resume auto``."""
    args, skip = [], False
    for a in raw:
        if skip:
            skip = False
        elif a == "--resume":
            skip = True
        elif not a.startswith("--resume="):
            args.append(a)
    return _command_line([*args, "--resume", "auto"])


_PRESET_LIST = "\n".join(f"  {k:<14} {v}" for k, v in PRESET_HELP.items())


@click.command("train", cls=_RawArgsCommand, context_settings={"show_default": True})
@click.option("--preset", type=click.Choice(list(PRESETS)), default=None,
              help="Named model/run preset (default: seed; when resuming, the checkpoint's own config).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False),
              help="Start from a saved config JSON (e.g. a previous RUN/config.json) instead of a preset.")
@click.option("--set", "sets", multiple=True, metavar="SECTION.NAME=VALUE",
              help="Set any config field, e.g. --set model.num_layers=9 --set train.matrix_lr=0.03 (repeatable); "
                   "every setting is listed in docs/settings.md.")
@train_setting_options
@click.option("--device", default="auto", help="auto | cpu | cuda | cuda:N.")
@click.option("--resume", default=None, metavar="auto|PATH",
              help="Continue from a checkpoint: 'auto' = latest in RUN/checkpoints (fresh start if none), "
                   "or a checkpoint file / run directory.")
@click.option("--resume-from-hub", default=None, metavar="REPO",
              help="Download the latest checkpoint of this Hub model repo first, then resume [RESUME_FROM_HUB=1 "
                   "uses HUB_REPO]. Token from HF_TOKEN.")
@click.option("--stop-at-step", type=int, default=0, help="Pause after this many steps with a checkpoint "
              "(schedule unchanged; continue later with --resume auto). 0 = off.")
@click.option("--nproc", type=int, default=1, help="Processes (GPUs) to launch with torchrun (DDP).")
@click.option("--progress/--no-progress", default=None, help="tqdm progress bar (default: when stderr is a terminal).")
@click.option("--print-config", is_flag=True, help="Print the resolved config as JSON and exit.")
@click.option("--dry-run", is_flag=True, help="Print the plan (params, FLOPs, memory/GPU, step time, steps in the "
              "cap, shards) for the resolved config and exit without training; see `golf plan`.")
@click.pass_context
def train(ctx, preset, config_file, sets, device, resume, resume_from_hub, stop_at_step, nproc, progress,
          print_config, dry_run, **flags):
    """Train the recurrent GPT recipe and write a run directory for `golf build`.

    Settings resolve as: flag (--iterations, --set ...) > official environment variable
    (ITERATIONS, TRAIN_SEQ_LEN, ...) > preset > default; the resolved config is printed and
    saved as RUN/config.json.

    \b
    Presets:
      {presets}

    \b
    Examples:
      golf train --preset tiny --data ./data --run-dir runs/tiny --device cpu
      golf train --preset seed --data ./data --run-dir runs/seed           # 1 GPU
      golf train --preset 8xh100 --data ./data --nproc 8                   # torchrun DDP
      ITERATIONS=500 golf train --preset colab-quick --data ./data --resume auto
      golf train --preset seed --data ./data --dry-run                    # the plan, no training

    \b
    Output (RUN = --run-dir):
      RUN/config.json  RUN/train.log  RUN/metrics.jsonl  RUN/checkpoints/step_NNNNNN.pt
      RUN/final_model.pt (EMA weights)  RUN/final.json (final val_loss / val_bpb)

    Ctrl-C finishes the current step, saves a checkpoint and prints the command that
    continues the run (a second Ctrl-C aborts at once).
    """
    if nproc < 1:
        raise click.UsageError(f"--nproc must be >= 1, got {nproc}")
    raw = ctx.meta.get("golf.raw_args", [])
    command = os.environ.get("GOLF_COMMAND") or _command_line(raw)
    sets_d = _sets(sets)
    preset_given = ctx.get_parameter_source("preset") == click.core.ParameterSource.COMMANDLINE
    cfg, applied = _resolved(preset if preset_given else None, config_file, sets_d, flags)
    env_resume_hub = os.environ.get("RESUME_FROM_HUB", "").strip().lower() in ("1", "true", "yes", "on")
    if resume_from_hub is None and env_resume_hub:
        if not cfg.train.hub_repo:
            raise click.UsageError("RESUME_FROM_HUB=1 needs the repo: set HUB_REPO or pass --resume-from-hub REPO")
        resume_from_hub = cfg.train.hub_repo
    if print_config and not (resume or resume_from_hub):
        click.echo(cfg.to_json())
        return
    if dry_run:
        from golf.plan import echo_plan
        echo_plan(cfg, "cpu" if device == "cpu" else None, nproc if nproc > 1 else None, None, None, None,
                  cfg.train.data_dir)
        return
    launcher = "LOCAL_RANK" not in os.environ  # this process, not a torchrun worker, talks to the user
    if launcher and not (resume or resume_from_hub):  # a resumed run's config comes from its checkpoint
        _warn(preflight(cfg))
    if nproc > 1 and launcher:
        _launch_torchrun(cfg, raw, command, nproc)
        return
    _train_here(cfg, raw, command, sets_d, flags, applied, preset_given=preset_given, config_file=config_file,
                device=device, resume=resume,
                resume_from_hub=resume_from_hub, stop_at_step=stop_at_step, progress=progress,
                print_config=print_config, launcher=launcher)


def _launch_torchrun(cfg: GolfConfig, raw: list[str], command: str, nproc: int) -> None:
    """Relaunch this command under torchrun with ``nproc`` workers and wait for them."""
    os.environ["GOLF_COMMAND"] = command  # the torchrun workers log the command the user typed
    # the workers get the same arguments (--nproc is ignored where torchrun set LOCAL_RANK); after
    # "--" torchrun's parser leaves them alone (it would take --nproc for its --nproc-per-node)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "golf", "--", "train", *raw]
    click.echo("launching: " + " ".join(cmd), err=True)
    rc = subprocess.call(cmd)
    if rc != 0:
        raise click.ClickException(f"torchrun exited with status {rc} (see the log lines above)")
    if (Path(cfg.train.run_dir) / "final.json").is_file():
        _what_next({}, cfg, resume_command(raw))


def _train_here(cfg: GolfConfig, raw: list[str], command: str, sets_d: dict, flags: dict, applied, *,
                preset_given: bool, config_file, device, resume, resume_from_hub, stop_at_step, progress,
                print_config, launcher) -> None:
    """Train in this process (alone, or as one torchrun worker): the Hub fetch and resume base, then the run."""
    from golf.trainer import checkpoint as ckpt
    from golf.trainer.loop import RunOptions, setup_distributed
    from golf.trainer.loop import train as run_train

    rank, _world, _lr, dev, init_here = setup_distributed(device)
    resumed = None
    try:
        if resume_from_hub:
            from golf.trainer.loop import fetch_hub_checkpoint
            fetch_hub_checkpoint(resume_from_hub, cfg.train.run_dir, master=rank == 0)
            resume = resume or "auto"
        # resuming without --preset/--config: the checkpoint's own config is the base
        if resume:
            try:
                found = ckpt.resolve_resume(resume, cfg.train.run_dir)
                resumed = None if found is None else (found, ckpt.load_checkpoint(found, map_location=dev))
                if resumed is not None and not preset_given and not config_file:
                    base = GolfConfig.from_json(resumed[1]["config_json"])
                    base.train.run_dir = cfg.train.run_dir
                    cfg, applied = _resolved(None, None, sets_d, flags, base=base)
            except ckpt.CheckpointError as e:
                raise click.UsageError(str(e)) from None
            if launcher and not print_config:
                _warn(preflight(cfg))
        if print_config:
            click.echo(cfg.to_json())
            return
        if applied and rank == 0:
            click.echo("env overrides: " + " ".join(f"{n}={os.environ[n]}" for n in applied))
        opts = RunOptions(resume=resume, stop_at_step=stop_at_step, device=device, progress=progress,
                          command=command, resume_checkpoint=resumed)
        summary = run_train(cfg, opts)
    finally:
        if init_here:
            from golf.trainer.loop import shutdown_distributed
            shutdown_distributed()
    if init_here:
        # torchrun worker done and its files written: skip interpreter teardown, where gloo/TCPStore
        # threads occasionally abort the process ("terminate called without an active exception")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    if launcher:
        _what_next(summary, cfg, resume_command(raw))


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        click.echo(f"warning: {w}", err=True)


def _what_next(summary: dict, cfg: GolfConfig, cont: str) -> None:
    """Where the run went and the command to run next (build, or continue a paused run)."""
    run = cfg.train.run_dir
    if summary.get("interrupted") or summary.get("paused"):
        why = "interrupted" if summary.get("interrupted") else "paused"
        click.echo(f"{why} at step {summary['steps']}/{summary['iterations']}: checkpoint {summary['checkpoint']}")
        click.echo(f"continue:  {cont}")
        if summary.get("interrupted"):
            raise SystemExit(EXIT_INTERRUPTED)
        return
    click.echo(f"run:       {run} (final_model.pt, final.json, train.log, metrics.jsonl, checkpoints/)")
    click.echo(f"next:      golf build --checkpoint {shlex.quote(str(run))} "
               f"--data {shlex.quote(str(cfg.train.data_dir))} --out artifacts/NAME")


train.help = inspect.cleandoc(train.help).replace("{presets}", _PRESET_LIST.lstrip())


@click.group("bench")
def bench() -> None:
    """Throughput benchmarks (GPU)."""


@bench.command("train")
@click.option("--preset", type=click.Choice(list(PRESETS)), default="seed", show_default=True)
@click.option("--set", "sets", multiple=True, metavar="SECTION.NAME=VALUE", help="Override config fields.")
@click.option("--steps", type=int, default=20, show_default=True, help="Timed steps per phase.")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed steps per phase (compile, caches).")
@click.option("--micro-batch-seqs", type=int, default=None, help="Sequences per micro-step (default: preset's).")
@click.option("--accum", type=int, default=1, show_default=True, help="Micro-steps per timed step.")
@click.option("--device", default="auto", show_default=True, help="auto | cuda | cpu (cpu only for --preset tiny).")
@click.option("--dtype", type=click.Choice(CHOICES["train.dtype"]), default=None,
              help="Compute precision (default: preset's).")
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile (default: on for CUDA).")
@click.option("--peak-tflops", type=float, default=None,
              help="Peak dense TFLOP/s for MFU (default: from the GPU name).")
@click.option("--json-out", type=click.Path(dir_okay=False), help="Also write the numbers as JSON.")
def bench_train(preset, sets, steps, warmup, micro_batch_seqs, accum, device, dtype, compile_, peak_tflops, json_out):
    """Measure training throughput: ms/step and tok/s before and after recurrence, peak memory, MFU.

    Uses random tokens (no dataset needed) and the real model/optimizer step.  Needs a CUDA
    GPU for the full presets; on CPU only `--preset tiny` runs (a smoke test).
    """
    from golf.trainer.bench import run_bench

    cfg, _ = _resolved(preset, None, _sets(sets), {"dtype": dtype, "compile": compile_})
    res = run_bench(cfg, steps=steps, warmup=warmup, micro_batch_seqs=micro_batch_seqs, accum=accum,
                    device=device, compile=compile_, peak_tflops=peak_tflops, echo=click.echo)
    if json_out:
        with open(json_out, "w", encoding="utf-8") as f:
            json.dump(res, f, indent=2)


__all__ = ["ENV_VARS", "FLAG_KEYS", "bench", "train"]
