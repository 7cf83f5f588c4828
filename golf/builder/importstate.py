"""``golf import-state``: turn a state dict saved by another trainer into a golf run directory.

Supported source (``--from``):

* ``record``: the ``final_model.pt`` of the 2026-04-04 SP4096 record's ``train_gpt.py``
  (``torch.save(model.state_dict())``).  Its tensor names are golf's, except the value-embedding
  layer scales, which the record keeps as one 1-element parameter per layer
  (``ve_layer_scales.0``, ``ve_layer_scales.1``) and golf as one vector (``ve_layer_scales``).
  RoPE direction and every other computation match (``tests/test_parity_record.py``), so the
  imported model computes the record's logits.
* ``frontier-record``: the ``final_model.pt`` of the 2026-04-27 record's ``train_gpt.py`` (preset
  ``frontier``).  It stacks the block matrices in four banks (:data:`FRONTIER_BANKS`): for ``L`` layers,
  ``qo_bank[i]`` is layer i's c_q and ``qo_bank[L+i]`` its output projection, ``kv_bank[i]`` / ``kv_bank[L+i]``
  its c_k / c_v, ``mlp_up_bank[i]`` / ``mlp_down_bank[i]`` its MLP fc / proj.  Every other tensor (gates,
  lane weights, scales, skips, the embedding) has golf's name (``tests/test_parity_frontier.py``).

The run directory gets ``config.json`` and ``final_model.pt`` (the format ``golf train``
writes), which ``golf build --checkpoint RUN`` accepts.  The file is read with
``torch.load(weights_only=True)``: no unpickling of code.
"""
from __future__ import annotations

import re
from pathlib import Path

import click

from golf.errors import GolfError
from golf.fsutil import atomic_write_bytes

SOURCES = ("record", "frontier-record")
DEFAULT_PRESET = {"record": "sp4096-record", "frontier-record": "frontier"}
# bank name -> the golf weights of its rows: rows [0, L) then [L, 2L) (a 2L-row bank) or [0, L)
FRONTIER_BANKS = {
    "qo_bank": ("attn.c_q.weight", "attn.proj.weight"),
    "kv_bank": ("attn.c_k.weight", "attn.c_v.weight"),
    "mlp_up_bank": ("mlp.fc.weight",),
    "mlp_down_bank": ("mlp.proj.weight",),
}
_RECORD_VE_SCALE = re.compile(r"^ve_layer_scales\.(\d+)$")


class ImportStateError(ValueError, GolfError):
    """The state dict cannot be mapped onto the golf model; the message names the tensor."""


def record_to_golf(state: dict) -> dict:
    """Rename a record state dict to golf's names (see the module docstring); values as float32."""
    import torch

    out, ve = {}, {}
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise ImportStateError(f"{name}: not a tensor ({type(t).__name__}); is this a state dict?")
        m = _RECORD_VE_SCALE.match(name)
        if m:
            ve[int(m.group(1))] = t.reshape(-1)
        else:
            out[name] = t
    if ve:
        if sorted(ve) != list(range(len(ve))):
            raise ImportStateError(f"ve_layer_scales: indices {sorted(ve)} are not 0..{len(ve) - 1}")
        out["ve_layer_scales"] = torch.cat([ve[i] for i in range(len(ve))])
    return {k: v.detach().float() if v.is_floating_point() else v.detach() for k, v in out.items()}


def frontier_to_golf(state: dict) -> dict:
    """Unstack the 2026-04-27 record's weight banks into golf's per-block names (module docstring)."""
    import torch

    out = {}
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise ImportStateError(f"{name}: not a tensor ({type(t).__name__}); is this a state dict?")
        if name not in FRONTIER_BANKS:
            out[name] = t
            continue
        parts = FRONTIER_BANKS[name]
        if t.ndim != 3 or t.size(0) % len(parts):
            raise ImportStateError(f"{name}: shape {tuple(t.shape)} is not a stack of {len(parts)} x layers matrices")
        n = t.size(0) // len(parts)
        for k, part in enumerate(parts):
            for i in range(n):
                out[f"blocks.{i}.{part}"] = t[k * n + i].clone()
    missing = [b for b in FRONTIER_BANKS if b not in state]
    if missing:
        raise ImportStateError(f"not a state dict of the 2026-04-27 record: no {', '.join(missing)}")
    return {k: v.detach().float() if v.is_floating_point() else v.detach() for k, v in out.items()}


def golf_to_frontier(state: dict, num_layers: int) -> dict:
    """The inverse of :func:`frontier_to_golf`: golf's per-block matrices stacked into the record's banks."""
    import torch

    taken = {f"blocks.{i}.{part}" for parts in FRONTIER_BANKS.values() for part in parts for i in range(num_layers)}
    out = {k: v for k, v in state.items() if k not in taken}
    for bank, parts in FRONTIER_BANKS.items():
        out[bank] = torch.stack([state[f"blocks.{i}.{part}"] for part in parts for i in range(num_layers)])
    return out


TO_GOLF = {"record": record_to_golf, "frontier-record": frontier_to_golf}


def check_against_model(state: dict, cfg) -> None:
    """Raise :class:`ImportStateError` unless ``state`` has exactly the tensors (names, shapes) of ``GPT(cfg)``."""
    import torch

    from golf.model.gpt import GPT

    with torch.device("meta"):
        want = {k: tuple(v.shape) for k, v in GPT(cfg.model).state_dict().items()}
    missing, extra = sorted(want.keys() - state.keys()), sorted(state.keys() - want.keys())
    if missing or extra:
        raise ImportStateError(f"tensor names do not match the {cfg.preset!r} model: missing {missing[:6]}, "
                               f"unexpected {extra[:6]} (a different preset or --set sizes?)")
    for k, shape in want.items():
        if tuple(state[k].shape) != shape:
            raise ImportStateError(f"{k}: shape {tuple(state[k].shape)} in the file, {shape} in the "
                                   f"{cfg.preset!r} model (a different preset or --set sizes?)")


def import_state(src, source: str, cfg, out_dir, recurrence: bool = True) -> Path:
    """Convert ``src`` (a ``source``-format state dict file) for config ``cfg`` into run directory ``out_dir``."""
    from golf.trainer.checkpoint import CheckpointError, safe_load, save_final

    if source not in SOURCES:
        raise ImportStateError(f"unknown source format {source!r} ({' | '.join(SOURCES)})")
    try:
        raw = safe_load(src)
    except CheckpointError as e:
        raise ImportStateError(str(e)) from None
    state = TO_GOLF[source](raw)
    check_against_model(state, cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "config.json", (cfg.to_json() + "\n").encode())
    return save_final(out, cfg, state, recurrence, extra={"imported_from": {"format": source, "path": str(src)}})


@click.command("import-state")
@click.argument("state_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--from", "source", type=click.Choice(SOURCES), required=True,
              help="Format of STATE_FILE: record = final_model.pt of the 2026-04-04 SP4096 record's train_gpt.py; "
                   "frontier-record = that of the 2026-04-27 record (weight banks unstacked).")
@click.option("--preset", default=None,
              help="golf preset describing the same architecture [default: sp4096-record for record, frontier for "
                   "frontier-record].")
@click.option("--set", "sets", multiple=True, metavar="SECTION.NAME=VALUE",
              help="Config overrides on top of the preset (e.g. sizes of a smaller record-style model; "
                   "calibration settings for the later `golf build`).")
@click.option("--recurrence/--no-recurrence", default=True, show_default=True,
              help="Evaluate with depth recurrence on (the record switches it on at step 3000 and keeps it for "
                   "evaluation).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Run directory to write (config.json, final_model.pt) for `golf build --checkpoint`.")
def import_state_cmd(state_file, source, preset, sets, recurrence, out_dir):
    """Import a state dict trained elsewhere as a golf run directory.

    \b
    Example (a model trained by the record's own train_gpt.py):
      golf import-state --from record final_model.pt --preset sp4096-record --out runs/record
      golf build --checkpoint runs/record --data data --out art
      golf import-state --from frontier-record final_model.pt --out runs/frontier
    """
    from golf.config import ConfigError
    from golf.resolve import parse_sets, resolve_config

    preset = preset or DEFAULT_PRESET[source]
    try:
        cfg, _ = resolve_config(preset, sets=parse_sets(sets), environ={})
        path = import_state(state_file, source, cfg, out_dir, recurrence)
    except (ImportStateError, ConfigError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {path} ({source} state dict -> preset {preset}, recurrence {'on' if recurrence else 'off'})")
