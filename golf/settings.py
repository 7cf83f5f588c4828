"""The settings surface, generated from ``golf/config.py``: ``golf train``'s setting options and
docs/settings.md.

A setting is written once, in ``golf/config.py``: the field with its default, its help as the
string right under it (an attribute docstring, read here with :mod:`ast`: Python keeps no such
strings at run time, and the built ``train_gpt.py`` drops them), its environment variable in
``ENV_VARS``, its ``golf train`` flag (if any) in ``TRAIN_FLAGS``, its allowed words in
``CHOICES``.  Regenerate the reference with::

    python -m golf.settings > docs/settings.md

(``tests/test_settings.py`` fails while it is stale).  Toolkit only: never shipped.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
from typing import NamedTuple

import click

from golf import config
from golf.config import CHOICES, ENV_VARS, QUANT_BITS, TRAIN_FLAGS, GolfConfig

SECTIONS = ("model", "train", "eval", "quant")
REGENERATE = "python -m golf.settings > docs/settings.md"


class Setting(NamedTuple):
    key: str  # "section.name"
    type: str  # the annotation, e.g. "int", "tuple[int, ...]"
    default: object
    help: str  # the field's docstring, one paragraph
    flag: str  # the `golf train` option, "" when there is none
    env: tuple[str, ...]  # environment variables, official aliases first


@functools.cache
def field_docs() -> dict[str, str]:
    """``{"section.name": docstring}`` for every config field that has one (the string statement right
    after the field, whitespace folded to single spaces)."""
    classes = {type(getattr(GolfConfig(), s)).__name__: s for s in SECTIONS}
    tree = ast.parse(inspect.getsource(config))
    docs = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in classes:
            # fields under `if TOP_CODE:` (config.py) are fields like the others
            body = [s for stmt in node.body for s in (stmt.body if isinstance(stmt, ast.If) else [stmt])]
            for stmt, nxt in zip(body, body[1:]):
                if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                        and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                        and isinstance(nxt.value.value, str)):
                    docs[f"{classes[node.name]}.{stmt.target.id}"] = " ".join(nxt.value.value.split())
    return docs


def settings() -> list[Setting]:
    """Every setting, section by section in field order."""
    docs, cfg = field_docs(), GolfConfig()
    envs: dict[str, list[str]] = {}
    for name, key in ENV_VARS.items():
        envs.setdefault(key, []).append(name)
    out = []
    for section in SECTIONS:
        obj = getattr(cfg, section)
        for f in dataclasses.fields(obj):
            key = f"{section}.{f.name}"
            out.append(Setting(key, f.type, getattr(obj, f.name), docs.get(key, ""), TRAIN_FLAGS.get(key, ""),
                               tuple(envs.get(key, ()))))
    return out


# -- golf train options ---------------------------------------------------------------------------
# The keyword each option passes to the command (the field name) -> its config key.
FLAG_KEYS: dict[str, str] = {key.split(".", 1)[1]: key for key in TRAIN_FLAGS}
assert len(FLAG_KEYS) == len(TRAIN_FLAGS), "two golf train flags would pass the same keyword"


def _option(s: Setting):
    """The click option of a setting: typed by its default, words from CHOICES, a bool as --x/--no-x.
    Not given = None: the preset, environment or config file decides."""
    param = s.key.split(".", 1)[1]
    help_ = s.help + (f" [{', '.join(s.env)}]" if s.env else "")
    if isinstance(s.default, bool):
        return click.option(f"{s.flag}/--no-{s.flag[2:]}", param, default=None, help=help_)
    kind = click.Choice(CHOICES[s.key]) if s.key in CHOICES else type(s.default)
    return click.option(s.flag, param, type=kind, help=help_)


def train_setting_options(command):
    """Decorate ``command`` with one option per :data:`TRAIN_FLAGS` entry, in that order."""
    by_key = {s.key: s for s in settings()}
    for key in reversed(TRAIN_FLAGS):  # click lists the last-applied decorator first
        command = _option(by_key[key])(command)
    return command


# -- docs/settings.md ------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown() -> str:
    """docs/settings.md: every setting with its type, default, flag, environment variables and help."""
    heads = {s: inspect.cleandoc(type(getattr(GolfConfig(), s)).__doc__ or "") for s in SECTIONS}
    out = [
        "# Settings reference",
        "",
        f"<!-- generated from golf/config.py by `{REGENERATE}`; do not edit -->",
        "",
        "Every setting resolves as **flag > environment variable > preset > default** (docs/cli-train.md).",
        "Any of them can be given as `golf train --set SECTION.NAME=VALUE`; the table adds the",
        "`golf train` flag and the environment variables (the official names first) where there are",
        "any. Defaults are the dataclass defaults, the `seed` card; presets (`golf/presets.py`) change",
        "some. Booleans take 1/0, true/false, yes/no, on/off; tuples take comma-separated integers.",
        f"Quantization bits (`QUANT_BITS`) range from {QUANT_BITS[0]} to {QUANT_BITS[-1]}.",
        "`golf build` sets the quant settings it has options for (docs/cli-build.md).",
    ]
    for section in SECTIONS:
        out += ["", f"## `{section}`: {heads[section]}", "",
                "| setting | type | default | flag | environment | help |", "|---|---|---|---|---|---|"]
        for s in settings():
            if s.key.startswith(section + "."):
                kind = " | ".join(CHOICES[s.key]) if s.key in CHOICES else s.type
                flag = "" if not s.flag else f"`{s.flag}/--no-{s.flag[2:]}`" if s.type == "bool" else f"`{s.flag}`"
                out.append(f"| `{s.key}` | {_cell(kind)} | `{s.default!r}` | {flag} | "
                           f"{', '.join(f'`{e}`' for e in s.env)} | {_cell(s.help)} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
