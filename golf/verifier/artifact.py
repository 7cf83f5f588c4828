"""Artifact verification: ``golf verify ARTIFACT_DIR --data DIR``.

1. Static checks: ``train_gpt.py`` and the model blob exist; a golf blob's header,
   compression and CRC are checked with the container reader before anything runs.
2. Clean run: the artifact is copied into a fresh temp dir and its ``train_gpt.py`` runs
   in eval mode in an isolated, audited child (:mod:`golf.verifier.sandbox`) that sees a
   staged data dir holding only the validation shards and the tokenizer.
3. Re-scoring (golf protocol, ``GOLF_NLL_OUT``): the verifier loads the validation
   tokens itself, counts bytes with the tokenizer LUTs (:func:`golf.metric.token_bytes`),
   sums the per-target NLLs the artifact wrote and compares with the printed lines and
   the claimed score.  Probe sequences (``GOLF_PROBE_IN/OUT``) check that the model is a
   normalized distribution (log-sum-exp ≈ 0), that it is causal (changing later tokens
   leaves earlier NLLs unchanged) and that the probe path agrees with the scored NLLs.
   A foreign ``train_gpt.py`` (no NLL output) is checked on its printed lines only.
4. Size (decimal bytes of ``train_gpt.py`` + blob + any other artifact file the run
   opened or imported) and end-to-end wall-clock time against the limits.
"""
from __future__ import annotations

import json
import lzma
import math
import os
import re
import shutil
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from golf.errors import GolfError
from golf.verifier.logparse import parse_log
from golf.verifier.report import FAIL, PASS, SKIP, WARN, Check, Section
from golf.verifier.sandbox import minimal_env, run_isolated

LIMIT_BYTES = 16_000_000
BLOB_NAME = "final_model.int6.ptz"
CODE_NAME = "train_gpt.py"
LN2 = math.log(2.0)

# exit codes (documented in `golf verify --help` and docs/cli-verify.md)
EXIT_OK = 0
EXIT_RECORDS = 3
EXIT_MALFORMED = 10
EXIT_SIZE = 11
EXIT_SCORE = 12
EXIT_RUNTIME = 13
EXIT_TIMEOUT = 14
EXIT_NETWORK = 15
EXIT_ACCESS = 16
EXIT_INVALID = 17
# when several checks fail, the exit code of the first category in this order wins
EXIT_PRIORITY = (EXIT_MALFORMED, EXIT_NETWORK, EXIT_ACCESS, EXIT_TIMEOUT, EXIT_RUNTIME, EXIT_INVALID,
                 EXIT_SCORE, EXIT_SIZE)
EXIT_NAMES = {
    EXIT_OK: "all checks passed",
    EXIT_RECORDS: "records lint: at least one folder failed",
    EXIT_MALFORMED: "malformed artifact (missing files, bad blob header, corrupt compression)",
    EXIT_SIZE: "size over the limit",
    EXIT_SCORE: "score mismatch beyond tolerance (printed or claimed vs re-scored)",
    EXIT_RUNTIME: "runtime error in the artifact",
    EXIT_TIMEOUT: "evaluation ran past the time limit",
    EXIT_NETWORK: "network access attempted",
    EXIT_ACCESS: "forbidden file access (training shards, the original data dir, code outside the artifact)",
    EXIT_INVALID: "invalid scoring (NLL count, non-normalized or non-causal model, probe disagrees with scores)",
}

# tolerances
PRINT_TOL = 2e-6      # printed val_bpb/val_loss (8 decimals) vs the verifier's sum of the same NLLs
LSE_TOL = 1e-3        # |logsumexp of log-probabilities| per position
CAUSAL_TOL = 1e-3     # |NLL change| at positions before the first changed token
SWEEP_TOL = 1e-2      # |log sum_v p(v | prefix)| from the target sweep (NLLs only, nothing self-reported)
SWEEP_LEN = 8         # length of the target-sweep sequences (the last token takes every vocabulary value)
PROBE_MEAN_TOL = 2e-3  # mean |probe NLL - scored NLL| on the same window
PROBE_MAX_TOL = 5e-2   # max  |probe NLL - scored NLL| on the same window


class VerifyInputError(ValueError, GolfError):
    """Bad input to the verifier itself (not a fault of the artifact): exit 1."""


@dataclass
class VerifyOptions:
    data_dir: Path
    claimed_bpb: float | None = None
    claimed_source: str | None = None
    max_bytes: int = LIMIT_BYTES
    eval_time_limit: float = 600.0
    device: str = "cpu"
    val_max_tokens: int = 0
    eval_seq_len: int = 0
    eval_stride: int = 0
    tolerance: float = 5e-4
    memory_limit_gb: float | None = None  # None: auto (physical RAM on cpu, off on cuda); 0: off
    probes: int = 2
    network_namespace: bool = True
    keep_temp: bool = False
    seed: int = 0
    extra: dict = field(default_factory=dict)


def exit_code_for(checks: list[Check]) -> int:
    codes = {c.exit_code for c in checks if c.failed and c.exit_code}
    for code in EXIT_PRIORITY:
        if code in codes:
            return code
    return EXIT_OK if not any(c.failed for c in checks) else EXIT_INVALID


# ----------------------------------------------------------------------------- static checks


def find_blob(art: Path, report: dict | None) -> Path | None:
    if (art / BLOB_NAME).is_file():
        return art / BLOB_NAME
    cands = sorted(p for p in art.iterdir() if p.is_file() and p.suffix == ".ptz")
    return cands[0] if cands else None


def check_blob(blob: Path, golf_artifact: bool = False) -> tuple[Check, dict | None]:
    """Header/compression/CRC of a golf blob; for a foreign blob, that some known codec opens it.

    ``golf_artifact``: the folder was written by ``golf build`` (build_report.json present),
    so the blob must be a golf container."""
    data = blob.read_bytes()
    if not data:
        return Check("artifact.blob", FAIL, 0, message=f"{blob.name} is empty", exit_code=EXIT_MALFORMED), None
    if data[:4] == b"GOLF" or golf_artifact:
        try:
            from golf.builder.container import ContainerError, dequantize, unpack
        except ImportError as e:  # pragma: no cover - builder missing from the install
            return Check("artifact.blob", WARN, len(data), message=f"golf blob, not checked ({e})"), None
        try:
            arrays, meta, info = unpack(data)
            if "q" in meta:
                dequantize(arrays, meta)
        except ContainerError as e:
            return Check("artifact.blob", FAIL, len(data), message=f"{blob.name}: {e}",
                         exit_code=EXIT_MALFORMED), None
        except Exception as e:  # anything else inside a blob is a defect of the blob too
            return Check("artifact.blob", FAIL, len(data), message=f"{blob.name}: unreadable ({type(e).__name__}: "
                         f"{e})", exit_code=EXIT_MALFORMED), None
        return Check("artifact.blob", PASS, len(data),
                     message=f"golf container v{info['version']}, {info['compressor']}, {len(arrays)} arrays, "
                             f"CRC ok"), meta
    # foreign blob: try the codecs the records use
    tried = []
    decoders = [("zlib", zlib.decompress), ("xz/lzma", lzma.decompress),
                ("raw lzma2", lambda b: lzma.decompress(b, format=lzma.FORMAT_RAW,
                                                         filters=[{"id": lzma.FILTER_LZMA2}]))]
    try:
        import brotli
        decoders.insert(0, ("brotli", brotli.decompress))
    except ImportError:
        pass
    for name, fn in decoders:
        try:
            fn(data)
            return Check("artifact.blob", PASS, len(data), message=f"foreign blob, {name}-compressed stream "
                                                                   "decodes (contents not interpreted)"), None
        except Exception:
            tried.append(name)
    if data[:4] == b"PGRP":
        return Check("artifact.blob", WARN, len(data), message="foreign PGRP per-group blob (not decoded)"), None
    return Check("artifact.blob", WARN, len(data),
                 message=f"unknown blob format (not {', '.join(tried)}); its integrity is judged by the run"), None


# ----------------------------------------------------------------------------- data


def _datasets(data_dir: Path) -> dict[int, Path]:
    out = {}
    for d in sorted((data_dir / "datasets").glob("fineweb10B_sp*")):
        m = re.fullmatch(r"fineweb10B_sp(\d+)", d.name)
        if m and d.is_dir():
            out[int(m.group(1))] = d
    return out


def resolve_data(data_dir: Path, vocab: int | None) -> tuple[int, Path, Path]:
    if not data_dir.is_dir():
        raise VerifyInputError(f"--data {data_dir}: not a directory")
    ds = _datasets(data_dir)
    if vocab is None:
        if len(ds) != 1:
            raise VerifyInputError(f"--data {data_dir}: cannot tell which dataset the artifact uses "
                                   f"(found {sorted(ds) or 'none'} under datasets/fineweb10B_sp*)")
        vocab = next(iter(ds))
    if vocab not in ds:
        raise VerifyInputError(f"--data {data_dir}: no datasets/fineweb10B_sp{vocab}/ for the artifact's vocab {vocab}")
    tok = data_dir / "tokenizers" / f"fineweb_{vocab}_bpe.model"
    if not tok.is_file():
        raise VerifyInputError(f"--data {data_dir}: no tokenizer tokenizers/{tok.name}")
    return vocab, ds[vocab], tok


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def stage_data(dataset: Path, tokenizer: Path, vocab: int, root: Path) -> Path:
    """A data dir with only the validation shards and the tokenizer (hard links or copies)."""
    from golf.data.shards import list_shards
    data = root / "data"
    for f in list_shards(dataset, "val"):
        _link_or_copy(f, data / "datasets" / f"fineweb10B_sp{vocab}" / f.name)
    for f in tokenizer.parent.glob(tokenizer.stem + ".*"):
        _link_or_copy(f, data / "tokenizers" / f.name)
    return data


def copy_artifact(src: Path, dst: Path) -> list[str]:
    """Copy regular files (links dereferenced); returns notes on anything skipped."""
    notes = []
    for p in sorted(src.rglob("*")):
        rel = p.relative_to(src)
        if "__pycache__" in rel.parts:
            continue
        if p.is_symlink():
            notes.append(f"{rel} is a symlink (copied its target's contents)")
        if p.is_dir():
            (dst / rel).mkdir(parents=True, exist_ok=True)
        elif p.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dst / rel)
    return notes


# ----------------------------------------------------------------------------- probes


def make_probes(tokens: np.ndarray, seq_len: int, vocab: int, n_random: int, seed: int) -> tuple[list, list]:
    """Sequences for the probe and (a, b, cut) causality pairs; sequence 0 is the first eval window."""
    rng = np.random.default_rng(seed)
    seqs, pairs = [], []
    L = min(seq_len, len(tokens) - 1)
    base = [tokens[:L + 1]]
    short = min(L, 128)
    for _ in range(n_random):
        if len(tokens) - short - 1 <= 0:
            break
        o = int(rng.integers(0, len(tokens) - short - 1))
        base.append(tokens[o:o + short + 1])
    for b in base:
        b = np.asarray(b, dtype=np.int64)
        cut = max(1, len(b) // 2)
        alt = b.copy()
        alt[cut:] = (b[cut:] + rng.integers(1, vocab, size=len(b) - cut)) % vocab
        pairs.append((len(seqs), len(seqs) + 1, cut))
        seqs += [b.tolist(), alt.tolist()]
    return seqs, pairs


def make_sweep(tokens: np.ndarray, vocab: int, first: int) -> tuple[list, tuple[int, int, int]]:
    """``vocab`` sequences sharing a real prefix whose last token takes every value v.

    The NLL each one reports at its last position is -log p(v | prefix); an honest model's
    probabilities over v sum to 1.  A model that peeks at its own target (and reports a
    self-consistent logsumexp) does not.  Returns (sequences, (first index, count, NLL position)).
    """
    n = min(SWEEP_LEN, len(tokens))
    prefix = [int(t) for t in tokens[:n - 1]]
    return [prefix + [v] for v in range(vocab)], (first, vocab, n - 2)


def check_sweep(nll: list, sweep: tuple[int, int, int]) -> Check:
    first, count, pos = sweep
    vals = np.array([nll[first + v][pos] for v in range(count)], dtype=np.float64)
    if not np.all(np.isfinite(vals)):
        lse = float("inf")
    else:
        m = float((-vals).max())
        lse = m + math.log(float(np.exp(-vals - m).sum()))
    ok = math.isfinite(lse) and abs(lse) <= SWEEP_TOL
    return Check("score.target_sweep", PASS if ok else FAIL, measured=lse, limit=SWEEP_TOL, exit_code=EXIT_INVALID,
                 message=f"log of sum over all {count:,} next tokens of exp(-NLL) after a fixed prefix"
                         + ("" if ok else ": the scored probabilities do not sum to 1 over the vocabulary "
                                          "(the model looks at its own target, or is not normalized)"))


def check_probes(out: dict, seqs: list, pairs: list, scored: dict[str, np.ndarray],
                 sweep: tuple[int, int, int] | None = None) -> list[Check]:
    checks = []
    try:
        lse = [np.asarray(x, dtype=np.float64) for x in out["logsumexp"]]
        nll = [np.asarray(x, dtype=np.float64) for x in out["nll"]]
        if len(lse) != len(seqs) or len(nll) != len(seqs) or \
                any(len(a) != len(s) or len(b) != len(s) - 1 for a, b, s in zip(lse, nll, seqs)):
            raise ValueError("wrong shape")
    except (KeyError, TypeError, ValueError) as e:
        return [Check("score.probe", FAIL, message=f"probe output malformed ({e}): expected "
                      "{'logsumexp': [[len(seq)]...], 'nll': [[len(seq)-1]...]}", exit_code=EXIT_INVALID)]
    worst = max(float(np.max(np.abs(a))) if len(a) else 0.0 for a in lse)
    bad_nll = any(not np.all(np.isfinite(b)) or (len(b) and float(b.min()) < -1e-4) for b in nll)
    checks.append(Check("score.normalized", FAIL if (worst > LSE_TOL or not math.isfinite(worst) or bad_nll)
                        else PASS, measured=worst, limit=LSE_TOL, exit_code=EXIT_INVALID, message=(
        f"max |logsumexp| over {sum(len(a) for a in lse):,} probed positions"
        + ("; negative or non-finite probe NLLs" if bad_nll else "")
        + ("" if worst <= LSE_TOL else ": the scores are not a normalized distribution over the vocabulary"))))
    diffs = []
    for a, b, cut in pairs:
        k = cut - 1  # NLL positions 0..cut-2 predict tokens 1..cut-1, all before the first change
        if k > 0:
            diffs.append(float(np.max(np.abs(nll[a][:k] - nll[b][:k]))))
    cd = max(diffs) if diffs else 0.0
    checks.append(Check("score.causal", FAIL if cd > CAUSAL_TOL or not math.isfinite(cd) else PASS, measured=cd,
                        limit=CAUSAL_TOL, exit_code=EXIT_INVALID, message=(
        f"max NLL change before the first altered token over {len(pairs)} pair(s)"
        + ("" if cd <= CAUSAL_TOL else ": predictions depend on later tokens (peeking)"))))
    if sweep is not None:
        checks.append(check_sweep(nll, sweep))
    # the first probe sequence is the first evaluation window: it must match the scored NLLs
    msgs, bad = [], False
    for name, arr in scored.items():
        k = min(len(arr), len(nll[0]))
        if k == 0:
            continue
        d = np.abs(nll[0][:k] - arr[:k].astype(np.float64))
        mean, mx = float(d.mean()), float(d.max())
        ok = mean <= PROBE_MEAN_TOL and mx <= PROBE_MAX_TOL
        bad |= not ok
        msgs.append(f"{name}: mean |Δ| {mean:.2e}, max {mx:.2e} over {k} positions")
    if msgs:
        checks.append(Check("score.probe_consistency", FAIL if bad else PASS, exit_code=EXIT_INVALID,
                            limit=PROBE_MEAN_TOL, message=
                            "probe NLLs of the first window vs the scored NLLs: " + "; ".join(msgs)
                            + ("; the scoring path does not match the model's own predictions" if bad else "")))
    return checks


# ----------------------------------------------------------------------------- main


def _config_from(meta: dict | None, report: dict | None) -> dict:
    """vocab_size / eval settings the artifact will use by default."""
    out = {}
    cfg = None
    if meta and "config" in meta:
        cfg = meta["config"]
        if isinstance(cfg, str):
            try:
                cfg = json.loads(cfg)
            except ValueError:
                cfg = None
    if isinstance(cfg, dict):
        out["vocab_size"] = cfg.get("model", {}).get("vocab_size")
        ev = cfg.get("eval", {})
        out["eval_seq_len"] = ev.get("eval_seq_len")
        out["eval_stride"] = ev.get("eval_stride")
        out["sliding"] = ev.get("sliding_window")
    if report:
        out.setdefault("vocab_size", (report.get("quant") or {}).get("vocab_size"))
    return {k: v for k, v in out.items() if v is not None}


def _rescore(nll: np.ndarray, tokens: np.ndarray, luts) -> tuple[float, float, int, int]:
    from golf.metric import token_bytes
    n = len(nll)
    nbytes = 0
    chunk = 1 << 22
    for i in range(0, n, chunk):
        j = min(i + chunk, n)
        nbytes += int(np.asarray(token_bytes(luts, tokens[i:j], tokens[i + 1:j + 1])).sum())
    s = float(np.sum(nll, dtype=np.float64))
    return s / n, s / (LN2 * nbytes) if nbytes else math.nan, n, nbytes


def verify_artifact(art_dir: str | Path, opts: VerifyOptions, log=print) -> Section:
    art = Path(art_dir)
    sec = Section(title=str(art))
    info = sec.info
    info.update(mode=None, partial=bool(opts.val_max_tokens), device=opts.device)
    if not art.is_dir():
        raise VerifyInputError(f"{art}: not a directory (expected an artifact dir with train_gpt.py)")

    # -------- static
    code = art / CODE_NAME
    report = None
    if (art / "build_report.json").is_file():
        try:
            report = json.loads((art / "build_report.json").read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            sec.add("artifact.report", WARN, message=f"build_report.json unreadable ({e}); ignored")
    blob = find_blob(art, report)
    missing = [n for n, p in ((CODE_NAME, code), ("model blob (*.ptz)", blob)) if p is None or not p.is_file()]
    empty = [p.name for p in (code, blob) if p is not None and p.is_file() and p.stat().st_size == 0]
    sec.add("artifact.files", FAIL if (missing or empty) else PASS, exit_code=EXIT_MALFORMED,
            message=("missing: " + ", ".join(missing) if missing else "")
                    + (("; " if missing else "") + "empty: " + ", ".join(empty) if empty else "")
                    or f"{CODE_NAME} and {blob.name} present")
    if missing or empty:
        return sec
    blob_check, meta = check_blob(blob, golf_artifact=report is not None)
    sec.checks.append(blob_check)
    if blob_check.failed:
        return sec
    code_text = code.read_bytes().decode("utf-8", errors="replace")
    golf_expected = report is not None or meta is not None or "GOLF_NLL_OUT" in code_text
    cfg = _config_from(meta, report)
    vocab, dataset, tokenizer = resolve_data(Path(opts.data_dir), cfg.get("vocab_size"))
    seq_len = opts.eval_seq_len or cfg.get("eval_seq_len") or 2048
    info.update(vocab_size=vocab, eval_seq_len=seq_len, eval_stride=opts.eval_stride or cfg.get("eval_stride"),
                val_max_tokens=opts.val_max_tokens or None)
    overridden = [f"{name} {mine} (artifact default {cfg[key]})" for name, mine, key in
                  (("--eval-seq-len", opts.eval_seq_len, "eval_seq_len"), ("--eval-stride", opts.eval_stride,
                                                                            "eval_stride"))
                  if mine and cfg.get(key) is not None and int(cfg[key]) != int(mine)]
    info["settings_overridden"] = overridden

    from golf.data.loader import load_val_tokens
    from golf.metric import build_byte_luts
    try:
        tokens = np.asarray(load_val_tokens(dataset, seq_len, vocab, opts.val_max_tokens), dtype=np.int64)
        luts = build_byte_luts(str(tokenizer), vocab)
    except ValueError as e:
        raise VerifyInputError(f"--data {opts.data_dir}: {e}") from None
    info["targets"] = int(len(tokens) - 1)

    # -------- stage + run
    tmp = Path(tempfile.mkdtemp(prefix="golf-verify-"))
    try:
        work, io_dir = tmp / "art", tmp / "io"
        work.mkdir()
        io_dir.mkdir()
        (tmp / "home").mkdir()
        (tmp / "tmp").mkdir()
        notes = copy_artifact(art, work)
        data = stage_data(dataset, tokenizer, vocab, tmp)
        seqs, pairs = make_probes(tokens, seq_len, vocab, opts.probes, opts.seed)
        sweep_seqs, sweep = make_sweep(tokens, vocab, len(seqs))
        seqs = seqs + sweep_seqs
        (io_dir / "probe_in.json").write_text(json.dumps({"sequences": seqs}), encoding="utf-8")
        env = {
            "GOLF_MODE": "eval", "DATA_DIR": str(data),
            "DATA_PATH": str(data / "datasets" / f"fineweb10B_sp{vocab}"),
            "TOKENIZER_PATH": str(data / "tokenizers" / tokenizer.name),
            "GOLF_NLL_OUT": str(io_dir / "nll"), "GOLF_PROBE_IN": str(io_dir / "probe_in.json"),
            "GOLF_PROBE_OUT": str(io_dir / "probe_out.json"), "GOLF_DEVICE": opts.device,
            "VOCAB_SIZE": str(vocab),
        }
        if opts.val_max_tokens:
            env["VAL_MAX_TOKENS"] = str(opts.val_max_tokens)
        if opts.eval_seq_len:
            env["EVAL_SEQ_LEN"] = str(opts.eval_seq_len)
        if opts.eval_stride:
            env["EVAL_STRIDE"] = str(opts.eval_stride)
        env.update(opts.extra)
        mem = opts.memory_limit_gb
        if mem is None:
            mem_bytes = None if opts.device == "cuda" else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        else:
            mem_bytes = int(mem * (1 << 30)) or None
        # the original datasets (train shards live there); the child reads the staged copy instead
        deny = sorted({str((Path(opts.data_dir) / "datasets").resolve()),
                       os.path.abspath(os.path.join(opts.data_dir, "datasets")), str(dataset.resolve())})
        log(f"running {CODE_NAME} in a clean process (limit {opts.eval_time_limit:g} s) ...")
        res = run_isolated(work / CODE_NAME, work, minimal_env(env, tmp / "home", tmp / "tmp"),
                           opts.eval_time_limit, io_dir / "audit.jsonl", deny, mem_bytes, opts.network_namespace)
        info.update(isolation=res.isolation, network_namespace=res.netns, memory_limit_bytes=res.memory_limit_bytes,
                    returncode=res.returncode, wall_s=round(res.wall_s, 3), copy_notes=notes,
                    stdout_tail=res.stdout[-4000:], stderr_tail=res.stderr[-4000:],
                    files_opened=[p for p in res.opened], modules_imported=res.imports,
                    processes_spawned=res.spawns, network_attempts=res.net, denied_opens=res.denied)

        # -------- isolation
        sec.add("isolation.network", FAIL if res.net else PASS, measured=len(res.net), limit=0,
                exit_code=EXIT_NETWORK,
                message=(f"{len(res.net)} blocked network attempt(s): "
                         + "; ".join(f"{e['event']} {e['args']}" for e in res.net[:3]) if res.net else
                         "no network attempt") + f" [{res.isolation}]")
        golf_pkg = _golf_package_dir()
        outside = sorted({p for p in res.opened if golf_pkg and p.startswith(golf_pkg + os.sep) and p.endswith(".py")})
        bad = res.denied + [f"{p} (golf source outside the artifact)" for p in outside]
        sec.add("isolation.files", FAIL if bad else PASS, measured=len(bad), limit=0, exit_code=EXIT_ACCESS,
                message=("forbidden: " + "; ".join(bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""))
                if bad else f"no training-data access; {len(res.opened):,} files opened (listed in the JSON report)")
        if res.spawns:
            sec.add("isolation.processes", WARN if res.netns else FAIL, measured=len(res.spawns),
                    exit_code=EXIT_NETWORK,
                    message=f"{len(res.spawns)} process(es) spawned (outside the audit hook"
                            + ("; they share the empty network namespace)" if res.netns else
                               " and without a network namespace: not isolated)"))

        # -------- run outcome
        if res.timed_out:
            sec.add("run.exit", FAIL, measured=round(res.wall_s, 3), limit=opts.eval_time_limit,
                    exit_code=EXIT_TIMEOUT, message=f"killed after {opts.eval_time_limit:g} s wall clock")
        elif res.returncode != 0:
            code_ = EXIT_RUNTIME
            ex = res.exception or {}
            tail = (ex.get("type", "") + ": " + ex.get("message", "")) if ex else _last_error(res.stderr)
            if "ContainerError" in res.stderr or "malformed model blob" in res.stderr \
                    or ex.get("type") == "ContainerError":
                code_ = EXIT_MALFORMED
            sec.add("run.exit", FAIL, measured=res.returncode, limit=0, exit_code=code_,
                    message=f"train_gpt.py exited with status {res.returncode}: {tail}".strip())
        else:
            sec.add("run.exit", PASS, measured=0, message=f"finished in {res.wall_s:.2f} s")
        ran_ok = not res.timed_out and res.returncode == 0

        # -------- time
        sec.add("time.eval", FAIL if (res.timed_out or res.wall_s > opts.eval_time_limit) else PASS,
                measured=round(res.wall_s, 3), limit=opts.eval_time_limit, exit_code=EXIT_TIMEOUT,
                message="end-to-end wall clock of the clean run (start-up, decompression, compile and scoring)"
                        + (", on a partial validation set" if opts.val_max_tokens else ""))

        # -------- size
        counted = {CODE_NAME: code.stat().st_size, blob.name: blob.stat().st_size}
        wroot = str(work)
        for p in res.opened:
            if p.startswith(wroot + os.sep):
                rel = os.path.relpath(p, wroot)
                src = art / rel
                if rel not in counted and src.is_file() and "__pycache__" not in rel:
                    counted[rel] = src.stat().st_size
        total = sum(counted.values())
        uncounted = [str(p.relative_to(art)) for p in art.rglob("*") if p.is_file()
                     and str(p.relative_to(art)) not in counted and "__pycache__" not in p.parts]
        info.update(size_counted=counted, size_not_counted=uncounted)
        sec.add("size.total", FAIL if total > opts.max_bytes else PASS, measured=total, limit=opts.max_bytes,
                exit_code=EXIT_SIZE, message=("counted (decimal bytes): " + ", ".join(f"{k} {v:,}" for k, v in
                                                                                     counted.items())
                                              + (f"; not opened by the run, not counted: {', '.join(uncounted)}"
                                                 if uncounted else "")
                                              + ("" if ran_ok else "; the run did not finish, so files it would "
                                                                   "have opened later may be missing")))

        # -------- score
        printed = parse_log(res.stdout, "stdout")
        info["printed"] = [e.to_dict() for e in printed.evals]
        info["printed_total_bytes"] = printed.total_bytes
        if not ran_ok:
            sec.add("score.rescore", SKIP, message="the run did not finish")
            return sec
        nll_dir = io_dir / "nll"
        nll_files = {k: nll_dir / f"nll_{k}.f32" for k in ("roundtrip", "sliding")}
        nlls = {}
        for k, p in nll_files.items():
            if p.is_file():
                raw = p.read_bytes()
                if len(raw) % 4:
                    sec.add(f"score.nll_{k}", FAIL, exit_code=EXIT_INVALID,
                            message=f"{p.name}: {len(raw)} bytes is not a whole number of float32 values")
                    continue
                nlls[k] = np.frombuffer(raw, dtype="<f4")
        if not nlls:
            info["mode"] = "printed lines (foreign script: no GOLF_NLL_OUT output)"
            if golf_expected:
                sec.add("score.protocol", FAIL, exit_code=EXIT_INVALID,
                        message="a golf artifact must write per-target NLLs to GOLF_NLL_OUT; none were written")
            else:
                sec.add("score.protocol", WARN, message="foreign train_gpt.py: no per-token NLLs, so the score is "
                                                        "taken from its printed final lines, NOT re-scored")
            _foreign_scores(sec, printed, opts)
            return sec
        info["mode"] = "re-scored (golf protocol: GOLF_NLL_OUT per-target NLLs)"
        sec.add("score.protocol", PASS, message="golf protocol: re-scored from the per-target NLLs with the "
                                                "verifier's own byte count")
        expected = len(tokens) - 1
        rescored = {}
        for k, arr in nlls.items():
            n = len(arr)
            finite = bool(np.all(np.isfinite(arr)))
            neg = finite and n and float(arr.min()) < -1e-4
            ok = n == expected and finite and not neg
            sec.add(f"score.nll_{k}", PASS if ok else FAIL, measured=n, limit=expected, exit_code=EXIT_INVALID,
                    message=(f"{n:,} per-target NLLs" + ("" if n == expected else
                                                          f", expected {expected:,} (one per scored target)")
                             + ("" if finite else "; non-finite values") + ("; negative NLLs" if neg else "")))
            if ok:
                loss, bpb, nt, nb = _rescore(arr, tokens, luts)
                rescored[k] = {"val_loss": loss, "val_bpb": bpb, "tokens": nt, "bytes": nb}
        info["rescored"] = rescored
        for k, r in rescored.items():
            line = _printed_line(printed, k)
            if line is None:
                sec.add(f"score.printed_{k}", FAIL, measured=r["val_bpb"], exit_code=EXIT_SCORE,
                        message=f"NLLs written for '{k}' but no matching final line printed")
                continue
            d_bpb = abs(line.val_bpb - r["val_bpb"])
            d_loss = abs(line.val_loss - r["val_loss"]) if line.val_loss is not None else 0.0
            ok = d_bpb <= PRINT_TOL and d_loss <= PRINT_TOL
            sec.add(f"score.printed_{k}", PASS if ok else FAIL, measured=round(r["val_bpb"], 8),
                    limit=line.val_bpb, exit_code=EXIT_SCORE,
                    message=f"printed '{line.label}' val_bpb {line.val_bpb:.8f} vs re-scored {r['val_bpb']:.8f} "
                            f"({r['tokens']:,} tokens, {r['bytes']:,} bytes counted by the verifier)"
                            + ("" if ok else f": differs by {d_bpb:.2e} bpb / {d_loss:.2e} nats"))
        score_key = "sliding" if "sliding" in rescored else ("roundtrip" if "roundtrip" in rescored else None)
        if score_key:
            info["score"] = {"kind": score_key, **rescored[score_key]}
            _claimed_check(sec, rescored[score_key]["val_bpb"], score_key, opts, report, rescored)
        # -------- probes
        pout = io_dir / "probe_out.json"
        if pout.is_file():
            try:
                out = json.loads(pout.read_text(encoding="utf-8"))
            except ValueError as e:
                sec.add("score.probe", FAIL, exit_code=EXIT_INVALID, message=f"probe output is not JSON ({e})")
            else:
                first_window = {k: v for k, v in nlls.items() if len(v) == expected}
                sec.checks.extend(check_probes(out, seqs, pairs, first_window, sweep))
        else:
            sec.add("score.probe", FAIL, exit_code=EXIT_INVALID,
                    message="GOLF_PROBE_OUT was not written: normalization and causality cannot be checked")
        return sec
    finally:
        if opts.keep_temp:
            info["temp_dir"] = str(tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _golf_package_dir() -> str | None:
    try:
        import golf
        return str(Path(golf.__file__).resolve().parent)
    except Exception:  # pragma: no cover
        return None


def _last_error(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "(no error output)"


def _printed_line(printed, kind: str):
    want = "sliding" if kind == "sliding" else "roundtrip"
    lines = [e for e in printed.evals if want in e.label.lower()]
    return lines[-1] if lines else None


def _claimed_check(sec: Section, value: float, kind: str, opts: VerifyOptions, report: dict | None,
                   rescored: dict) -> None:
    partial = bool(opts.val_max_tokens)
    overridden = sec.info.get("settings_overridden") or []
    if opts.claimed_bpb is not None:
        if partial or overridden:
            why = (f"partial validation set (--val-max-tokens {opts.val_max_tokens})" if partial else
                   "non-default evaluation settings (" + ", ".join(overridden) + ")")
            sec.add("score.claimed", SKIP, measured=round(value, 8), limit=opts.claimed_bpb,
                    message=f"{why}: the claimed score ({opts.claimed_source}) was measured under the artifact's "
                            "own settings and cannot be compared")
            return
        d = abs(value - opts.claimed_bpb)
        ok = d <= opts.tolerance
        sec.add("score.claimed", PASS if ok else FAIL, measured=round(value, 8), limit=opts.claimed_bpb,
                exit_code=EXIT_SCORE,
                message=f"re-scored {kind} {value:.8f} vs claimed {opts.claimed_bpb} ({opts.claimed_source}): "
                        f"|Δ| {d:.2e} {'≤' if ok else '>'} tolerance {opts.tolerance:g}")
        return
    # no explicit claim: compare with the build report when it was measured under the same settings
    if report and isinstance(report.get("post_quant"), dict):
        ev = report.get("eval") or {}
        same = (int(ev.get("max_tokens") or 0) == int(opts.val_max_tokens or 0)
                and int(ev.get("seq_len") or 0) == int(sec.info.get("eval_seq_len") or 0))
        hits = []
        for k, r in rescored.items():
            claimed = (report["post_quant"].get(k) or {}).get("val_bpb")
            if claimed is None or (k == "sliding" and int(ev.get("stride") or 0) != int(sec.info.get("eval_stride")
                                                                                        or 0)):
                continue
            hits.append((k, claimed, r["val_bpb"]))
        if not same or not hits:
            sec.add("score.claimed", SKIP, message="no claimed score given (--claimed-bpb / --submission) and the "
                                                   "build report was measured under other evaluation settings")
            return
        bad = [h for h in hits if abs(h[1] - h[2]) > opts.tolerance]
        sec.add("score.claimed", FAIL if bad else PASS, measured=round(hits[-1][2], 8), limit=hits[-1][1],
                exit_code=EXIT_SCORE, message="vs build_report.json post-quant: " + "; ".join(
                    f"{k} claimed {c:.8f} re-scored {v:.8f} (|Δ| {abs(c - v):.2e})" for k, c, v in hits)
                + f"; tolerance {opts.tolerance:g}")
        return
    sec.add("score.claimed", SKIP, message="no claimed score given (--claimed-bpb or --submission)")


def _foreign_scores(sec: Section, printed, opts: VerifyOptions) -> None:
    scored = printed.scored
    if scored is None:
        sec.add("score.printed", FAIL, exit_code=EXIT_SCORE, message="no final 'val_loss:… val_bpb:…' line printed")
        return
    sec.info["score"] = {"kind": scored.label, "val_bpb": scored.val_bpb, "val_loss": scored.val_loss,
                         "source": "printed"}
    sec.add("score.printed", WARN, measured=scored.val_bpb,
            message=f"printed '{scored.label}' val_bpb {scored.val_bpb} (not re-scored)")
    sec.add("score.normalized", SKIP, message="foreign script: no probe protocol")
    sec.add("score.causal", SKIP, message="foreign script: no probe protocol")
    if opts.claimed_bpb is not None and not opts.val_max_tokens:
        d = abs(scored.val_bpb - opts.claimed_bpb)
        ok = d <= opts.tolerance
        sec.add("score.claimed", PASS if ok else FAIL, measured=scored.val_bpb, limit=opts.claimed_bpb,
                exit_code=EXIT_SCORE, message=f"printed {scored.val_bpb} vs claimed {opts.claimed_bpb} "
                                              f"({opts.claimed_source}): |Δ| {d:.2e}, tolerance {opts.tolerance:g}")
