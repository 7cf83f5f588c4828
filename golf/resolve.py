"""Configuration resolution: the one place where presets, a config file, a resumed run's config,
the official environment variables and command-line overrides become one checked :class:`GolfConfig`.

Precedence: flag / ``--set`` > environment variable > preset, config file or base config (a
resumed checkpoint's) > default.  ``golf train``, ``golf plan``, ``golf build`` and
``golf import`` all resolve through :func:`resolve_config`; it raises :class:`ConfigError`
(a :class:`GolfError`) naming the bad value as it was given, and knows nothing of click.
Toolkit only: ``train_gpt.py`` reads its environment with :func:`golf.config.apply_env` alone.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from golf.config import TRAIN_FLAGS, ConfigError, GolfConfig, apply_env, apply_overrides
from golf.presets import preset_config

DEFAULT_PRESET = "seed"


def parse_sets(sets: Iterable[str]) -> dict[str, str]:
    """``("train.matrix_lr=0.02", ...)`` -> ``{"train.matrix_lr": "0.02"}``."""
    out = {}
    for item in sets:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected SECTION.NAME=VALUE, e.g. --set train.matrix_lr=0.02")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def train_flag_overrides(flags: Mapping[str, object], flag_keys: Mapping[str, str]) -> dict[str, tuple[object, str]]:
    """``golf train``'s setting options ``{keyword: value or None}`` as ``{key: (value, "--flag")}``."""
    return {flag_keys[p]: (v, TRAIN_FLAGS[flag_keys[p]]) for p, v in flags.items() if v is not None}


def _base(preset: str | None, config_file: str | None, base: GolfConfig | None) -> GolfConfig:
    if config_file:
        try:
            with open(config_file, encoding="utf-8") as f:
                cfg = GolfConfig.from_dict(json.load(f))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"--config {config_file}: {e}") from None
        if preset:
            cfg.preset = preset
        return cfg
    if base is not None and not preset:
        return base
    return preset_config(preset or DEFAULT_PRESET)


def resolve_config(preset: str | None = None, config_file: str | None = None, *,
                   sets: Mapping[str, str] | None = None, flags: Mapping[str, tuple[object, str]] | None = None,
                   environ: Mapping[str, str] | None = None,
                   base: GolfConfig | None = None) -> tuple[GolfConfig, list[str]]:
    """``(cfg, names of the environment variables applied)``.

    ``sets``: ``{key: text}`` from ``--set`` (:func:`parse_sets`); ``flags``: ``{key: (value, flag name)}``
    (:func:`train_flag_overrides`, or a command's own options); ``environ``: the environment to read
    (None: ``os.environ``; ``{}``: none); ``base``: the config to start from when neither a preset nor a
    config file is given (a resumed run's).  The result is checked once (``apply_overrides``)."""
    cfg = _base(preset, config_file, base)
    names = apply_env(cfg, environ)
    applied = list(names.values())
    overrides = dict(sets or {})
    names.update({key: f"--set {key}=" for key in overrides})
    for key, (value, flag) in (flags or {}).items():
        overrides[key], names[key] = value, flag
    apply_overrides(cfg, overrides, names)
    return cfg, applied
