"""Tolerant parser for official Parameter Golf training/eval logs.

Recognised lines (``key:value`` and ``key: value`` / ``key=value`` variants, thousands
separators in byte counts, optional prefixes such as timestamps or ``[rank0]``):

- ``seed:42`` (or a seed in the file name: ``train_seed42.log``, ``seed_42.txt``)
- ``step:5453/20000 val_loss:... val_bpb:... train_time:590026ms step_avg:108.2ms``
- ``stopping_early: wallclock_cap train_time: 590026ms step: 5453/20000``
- ``Code size: 24584 bytes``
- ``Serialized model int6+brotli: 15974949 bytes`` (also the raw ``Serialized model: N bytes``)
- ``Total submission size int6+brotli: 15999533 bytes``
- evaluation lines: any non-``step`` line with ``val_bpb`` such as
  ``final_int6_sliding_window val_loss:... val_bpb:... eval_time:76195ms``.
- hardware: ``world_size:8``, nvidia-smi table rows (``NVIDIA H100 80GB HBM3``) and golf's
  ``hardware:1xCPU (2 threads)``.
- artifact-production time: ``total_elapsed:858s train_budget:600s``, and timed GPTQ /
  calibration / Hessian lines printed after training stopped (``gptq_time:41.2s``).

Many official logs start with the full source of ``train_gpt.py`` (the baseline logs its
own code) followed by a ``====`` rule: that header is detected and skipped, so code such as
``seed=0`` is never read as a log line (:attr:`LogInfo.source_lines`).

Nothing is guessed: what could not be found is listed in :attr:`LogInfo.missing`, and
lines that look relevant but do not parse are listed in :attr:`LogInfo.unparsed`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from golf.protocol import LABEL_TRAINED

NUM = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
INT = r"(\d[\d,_]*)"
SEP = r"\s*[:=]\s*"

RE_SEED = re.compile(r"(?<![A-Za-z0-9_])seed" + SEP + r"(\d+)\b", re.IGNORECASE)
RE_SEED_NAME = re.compile(r"seed[_-]?(\d+)", re.IGNORECASE)
RE_STEP = re.compile(r"(?<![A-Za-z_])step" + SEP + r"(\d+)\s*/\s*(\d+)", re.IGNORECASE)
RE_TRAIN_TIME = re.compile(r"train_time" + SEP + NUM + r"\s*(ms|s)\b", re.IGNORECASE)
RE_STEP_AVG = re.compile(r"step_avg" + SEP + NUM + r"\s*(ms|s)\b", re.IGNORECASE)
# `Code size: N bytes`, and the frontier's pair `Code size (uncompressed): N bytes` / `Code size (compressed): N
# bytes` (the compressed one is what its total counts; the last one printed is kept)
RE_CODE = re.compile(r"code size\s*(\(\w+\))?" + SEP + INT + r"\s*bytes", re.IGNORECASE)
# the frontier's TTT runs print their whole evaluation time: `total_eval_time:452.1s`
RE_TOTAL_EVAL = re.compile(r"total_eval_time" + SEP + NUM + r"\s*(ms|s)\b", re.IGNORECASE)
# `train_shards: 80` (the frontier prints how many training shards its data folder holds)
RE_TRAIN_SHARDS = re.compile(r"^train_shards" + SEP + r"(\d+)\b", re.IGNORECASE)
RE_MODEL = re.compile(r"serialized model\s*([^:=\s]*)" + SEP + INT + r"\s*bytes", re.IGNORECASE)
RE_TOTAL = re.compile(r"total submission size\s*([^:=\s]*)" + SEP + INT + r"\s*bytes", re.IGNORECASE)
# lower-cased line marker -> (regex, name in messages); checked in this order
SIZE_LINES = {"code size": (RE_CODE, "Code size"), "serialized model": (RE_MODEL, "Serialized model"),
              "total submission size": (RE_TOTAL, "Total submission size")}
RE_LOSS = re.compile(r"(?<![A-Za-z_])val_loss" + SEP + NUM, re.IGNORECASE)
RE_BPB = re.compile(r"(?<![A-Za-z_])val_bpb" + SEP + NUM, re.IGNORECASE)
RE_EVAL_TIME = re.compile(r"(?<![A-Za-z_])eval_time" + SEP + NUM + r"\s*(ms|s)\b", re.IGNORECASE)
RE_WORLD = re.compile(r"(?<![A-Za-z_])world_size" + SEP + r"(\d+)", re.IGNORECASE)
RE_HARDWARE = re.compile(r"^hardware" + SEP + r"(.+)$", re.IGNORECASE)
RE_GPU_ROW = re.compile(r"\|\s*\d+\s+(NVIDIA [A-Za-z0-9 ._-]+?|Tesla [A-Za-z0-9 ._-]+?)\s{2,}", re.IGNORECASE)
RE_ELAPSED = re.compile(r"total_elapsed" + SEP + NUM + r"\s*(ms|s)\b", re.IGNORECASE)
RE_BUDGET = re.compile(r"train_budget" + SEP + NUM + r"\s*(ms|s)\b", re.IGNORECASE)
RE_PRODUCTION = re.compile(r"gptq|calibrat|hessian|serializ|compress", re.IGNORECASE)
RE_ANY_TIME = re.compile(r"(?<![A-Za-z0-9_])(?:[a-z_]*time|elapsed|took|in)" + SEP.replace("[:=]", "[:= ]") + NUM
                         + r"\s*(ms|s)\b", re.IGNORECASE)
# a line of code (an f-string template, a call or a string literal), e.g. a second copy of the source later in
# a log: `log0(f"Serialized model: {model_bytes} bytes")` is never a size line
RE_CODE_LINE = re.compile(r"\{[A-Za-z_][\w.]*(\[[^\]]*\])?(:[^}]*)?\}|^\s*(f?[\"\']|[A-Za-z_][\w.]*\()")
RE_BPB_SETUP = re.compile(r"^val_bpb\s*[:=]\s*(enabled|disabled|on|off)\b", re.IGNORECASE)
RE_RULE = re.compile(r"^\s*(={20,}|-{20,})\s*$")
RE_CODE_START = re.compile(r'^(\"\"\"|\'\'\'|#!|from __future__|import \w|from \w[\w.]* import )')
PY_MARKERS = re.compile(r"^(\s+\S|def |class |import |from \S+ import|@|if __name__|#|\"\"\"|\'\'\'|\)|\]|\})")
RE_PREFIX = re.compile(r"^\s*(?:\[[^\]]*\]\s*|\d{4}-\d\d-\d\d[T ][\d:.,]+\S*\s*[-|:]?\s*)*")


def decimals(text: str) -> int:
    """Number of digits after the decimal point in a printed number ("1.2244" -> 4)."""
    text = text.strip().lower()
    if "e" in text:
        mant, exp = text.split("e", 1)
        return max(0, decimals(mant) - int(exp))
    return len(text.split(".", 1)[1]) if "." in text else 0


def _int(s: str) -> int:
    return int(s.replace(",", "").replace("_", ""))


def _ms(value: str, unit: str) -> float:
    return float(value) * (1000.0 if unit.lower() == "s" else 1.0)


@dataclass
class EvalLine:
    label: str
    val_bpb: float
    val_loss: float | None
    eval_time_ms: float | None
    line_no: int
    bpb_decimals: int
    loss_decimals: int | None

    def to_dict(self) -> dict:
        return {"label": self.label, "val_loss": self.val_loss, "val_bpb": self.val_bpb,
                "eval_time_ms": self.eval_time_ms, "line": self.line_no}


@dataclass
class LogInfo:
    path: str
    seed: int | None = None
    seed_source: str | None = None  # "content" | "filename" | None
    seed_notes: list[str] = field(default_factory=list)
    train_time_ms: float | None = None
    train_time_source: str | None = None  # "stopping_early" | "step line"
    steps: tuple[int, int] | None = None
    step_avg_ms: float | None = None
    code_bytes: int | None = None
    model_bytes: int | None = None
    model_format: str | None = None
    total_bytes: int | None = None
    total_format: str | None = None
    evals: list[EvalLine] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)
    source_lines: tuple[int, int] | None = None  # embedded train_gpt.py source skipped (first, last line)
    step_times_ms: list[tuple[int, float]] = field(default_factory=list)  # (step, train_time) of step lines
    world_size: int | None = None
    hardware: list[str] = field(default_factory=list)  # golf `hardware:` text and nvidia-smi GPU names
    total_elapsed_ms: float | None = None  # `total_elapsed:` printed by the run (training + artifact work)
    train_budget_ms: float | None = None
    production: list[tuple[int, str, float]] = field(default_factory=list)  # (line, text, ms) of GPTQ/calibration
    total_eval_time_ms: float | None = None  # `total_eval_time:` printed by a TTT run (its whole evaluation)
    train_shards: int | None = None  # `train_shards: N` printed by the run

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def scored(self) -> EvalLine | None:
        """The line taken as this run's score: the last evaluation line (its ``_exact`` twin if printed)."""
        if not self.evals:
            return None
        last = self.evals[-1]
        for e in self.evals:
            if e.label == last.label + "_exact":
                return e
        return last

    @property
    def eval_time_total_ms(self) -> float | None:
        """Sum of ``eval_time`` over the evaluation-phase lines (pre-quantization evals belong to training)."""
        times = [e.eval_time_ms for e in self.evals if e.eval_time_ms is not None and not is_training_eval(e.label)]
        if self.total_eval_time_ms is not None:  # a TTT run's own total (includes its compile warm-up)
            return max(sum(times), self.total_eval_time_ms)
        return sum(times) if times else None

    def to_dict(self) -> dict:
        s = self.scored
        return {
            "path": self.path, "seed": self.seed, "seed_source": self.seed_source, "seed_notes": self.seed_notes,
            "train_time_ms": self.train_time_ms, "train_time_source": self.train_time_source,
            "steps": list(self.steps) if self.steps else None, "step_avg_ms": self.step_avg_ms,
            "code_bytes": self.code_bytes, "model_bytes": self.model_bytes, "model_format": self.model_format,
            "total_bytes": self.total_bytes, "total_format": self.total_format,
            "evals": [e.to_dict() for e in self.evals], "scored": s.to_dict() if s else None,
            "eval_time_total_ms": self.eval_time_total_ms, "missing": self.missing, "unparsed": self.unparsed,
            "source_lines": list(self.source_lines) if self.source_lines else None, "world_size": self.world_size,
            "hardware": self.hardware, "total_elapsed_ms": self.total_elapsed_ms,
            "train_budget_ms": self.train_budget_ms, "total_eval_time_ms": self.total_eval_time_ms,
            "train_shards": self.train_shards,
            "production": [{"line": n, "text": t, "ms": ms} for n, t, ms in self.production],
        }

    @property
    def max_step_ms(self) -> float | None:
        """The slowest per-step time the log shows: ``step_avg`` and every interval between step lines."""
        rates = [self.step_avg_ms] if self.step_avg_ms else []
        pts = sorted(dict(self.step_times_ms).items())
        rates += [(t1 - t0) / (s1 - s0) for (s0, t0), (s1, t1) in zip(pts, pts[1:]) if s1 > s0 and t1 >= t0]
        return max(rates) if rates else None


RE_TRAINING_EVAL = re.compile(rf"^{re.escape(LABEL_TRAINED)}$|pre[-_ ]?quant", re.IGNORECASE)


def is_training_eval(label: str) -> bool:
    """Evaluation lines printed by the training run itself (golf's ``final_model``, pre-quantization evals)."""
    return bool(RE_TRAINING_EVAL.search(label.strip()))


def seed_from_name(name: str) -> int | None:
    m = RE_SEED_NAME.search(Path(name).name)
    return int(m.group(1)) if m else None


def embedded_source(lines: list[str]) -> tuple[int, int] | None:
    """(first, last) 1-based line numbers of a ``train_gpt.py`` source printed at the top of a log.

    The source starts at the first non-empty line when that line opens a Python module
    (docstring, ``from __future__``, ``import``) and ends at the first ``====`` / ``----``
    rule after it; without such a rule, at the last line before the first log-style line
    (``key:value`` at column 0 that is not Python)."""
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None or not RE_CODE_START.match(lines[first]):
        return None
    in_doc = False
    for i in range(first, len(lines)):
        if lines[i].count('"""') % 2 or lines[i].count("'''") % 2:
            in_doc = not in_doc
        elif not in_doc and RE_RULE.match(lines[i]):
            return first + 1, i + 1
    in_doc = False
    for i in range(first, len(lines)):
        ln = lines[i]
        if ln.count('"""') % 2 or ln.count("'''") % 2:
            in_doc = not in_doc
        if not in_doc and ln.strip() and not PY_MARKERS.match(ln) and re.match(r"^[A-Za-z_]\w*[:=]\S", ln) \
                and not re.match(r"^[A-Za-z_]\w*\s*=\s", ln):
            return (first + 1, i) if i > first else None
    return None


def _hardware_line(info: LogInfo, line: str, raw: str, gpu_rows: dict[int, str]) -> None:
    w = RE_WORLD.search(line)
    if w:
        info.world_size = int(w.group(1))
    h = RE_HARDWARE.match(line)
    if h:
        info.hardware.append(h.group(1).strip())
    g = RE_GPU_ROW.search(raw)
    if g:
        idx = int(re.search(r"\|\s*(\d+)", raw).group(1))
        gpu_rows[idx] = g.group(1).strip()


def _timing_line(info: LogInfo, no: int, line: str, after_training: bool) -> None:
    e, b = RE_ELAPSED.search(line), RE_BUDGET.search(line)
    te, ts = RE_TOTAL_EVAL.search(line), RE_TRAIN_SHARDS.match(line)
    if te:
        info.total_eval_time_ms = _ms(te.group(1), te.group(2))
    if ts:
        info.train_shards = int(ts.group(1))
    if e:
        info.total_elapsed_ms = _ms(e.group(1), e.group(2))
    if b:
        info.train_budget_ms = _ms(b.group(1), b.group(2))
    if after_training and not e and RE_PRODUCTION.search(line):
        t = RE_ANY_TIME.search(line)
        if t:
            info.production.append((no, line[:160], _ms(t.group(1), t.group(2))))


@dataclass
class _Scan:
    """What :func:`parse_log` collects line by line before it settles the :class:`LogInfo` fields."""
    content_seeds: list[int] = field(default_factory=list)
    line_seeds: list[int] = field(default_factory=list)  # whole-line `seed:N` (the run's own line), preferred
    step_times: list[tuple[float, int | None]] = field(default_factory=list)
    stop_time: float | None = None
    sizes: dict[str, list[tuple[str, int]]] = field(default_factory=lambda: {k: [] for k in SIZE_LINES})
    gpu_rows: dict[int, str] = field(default_factory=dict)


def _seed_line(scan: _Scan, line: str, raw: str) -> None:
    if not PY_MARKERS.match(raw):
        if re.match(r"^seed" + SEP + r"(\d+)\s*$", line, re.IGNORECASE):
            scan.line_seeds.append(int(RE_SEED.search(line).group(1)))
        for m in RE_SEED.finditer(line):
            scan.content_seeds.append(int(m.group(1)))


def _stop_line(info: LogInfo, scan: _Scan, no: int, line: str, raw: str) -> None:
    """``stopping_early: ... train_time: ... step: N/M``."""
    t, st = RE_TRAIN_TIME.search(line), RE_STEP.search(line)
    if t:
        scan.stop_time = _ms(t.group(1), t.group(2))
    else:
        info.unparsed.append(f"line {no}: stopping_early without a train_time: {raw.strip()[:160]}")
    if st:
        info.steps = (int(st.group(1)), int(st.group(2)))


def _step_line(info: LogInfo, scan: _Scan, no: int, line: str) -> None:
    """``step:N/M ... train_time:Xms step_avg:Yms``."""
    st, t = RE_STEP.search(line), RE_TRAIN_TIME.search(line)
    if t:
        scan.step_times.append((_ms(t.group(1), t.group(2)), no))
        if st:
            info.steps = (int(st.group(1)), int(st.group(2)))
            info.step_times_ms.append((int(st.group(1)), _ms(t.group(1), t.group(2))))
    a = RE_STEP_AVG.search(line)
    if a:
        info.step_avg_ms = _ms(a.group(1), a.group(2))


def _size_line(info: LogInfo, scan: _Scan, key: str, no: int, line: str, raw: str) -> None:
    rx, label = SIZE_LINES[key]
    m = rx.search(line)
    if m:  # (format, bytes); the code-size line has no format
        scan.sizes[key].append(((m.group(1) or "") if rx.groups > 1 else "", _int(m.group(rx.groups))))
    else:
        info.unparsed.append(f"line {no}: '{label}' line without a byte count: {raw.strip()[:160]}")


def _eval_line(info: LogInfo, no: int, line: str, raw: str) -> None:
    """Any line with ``val_bpb`` that is not a step line: ``<label> val_loss:X val_bpb:Y eval_time:Zms``."""
    b = RE_BPB.search(line)
    if not b:
        # `val_bpb:enabled tokenizer_kind=...` (the baseline's setup line) and code or comments are
        # not metric lines
        if not (RE_BPB_SETUP.match(line) or PY_MARKERS.match(raw) or "(" in line):
            info.unparsed.append(f"line {no}: val_bpb without a number: {raw.strip()[:160]}")
        return
    l_ = RE_LOSS.search(line)
    first = min(x.start() for x in (b, l_) if x is not None)
    label = line[:first].strip().rstrip(":").strip() or "(unlabeled)"
    et = RE_EVAL_TIME.search(line)
    info.evals.append(EvalLine(
        label=label, val_bpb=float(b.group(1)), val_loss=float(l_.group(1)) if l_ else None,
        eval_time_ms=_ms(et.group(1), et.group(2)) if et else None, line_no=no,
        bpb_decimals=decimals(b.group(1)), loss_decimals=decimals(l_.group(1)) if l_ else None))


def _scan_line(info: LogInfo, scan: _Scan, no: int, raw: str) -> None:
    line = RE_PREFIX.sub("", raw).strip()
    if not line or RE_CODE_LINE.search(raw):
        return
    low = line.lower()
    _hardware_line(info, line, raw, scan.gpu_rows)
    _timing_line(info, no, line, scan.stop_time is not None or bool(info.evals) or bool(scan.sizes["serialized model"]))
    _seed_line(scan, line, raw)
    key = next((k for k in SIZE_LINES if k in low), None)
    if "stopping_early" in low:
        _stop_line(info, scan, no, line, raw)
    elif re.match(r"step" + SEP + r"\d", low):
        _step_line(info, scan, no, line)
    elif key is not None:
        _size_line(info, scan, key, no, line, raw)
    elif "val_bpb" in low:
        _eval_line(info, no, line, raw)


def _settle_hardware(info: LogInfo, gpu_rows: dict[int, str]) -> None:
    if gpu_rows:  # nvidia-smi lists the node's GPUs; the run used world_size of them when it says so
        names = sorted(set(gpu_rows.values()))
        if len(names) == 1:
            info.hardware.append(f"{info.world_size or len(gpu_rows)}x{names[0]}")
        else:
            info.hardware.append(" + ".join(f"{sum(v == n for v in gpu_rows.values())}x{n}" for n in names))


def _settle_seed(info: LogInfo, scan: _Scan) -> None:
    """The seed: from the content first (whole-line ``seed:N`` before others), the file name as a cross-check."""
    name_seed = seed_from_name(info.path)
    distinct = list(dict.fromkeys(scan.line_seeds + scan.content_seeds))
    if distinct:
        info.seed, info.seed_source = distinct[0], "content"
        if len(distinct) > 1:
            info.seed_notes.append(f"several seeds printed ({', '.join(map(str, distinct))}); took the first")
        if name_seed is not None and name_seed != info.seed:
            info.seed_notes.append(f"file name says seed {name_seed} but the log prints seed {info.seed}")
    elif name_seed is not None:
        info.seed, info.seed_source = name_seed, "filename"
    else:
        info.missing.append("seed (no 'seed:N' line and no seed in the file name)")


def _settle_train_time(info: LogInfo, scan: _Scan) -> None:
    if scan.stop_time is not None:
        info.train_time_ms, info.train_time_source = scan.stop_time, "stopping_early"
    elif scan.step_times:
        info.train_time_ms, info.train_time_source = max(t for t, _ in scan.step_times), "last step line"
    else:
        info.missing.append("train_time (no 'stopping_early' or 'step:N/M ... train_time:Xms' line)")


def _pick_size(found: list[tuple[str, int]]) -> tuple[str | None, int | None]:
    """The last size line, preferring one with a format (``int6+brotli``) over a raw one."""
    if not found:
        return None, None
    packed = [f for f in found if f[0]]
    fmt, n = (packed or found)[-1]
    return fmt or "raw", n


def _settle_sizes_and_evals(info: LogInfo, sizes: dict[str, list[tuple[str, int]]]) -> None:
    if sizes["code size"]:
        info.code_bytes = sizes["code size"][-1][1]
    info.model_format, info.model_bytes = _pick_size(sizes["serialized model"])
    info.total_format, info.total_bytes = _pick_size(sizes["total submission size"])
    if info.code_bytes is None:
        info.missing.append("code size ('Code size: N bytes')")
    if info.model_bytes is None:
        info.missing.append("model size ('Serialized model <fmt>: N bytes')")
    if info.total_bytes is None:
        info.missing.append("total size ('Total submission size <fmt>: N bytes')")
    if not info.evals:
        info.missing.append("final evaluation line ('... val_loss:X val_bpb:Y')")
    elif all(e.eval_time_ms is None for e in info.evals):
        info.missing.append("eval_time on the evaluation lines")


def parse_log(text: str, path: str = "<log>") -> LogInfo:
    """Parse one training/eval log (see the module docstring for the lines it recognises)."""
    info = LogInfo(path=str(path))
    scan = _Scan()
    lines = text.splitlines()
    info.source_lines = embedded_source(lines)
    skip_to = info.source_lines[1] if info.source_lines else 0
    for no, raw in enumerate(lines, 1):
        if no > skip_to:
            _scan_line(info, scan, no, raw)
    _settle_hardware(info, scan.gpu_rows)
    _settle_seed(info, scan)
    _settle_train_time(info, scan)
    _settle_sizes_and_evals(info, scan.sizes)
    return info


def parse_log_file(path: str | Path) -> LogInfo:
    data = Path(path).read_bytes()
    return parse_log(data.decode("utf-8", errors="replace"), str(path))


def looks_like_log(text: str) -> bool:
    low = text.lower()
    return any(k in low for k in ("val_bpb", "train_time", "total submission size", "serialized model"))
