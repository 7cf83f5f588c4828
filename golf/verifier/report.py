"""Check records, human tables and JSON output shared by both ``golf verify`` modes."""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from golf.fsutil import atomic_write_text

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"


@dataclass
class Check:
    """One verdict: ``status`` is pass/fail/warn/skip; ``measured``/``limit`` are JSON-able values."""

    name: str
    status: str
    measured: Any = None
    limit: Any = None
    message: str = ""
    exit_code: int | None = None  # artifact mode: the exit code this check maps to when it fails

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.status != FAIL
        if d["exit_code"] is None:
            d.pop("exit_code")
        return d


def any_failed(checks: Iterable[Check]) -> bool:
    return any(c.failed for c in checks)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e7):
            return f"{v:.4g}"
        return f"{v:.6f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:,.1f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return str(v)


def render_table(checks: list[Check], width: int = 100) -> str:
    """A plain-text table: status, check, measured, limit, message (message wrapped under the row)."""
    rows = [(c.status.upper(), c.name, _fmt(c.measured), _fmt(c.limit), c.message) for c in checks]
    w_name = max([5] + [len(r[1]) for r in rows])
    w_meas = min(28, max([8] + [len(r[2]) for r in rows]))
    w_lim = min(16, max([5] + [len(r[3]) for r in rows]))
    head = f"{'':4}  {'check':<{w_name}}  {'measured':>{w_meas}}  {'limit':>{w_lim}}"
    lines = [head, "-" * len(head)]
    indent = " " * 6
    for st, name, meas, lim, msg in rows:
        if len(meas) > w_meas:
            meas = meas[: w_meas - 1] + "…"
        if len(lim) > w_lim:
            lim = lim[: w_lim - 1] + "…"
        lines.append(f"{st:<4}  {name:<{w_name}}  {meas:>{w_meas}}  {lim:>{w_lim}}")
        if msg:
            for para in msg.splitlines():
                while len(para) > width - len(indent):
                    cut = para.rfind(" ", 0, width - len(indent))
                    cut = cut if cut > 20 else width - len(indent)
                    lines.append(indent + para[:cut])
                    para = para[cut:].lstrip()
                lines.append(indent + para)
    return "\n".join(lines)


def _json_default(o: Any):
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if isinstance(o, set):
        return sorted(o)
    return str(o)


def _sanitize(o: Any) -> Any:
    """Replace NaN/inf floats (not valid JSON) with strings."""
    if isinstance(o, float) and (math.isnan(o) or math.isinf(o)):
        return str(o)
    if isinstance(o, dict):
        return {k: _sanitize(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_sanitize(v) for v in o]
    return o


def write_json(path: str | os.PathLike, doc: dict) -> None:
    """Write ``doc`` atomically (temp file + rename) so a crash never leaves half a report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_sanitize(json.loads(json.dumps(doc, default=_json_default))), indent=2) + "\n"
    atomic_write_text(path, text)


@dataclass
class Section:
    """A titled group of checks (one records folder, or one artifact)."""

    title: str
    checks: list[Check] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any_failed(self.checks)

    def add(self, *args, **kw) -> Check:
        c = Check(*args, **kw)
        self.checks.append(c)
        return c
