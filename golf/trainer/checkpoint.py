"""Training checkpoints and the final model file (atomic writes, ``weights_only`` loads).

A checkpoint (``RUN/checkpoints/step_NNNNNN.pt``) holds everything needed to continue a
run bit-for-bit: the run's *state map* (``Run.state`` in ``loop.py``: model, optimizer states,
GradScaler, EMA, loader position, phase flags with step and elapsed train time, RNG states
(python/numpy/torch/cuda)), each entry under its own key, plus the resolved config as JSON and
the step and train time at the top level for readers.  Every entry is an object with
``state_dict()``/``load_state_dict()`` (or None): :func:`state_dicts` saves the map and
:func:`load_states` restores it, one loop each, so a new piece of state is one line in the map.
``RUN/final_model.pt`` holds the post-EMA model state dict, the config and
``recurrence_active`` for ``golf build``.  Everything is stored as plain containers/tensors so
that ``torch.load(weights_only=True)`` can read it.
"""
from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from golf.config import GolfConfig
from golf.errors import GolfError
from golf.fsutil import atomic_write

CKPT_RE = re.compile(r"^step_(\d{6,})\.pt$")
FINAL_NAME = "final_model.pt"
FORMAT = "golf-checkpoint-1"
FINAL_FORMAT = "golf-final-1"


class CheckpointError(ValueError, GolfError):
    """A checkpoint is missing, unreadable or incompatible; the message names the file."""


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temp file in the target directory, fsync, then rename over ``path``."""
    return atomic_write(path, lambda f: torch.save(obj, f), fsync=True)


def safe_load(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupted / foreign pickle
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: not a golf checkpoint (top-level {type(obj).__name__})")
    return obj


# -- RNG state -----------------------------------------------------------------
def rng_state() -> dict:
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda = [s.cpu() for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


class RNGState:
    """The process's random generators as one state-map entry."""

    def state_dict(self) -> dict:
        return rng_state()

    def load_state_dict(self, state: dict) -> None:
        set_rng_state(state)


# -- the state map ---------------------------------------------------------------------
def state_dicts(state: dict) -> dict:
    """``{key: entry.state_dict()}`` for a state map (None entries stay None)."""
    return {k: None if v is None else v.state_dict() for k, v in state.items()}


def load_states(state: dict, saved: dict) -> None:
    """Load every entry of a state map from ``saved`` (in map order), skipping what either side lacks."""
    for k, v in state.items():
        if v is not None and saved.get(k) is not None:
            v.load_state_dict(saved[k])


# -- training checkpoints ----------------------------------------------------------
def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step_{step:06d}.pt"


def list_checkpoints(run_dir_or_ckpt_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``[(step, path)]`` sorted by step, from ``RUN`` or ``RUN/checkpoints``."""
    d = Path(run_dir_or_ckpt_dir)
    if (d / "checkpoints").is_dir():
        d = d / "checkpoints"
    if not d.is_dir():
        return []
    out = []
    for p in d.iterdir():
        m = CKPT_RE.match(p.name)
        if m and p.is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1][1] if ckpts else None


def resolve_resume(spec: str, run_dir: str | os.PathLike) -> Path | None:
    """``auto`` -> latest checkpoint in ``run_dir`` (None if there is none); a file; or a run dir."""
    if spec == "auto":
        return latest_checkpoint(run_dir)
    p = Path(spec)
    if p.is_dir():
        found = latest_checkpoint(p)
        if found is None:
            raise CheckpointError(f"{p}: no checkpoints (step_NNNNNN.pt) in this directory or its checkpoints/")
        return found
    if not p.is_file():
        raise CheckpointError(f"--resume {spec}: no such checkpoint file or run directory")
    return p


def save_checkpoint(path: str | os.PathLike, *, cfg: GolfConfig, state: dict, keep: int = 0, **meta) -> Path:
    """Write the state map (plus the config and ``meta``, e.g. ``step``) atomically; prune to the
    newest ``keep`` checkpoints (0 = keep all)."""
    obj = {"format": FORMAT, "config_json": cfg.to_json(), **meta, **state_dicts(state)}
    path = atomic_save(obj, path)
    if keep and keep > 0:
        ckpts = list_checkpoints(path.parent)
        for _, old in ckpts[:-keep]:
            if old != path:
                try:
                    old.unlink()
                except FileNotFoundError:
                    pass
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    obj = safe_load(path, map_location)
    if obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a golf training checkpoint (format {obj.get('format')!r})")
    # checkpoints written before the state map kept step and train time at the top level only
    obj["flags"] = {"step": obj["step"], "train_time_ms": obj["train_time_ms"], **(obj.get("flags") or {})}
    return obj


class StopOnInterrupt:
    """Ctrl-C (SIGINT) during training becomes a request (``requested``) that the loop honours at
    the next step boundary: it saves a checkpoint there and stops, so no step is lost and the
    state is exactly resumable.  A second Ctrl-C aborts at once.  Toolkit only; a no-op where
    signals cannot be caught (not the main thread) or when ``enabled`` is False (DDP workers, whose
    peers might be inside a collective)."""

    def __init__(self, enabled: bool = True, say=print):
        self.enabled, self.say = enabled, say
        self.requested = False
        self._previous = None

    def arm(self) -> None:
        import signal

        if not self.enabled:
            return
        try:
            self._previous = signal.signal(signal.SIGINT, self._on_signal)
        except ValueError:  # not the main thread
            self._previous = None

    def disarm(self) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _on_signal(self, _signum, _frame) -> None:  # the signal.signal handler signature
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.say("interrupt: finishing this step, then saving a checkpoint (Ctrl-C again to abort now)")


# -- final model ---------------------------------------------------------------------
def save_final(run_dir: str | os.PathLike, cfg: GolfConfig, model_state: dict, recurrence_active: bool,
               extra: dict | None = None) -> Path:
    obj = {
        "format": FINAL_FORMAT,
        "config_json": cfg.to_json(),
        "model": {k: v.detach().cpu().contiguous() for k, v in model_state.items()},
        "recurrence_active": bool(recurrence_active),
    }
    if extra:
        obj.update(extra)
    return atomic_save(obj, Path(run_dir) / FINAL_NAME)


def load_final(path_or_run_dir: str | os.PathLike, map_location: Any = "cpu") -> tuple[GolfConfig, dict]:
    """``(GolfConfig, state_dict)`` from a run dir, ``RUN/final_model.pt`` or a training checkpoint.

    From a training checkpoint the EMA weights are returned when EMA has started.  Use
    :func:`load_final_full` to also get the ``recurrence_active`` flag.
    """
    cfg, state, _ = load_final_full(path_or_run_dir, map_location)
    return cfg, state


def load_final_full(path_or_run_dir: str | os.PathLike, map_location: Any = "cpu") -> tuple[GolfConfig, dict, bool]:
    """``(GolfConfig, state_dict, recurrence_active)``; accepts a run dir, a final file or a checkpoint."""
    p = Path(path_or_run_dir)
    if p.is_dir():
        if (p / FINAL_NAME).is_file():
            p = p / FINAL_NAME
        else:
            raise CheckpointError(f"{p}: no {FINAL_NAME} (has `golf train` finished for this run?)")
    obj = safe_load(p, map_location)
    fmt = obj.get("format")
    if fmt not in (FINAL_FORMAT, FORMAT):
        raise CheckpointError(f"{p}: not a golf model file (format {fmt!r})")
    cfg = GolfConfig.from_json(obj["config_json"])
    if fmt == FORMAT:  # training checkpoint: prefer the EMA weights if they exist
        ema = obj.get("ema") or {}
        state = ema.get("shadow") or obj["model"]
        rec = bool((obj.get("flags") or {}).get("recurrence_active", False))
    else:
        state = obj["model"]
        rec = bool(obj.get("recurrence_active", False))
    return cfg, state, rec
