"""One typed configuration for golf: model shape, training, evaluation, quantization.

The same :class:`GolfConfig` feeds ``golf train``, ``golf build`` and ``golf verify``
and is embedded (as JSON) in checkpoints and artifacts.  Resolution order for a run is
``flag > environment variable > preset > dataclass default``; the official Parameter
Golf environment-variable names (``ITERATIONS``, ``TRAIN_SEQ_LEN`` ...) are honoured,
see :data:`ENV_VARS`.

This module is shipped inside the generated ``train_gpt.py``: standard library only.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from golf import TOOLKIT
from golf.errors import GolfError


@dataclass
class ModelConfig:
    """GPT shape and feature switches (defaults = the ``seed`` card)."""

    vocab_size: int = 4096
    num_layers: int = 11
    model_dim: int = 512
    num_heads: int = 8
    num_kv_heads: int = 4
    mlp_mult: float = 4.0
    leaky_slope: float = 0.5  # LeakyReLU(slope)^2 MLP activation
    tie_embeddings: bool = True
    tied_embed_init_std: float = 0.005
    logit_softcap: float = 30.0
    rope_base: float = 10000.0
    rope_dims: int = 16  # rotated dims per head (25 % of head_dim 64)
    qk_gain_init: float = 5.0
    # U-Net skips between encoder and decoder halves
    skip_weights: bool = True
    skip_gates: bool = True
    # parallel residual lanes from this physical layer on (-1 = off)
    parallel_start_layer: int = 7
    # depth recurrence: physical layers [recur_start, recur_end] (inclusive) run
    # `recur_loops` extra times once switched on (-1 start = off)
    recur_start: int = 3
    recur_end: int = 5
    recur_loops: int = 2
    # optional extras from the record lineage
    xsa_last_n: int = 0  # exclusive self-attention on the last N layers
    ln_scale: bool = False  # 1/sqrt(layer+1) factor on block inputs
    resid_mix: bool = False  # learned x/x0 mix at each block input
    ve_enabled: bool = False  # shared value embeddings
    ve_dim: int = 128
    ve_layers: tuple[int, ...] = ()
    # parallel lanes: "merge" = SP4K (independent lanes, learned scalar lane_merge at the end),
    # "route" = TOP (learned per-layer cross-lane routing, mean of lanes at the end)
    parallel_mode: str = "merge"
    # SP4K quirk: U-Net skips due after the lane split go to the abandoned single stream (no
    # effect); off = they are added to the attention lane (as TOP does)
    parallel_skip_quirk: bool = False
    # SP4K: skip weights/gates sized from the physical layers (min(L//2, L-L//2)) instead of
    # the recurrence-on virtual layer list (TOP: 8 pairs for 17 virtual layers)
    skip_count_physical: bool = False

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads


@dataclass
class TrainConfig:
    """Optimizer, schedule, batching, run control."""

    data_dir: str = "./data"
    run_dir: str = "./runs/golf"
    seed: int = 1337
    iterations: int = 20000
    warmup_steps: int = 0  # LR warm-up steps (linear from 0)
    warmdown_iters: int = 5000  # iteration-based warmdown (used when > 0)
    warmdown_frac: float = 0.0  # wallclock-fraction warmdown (used when > 0)
    min_lr: float = 0.0
    train_batch_tokens: int = 786432
    train_seq_len: int = 2048
    micro_batch_seqs: int = 0  # per-process sequences per micro-step (0 = whole local batch)
    max_wallclock_seconds: float = 600.0  # 0 = no cap
    gptq_reserve_seconds: float = 0.0
    val_loss_every: int = 4000  # 0 = only at the end
    val_batch_tokens: int = 524288
    val_max_tokens: int = 0  # 0 = whole validation set (for quick runs)
    train_log_every: int = 500
    train_shards: int = 0  # 0 = all train shards found
    # optimizer
    matrix_lr: float = 0.022
    muon_momentum: float = 0.95
    muon_momentum_warmup_start: float = 0.85
    muon_momentum_warmup_steps: int = 500
    muon_backend_steps: int = 5
    muon_wd: float = 0.095
    muon_row_norm: bool = True  # MuonEq-R
    tied_embed_lr: float = 0.05
    embed_wd: float = 0.0
    scalar_lr: float = 0.04
    adam_wd: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip_norm: float = 0.3
    # EMA
    ema_decay: float = 0.9965
    ema_start_step: int = 100
    # recurrence switch-on, fraction of training (<= 0: from the start; ignored when model recurrence is off)
    recur_start_frac: float = 0.35
    recur_start_step: int = 0  # > 0: switch recurrence on at this step instead (the SP4096 record: 3000)
    # precision / device
    dtype: str = "auto"  # auto | bf16 | fp16 | fp32
    compile: bool = False
    # checkpoints
    checkpoint_every: int = 0  # 0 = only at the end
    hub_repo: str = ""  # push checkpoints to this Hub model repo
    hub_every: int = 0
    keep_checkpoints: int = 2  # newest local checkpoints kept in RUN/checkpoints (0 = all)
    hub_private: bool = True  # create the Hub repo as private
    compile_warmup_steps: int = 20  # with compile: untimed priming steps (both recurrence graphs), then state reset


@dataclass
class EvalConfig:
    eval_seq_len: int = 2048
    eval_stride: int = 64
    eval_batch_seqs: int = 32
    sliding_window: bool = True


@dataclass
class QuantConfig:
    matrix_bits: int = 6
    embed_bits: int = 8
    matrix_clip_sigmas: float = 12.85
    embed_clip_sigmas: float = 20.0
    method: str = "gptq"  # gptq | rtn
    gptq_block_size: int = 128
    gptq_damp: float = 0.01
    calibration_batches: int = 16
    small_tensor_numel: int = 65536  # floats at or under this are stored fp16
    compressor: str = "brotli"  # brotli | lzma | zlib
    byte_shuffle: bool = True
    target_bytes: int = 16_000_000
    # builder (issue 5): per-class overrides, 0 = use matrix_bits / matrix_clip_sigmas
    attn_bits: int = 0
    mlp_bits: int = 0
    attn_clip_sigmas: float = 0.0
    mlp_clip_sigmas: float = 0.0
    calibration_batch_tokens: int = 98304  # training tokens per calibration batch (48 x 2048)
    code_compressor: str = "auto"  # lzma | brotli | auto (brotli when the blob is brotli, else lzma): train_gpt.py
    prune: bool = True  # selective +-1 pruning when the artifact is over target_bytes
    clip: str = "sdclip"  # sdclip (k*std per row) | search (the SP4096 record's clip search), docs/parity.md
    control_dtype: str = "fp32"  # fp32 | fp16 (the record) storage of control tensors


@dataclass
class GolfConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    quant: QuantConfig = field(default_factory=QuantConfig)
    preset: str = "seed"

    # -- serialization -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GolfConfig":
        cfg = cls()
        for section in ("model", "train", "eval", "quant"):
            for key, value in (d.get(section) or {}).items():
                set_field(cfg, f"{section}.{key}", value)
        if "preset" in d:
            cfg.preset = str(d["preset"])
        return cfg

    @classmethod
    def from_json(cls, text: str) -> "GolfConfig":
        return cls.from_dict(json.loads(text))


class ConfigError(ValueError, GolfError):
    """A bad configuration value; the message names the offending key."""


def _coerce(value: Any, typ_s: str, key: str) -> Any:
    """``value`` as a ``typ_s`` (bool, int, float, str or tuple of ints)."""
    try:
        if typ_s == "bool":
            if isinstance(value, str):
                v = value.strip().lower()
                if v in ("1", "true", "yes", "on"):
                    return True
                if v in ("0", "false", "no", "off", ""):
                    return False
                raise ValueError(value)
            return bool(value)
        if typ_s == "int":
            if isinstance(value, str):
                return int(float(value)) if "e" in value.lower() else int(value)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if typ_s == "float":
            return float(value)
        if typ_s == "str":
            return str(value)
        if typ_s.startswith("tuple"):
            if isinstance(value, str):
                return tuple(int(v) for v in value.replace(" ", "").split(",") if v)
            return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: cannot interpret {value!r} as {typ_s}") from None
    return value


def set_field(cfg: GolfConfig, dotted: str, value: Any) -> None:
    """Set ``section.name`` on ``cfg`` with type coercion; unknown keys raise ConfigError."""
    if TOOLKIT and "." not in dotted:  # --set syntax: toolkit only
        raise ConfigError(f"{dotted}: expected 'section.name' (sections: model, train, eval, quant)")
    section, name = dotted.split(".", 1)
    obj = getattr(cfg, section, None)
    if TOOLKIT and (obj is None or not dataclasses.is_dataclass(obj)):
        raise ConfigError(f"{dotted}: unknown section {section!r}")
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if name not in fields:
        raise ConfigError(f"{dotted}: unknown setting (known: {', '.join(sorted(fields))})")
    # typed by the default, not the annotation: train_gpt.py renames the names annotations use
    setattr(obj, name, _coerce(value, type(fields[name].default).__name__, dotted))


def _own_names(section: str, names: str = "", skip: str = "") -> dict[str, str]:
    """``{NAME: "section.name"}`` for ``names`` (default: every field of the section but ``skip``)."""
    cls = {"model": ModelConfig, "train": TrainConfig, "eval": EvalConfig, "quant": QuantConfig}[section]
    keep = names.split() or [f.name for f in dataclasses.fields(cls) if f.name not in skip.split()]
    return {n.upper(): f"{section}.{n}" for n in keep}


# Environment-variable names -> config keys: the official aliases, then the settings whose
# variable is their own name upper-cased (listed later, so they win when both are set).
ENV_VARS: dict[str, str] = {
    "VAL_BATCH_SIZE": "train.val_batch_tokens",
    "ENABLE_LOOPING_AT": "train.recur_start_frac",
    "SKIP_GATES_ENABLED": "model.skip_gates",
    "LOOP_START": "model.recur_start",
    "LOOP_END": "model.recur_end",
    "NUM_LOOPS": "model.recur_loops",
    "SKIP_WEIGHTS_ENABLED": "model.skip_weights",
    "SLIDING_WINDOW_ENABLED": "eval.sliding_window",
    "GPTQ_CALIBRATION_BATCHES": "quant.calibration_batches",
    **_own_names("train", skip="run_dir dtype compile"),
    **_own_names("model", skip="skip_weights skip_gates recur_start recur_end recur_loops"),
    **_own_names("eval", "eval_seq_len eval_stride"),
    **_own_names("quant", "matrix_bits embed_bits matrix_clip_sigmas embed_clip_sigmas compressor"),
}


def apply_env(cfg: GolfConfig, environ: dict[str, str] | None = None) -> list[str]:
    """Apply official env-var overrides; returns the names that were applied."""
    env = os.environ if environ is None else environ
    applied = []
    for name, key in ENV_VARS.items():
        if name in env and env[name] != "":
            set_field(cfg, key, env[name])
            applied.append(name)
    return applied


def apply_overrides(cfg: GolfConfig, overrides: dict[str, Any]) -> None:
    """Apply ``{'section.name': value}`` overrides (e.g. from ``--set`` flags)."""
    for key, value in overrides.items():
        set_field(cfg, key, value)


def config_delta(cfg: GolfConfig) -> dict:
    """Only the settings that differ from the dataclass defaults (plus the preset name): what a blob's
    meta and the generated train_gpt.py embed."""
    base, cur = type(cfg)().to_dict(), cfg.to_dict()
    out = {}
    for sec in ("model", "train", "eval", "quant"):
        d = {k: v for k, v in cur[sec].items() if base[sec].get(k) != v}
        if d:
            out[sec] = d
    out["preset"] = cur.get("preset", "seed")
    return out
