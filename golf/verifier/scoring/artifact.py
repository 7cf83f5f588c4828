"""Artifact verification: ``golf verify ARTIFACT_DIR --data DIR``.

Exit 0 means one thing: the score was computed by code the verifier trusts, or measured
through a channel the artifact cannot game.  The steps (each a function below):

1. **files**: ``train_gpt.py`` and the blob exist; a golf blob's header, compression and CRC
   are checked with golf's container reader before anything runs.
2. **pinning**: the tokenizer's vocabulary equals the model's and the dataset manifest's; its
   sha256 equals the manifest's and ``build_report.json``'s; whether it is a published one.
3. **classify**: a golf artifact is a golf blob + a ``train_gpt.py`` byte-identical to the one
   the installed golf regenerates from the blob's config (reproducible-build check); anything
   else is foreign.
4. **coverage**: the verifier loads the whole validation stream itself (no truncation; the
   report records targets, bytes and the sha256 of the stream).
5. **trusted**: for a golf artifact, ``python -m golf.verifier.scoring.trusted`` scores every window
   with golf's own code in a separate process (none of the artifact's code runs there).
6. **protocol**: the artifact runs in the sandbox and answers golf-eval/2 requests over two
   pipes (:mod:`golf.verifier.scoring.protocol`); a fresh second process answers blind audits
   (:mod:`golf.verifier.scoring.audits`).  An artifact that never starts a frame is "unverified";
   one that breaks the framing is a protocol failure.
7. **compare / claimed / size / time**: golf: the trusted score is the score and the artifact's
   answers must agree with it; foreign: its answers (every audit passing) are the score.
"""
from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import shutil
import tempfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from golf.errors import GolfError
from golf.protocol import (
    BLOB_NAME,
    CODE_NAME,
    ENV_DATA_DIR,
    ENV_DEVICE,
    ENV_EVAL_IN,
    ENV_EVAL_OUT,
    ENV_EVAL_PROTOCOL,
    ENV_MODE,
    EXIT_ACCESS,
    EXIT_CANNOT_ISOLATE,
    EXIT_CPU_TIME,
    EXIT_FILE_SIZE,
    EXIT_INVALID,
    EXIT_MALFORMED,
    EXIT_MEMORY,
    EXIT_NETWORK,
    EXIT_OK,
    EXIT_PROCESSES,
    EXIT_RUNTIME,
    EXIT_SCORE,
    EXIT_SIZE,
    EXIT_TIMEOUT,
    EXIT_TOKENIZER,
    EXIT_UNVERIFIED,
    LIMIT_BYTES,
    REPORT_NAME,
)
from golf.verifier.logparse import parse_log
from golf.verifier.report import FAIL, PASS, SKIP, WARN, Check, Section
from golf.verifier.scoring import protocol as P

# when several checks fail, the exit code of the first category in this order wins
EXIT_PRIORITY = (EXIT_MALFORMED, EXIT_CANNOT_ISOLATE, EXIT_NETWORK, EXIT_ACCESS, EXIT_PROCESSES, EXIT_MEMORY,
                 EXIT_CPU_TIME, EXIT_FILE_SIZE, EXIT_TIMEOUT, EXIT_RUNTIME, EXIT_TOKENIZER, EXIT_UNVERIFIED,
                 EXIT_INVALID, EXIT_SCORE, EXIT_SIZE)

# the artifact's answers vs the trusted path, |Δ val_bpb|: fp32 on CPU; bf16 autocast on GPU (documented bound)
TRUSTED_TOL = {"cpu": 1e-6, "cuda": 1e-3}
REQUEST_ITEMS = 16   # windows per request when the config does not say
PROTOCOL_MODES = ("auto", "windows", "score-first")


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
    network_namespace: bool = True
    keep_temp: bool = False
    allow_unverified: bool = False
    protocol_mode: str = "auto"
    weak_isolation: bool = False
    max_eval_seq_len: int = 4096
    audit_budget: float = 0.10   # extra forward tokens of the audits / real forward tokens: a hard limit
    audit_fraction: float = 0.01  # f: the cheating fraction the detection bound is stated for
    audit_delta: float = 1e-6     # the miss probability asked for: n = ceil(ln delta / ln(1 - f)) audits
    allow_packages: tuple[str, ...] = ()  # distributions visible in the sandbox besides the default allow-list
    train_data: Path | None = None  # training shards to search for validation documents (data.overlap)
    extra: dict = field(default_factory=dict)


def exit_code_for(checks: list[Check]) -> int:
    codes = {c.exit_code for c in checks if c.failed and c.exit_code}
    for code in EXIT_PRIORITY:
        if code in codes:
            return code
    return EXIT_OK if not any(c.failed for c in checks) else EXIT_INVALID


# ----------------------------------------------------------------------------- 1. files


def find_blob(art: Path) -> Path | None:
    if (art / BLOB_NAME).is_file():
        return art / BLOB_NAME
    cands = sorted(p for p in art.iterdir() if p.is_file() and p.suffix == ".ptz")
    return cands[0] if cands else None


def read_capped(path: Path, cap: int) -> bytes:
    """Read an output file safely: no symlinks (O_NOFOLLOW), regular files only, at most ``cap`` bytes."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        import stat
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path.name} is not a regular file")
        if st.st_size > cap:
            raise ValueError(f"{path.name} is {st.st_size:,} bytes, over the {cap:,}-byte cap")
        return os.read(fd, cap + 1)[:cap]
    finally:
        os.close(fd)


def check_blob(blob: Path, golf_artifact: bool = False) -> tuple[Check, dict | None]:
    """Header/compression/CRC of a golf blob; for a foreign blob, that some known codec opens it."""
    data = blob.read_bytes()
    if not data:
        return Check("artifact.blob", FAIL, 0, message=f"{blob.name} is empty", exit_code=EXIT_MALFORMED), None
    if data[:4] == b"GOLF" or golf_artifact:
        from golf.builder.container import ContainerError, dequantize, unpack
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
        return Check("artifact.blob", PASS, len(data), message=f"golf container v{info['version']}, "
                     f"{info['compressor']}, {len(arrays)} arrays, CRC ok"), meta
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
            continue
    return Check("artifact.blob", WARN, len(data),
                 message="unknown blob format; its integrity is judged by the run"), None


# ----------------------------------------------------------------------------- 2. data + pinning


@dataclass
class Data:
    vocab: int
    dataset: Path
    tokenizer: Path
    stream: np.ndarray = None
    luts: object = None
    nbytes: int = 0
    sha256: str = ""
    byte_basis: str = "lut"  # "sidecar": the dataset's fineweb_val_bytes_*.bin (CaseOps), else the tokenizer's LUTs
    sidecar_sha256: str = ""


def resolve_data(data_dir: Path, vocab: int | None) -> Data:
    """The dataset and tokenizer of vocab ``vocab``: as the data dir's manifest names them, else the official
    names (``datasets/fineweb10B_spV``, ``tokenizers/fineweb_V_bpe.model``)."""
    from golf.data.shards import manifest_names
    if not data_dir.is_dir():
        raise VerifyInputError(f"--data {data_dir}: not a directory")
    try:
        named = manifest_names(data_dir, vocab) if vocab is not None else None
    except ValueError as e:
        raise VerifyInputError(f"--data: {e}") from None
    if named:
        if not (data_dir / named[1]).is_file():
            raise VerifyInputError(f"--data {data_dir}: no tokenizer {named[1]} (named by its manifest.json)")
        return Data(vocab, data_dir / named[0], data_dir / named[1])
    ds = {int(m.group(1)): d for d in sorted((data_dir / "datasets").glob("fineweb10B_sp*"))
          if d.is_dir() and (m := re.fullmatch(r"fineweb10B_sp(\d+)", d.name))}
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
    return Data(vocab, ds[vocab], tok)


def pinning_checks(data: Data, data_dir: Path, model_vocab: int | None, report: dict | None) -> list[Check]:
    from golf.data.pinning import PinError, file_sha256, published_status, tokenizer_vocab
    try:
        n = tokenizer_vocab(data.tokenizer)
    except PinError as e:
        return [Check("pin.tokenizer_vocab", FAIL, message=str(e), exit_code=EXIT_TOKENIZER)]
    digest = file_sha256(data.tokenizer)
    manifest = _json_or_none(data_dir / "manifest.json") or {}
    entry = next((t for t in manifest.get("tokenizers", []) if str(t.get("model_path", "")).endswith(
        data.tokenizer.name)), {}) if isinstance(manifest, dict) else {}
    want = {"model": model_vocab, "manifest": entry.get("vocab_size")}
    bad = {k: v for k, v in want.items() if v is not None and int(v) != n}
    checks = [Check("pin.tokenizer_vocab", FAIL if bad else PASS, measured=n, limit=model_vocab,
                    exit_code=EXIT_TOKENIZER, message=(f"{data.tokenizer.name} has {n} pieces; " + ", ".join(
                        f"{k} vocab {v}" for k, v in want.items() if v is not None)) + (
                        " — the tokenizer does not match" if bad else ""))]
    recorded = {"manifest.json": entry.get("sha256"), REPORT_NAME: (report or {}).get("tokenizer_sha256")}
    diff = [k for k, v in recorded.items() if v and v != digest]
    checks.append(Check("pin.tokenizer_sha256", FAIL if diff else PASS, measured=digest[:16],
                        exit_code=EXIT_TOKENIZER, message=(
                            "differs from the sha256 recorded in " + ", ".join(diff) if diff else
                            ("matches " + ", ".join(k for k, v in recorded.items() if v)
                             if any(recorded.values()) else "no sha256 recorded in the manifest or the build report"))
                        + "; " + published_status(data.tokenizer, digest, data_dir)))
    checks.append(published_check(data, data_dir, digest))
    return checks


def published_check(data: Data, data_dir: Path, tok_digest: str) -> Check:
    """``pin.published``: the tokenizer and every validation shard against the sha256 that `golf data
    download` recorded as published by the Hub (golf.data.published); a difference fails, no record warns."""
    from golf.data.pinning import published_checks
    files = [data.tokenizer, *sorted(data.dataset.glob("fineweb_val_*.bin"))]
    ok, bad, missing = published_checks(data_dir, files, {str(data.tokenizer.resolve()): tok_digest})
    if bad:
        return Check("pin.published", FAIL, measured=len(bad), limit=0, exit_code=EXIT_TOKENIZER,
                     message="differs from the published sha256 recorded by golf data download: " + ", ".join(bad))
    if missing:
        return Check("pin.published", WARN, measured=len(ok), message=f"{len(missing)} of {len(files)} file(s) have "
                     "no published sha256 on record (not fetched by golf data download): " + ", ".join(missing[:4]))
    return Check("pin.published", PASS, measured=len(ok), message=f"the tokenizer and {len(ok) - 1} validation "
                 "shard(s) match the sha256 the Hub publishes (recorded by golf data download)")


def load_stream(data: Data, max_tokens: int) -> None:
    """The whole validation stream (untruncated), the verifier's byte count and the stream's sha256."""
    from golf.data.loader import load_val_tokens
    from golf.metric import byte_basis, byte_source
    from golf.verifier.scoring.streaming import stream_bytes
    try:
        data.stream = np.asarray(load_val_tokens(data.dataset, 0, data.vocab, max_tokens), dtype=np.int64)
        data.luts = byte_source(data.dataset, str(data.tokenizer), data.vocab, len(data.stream))
    except ValueError as e:
        raise VerifyInputError(f"--data: {e}") from None
    if len(data.stream) < 2:
        raise VerifyInputError(f"{data.dataset}: the validation stream holds fewer than 2 tokens")
    data.nbytes = stream_bytes(data.luts, data.stream)
    data.sha256 = hashlib.sha256(data.stream.astype("<u2").tobytes()).hexdigest()
    data.byte_basis = byte_basis(data.luts)
    if data.byte_basis == "sidecar":  # pinned like the stream: the counts the score divides by
        data.sidecar_sha256 = hashlib.sha256(data.luts.astype("<u2").tobytes()).hexdigest()


def overlap_check(data: Data, train_data: Path) -> Check:
    """``data.overlap``: validation documents of the verifier's own stream found in the training shards of
    ``train_data`` (a dataset folder, or a data root holding a dataset of the same name); documents are
    compared by hash between BOS tokens (golf.data.overlap), so any variant is covered."""
    from golf.data.overlap import find_overlap
    from golf.data.shards import list_shards
    train_dir = train_data if list_shards(train_data, "train") else train_data / "datasets" / data.dataset.name
    if not list_shards(train_dir, "train"):
        raise VerifyInputError(f"--train-data {train_data}: no training shards (fineweb_train_*.bin) in it or in "
                               f"datasets/{data.dataset.name}/")
    res = find_overlap(data.dataset, train_dir, val_tokens=data.stream)
    return Check("data.overlap", FAIL if res.shared else PASS, measured=len(res.shared), limit=0,
                 exit_code=EXIT_INVALID, message=res.line())


def _json_or_none(path: Path):
    try:
        return json.loads(read_capped(path, 1 << 26).decode("utf-8")) if path.is_file() else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None


# ----------------------------------------------------------------------------- 3. classify


def classify(code: Path, meta: dict | None, info: dict | None = None) -> tuple[bool, Check]:
    """(golf?, check): golf = golf blob + train_gpt.py byte-identical to the regenerated one.

    Only the bytes decide.  The blob's provenance (``meta["build"]``: golf version, source sha256) is
    written by whoever made the blob: it only explains a mismatch (:func:`provenance`, also stored in
    ``info["provenance"]``), it never makes an artifact golf."""
    if meta is None or "config" not in meta:
        return False, Check("build.reproducible", SKIP, message="foreign artifact (no golf blob with an embedded "
                                                                "config): scored through the protocol only")
    from golf.builder.codegen import CodegenError, regenerate_info
    try:
        text, regen = regenerate_info(meta)
        want = text.encode("utf-8")
    except (CodegenError, KeyError, TypeError, ValueError) as e:
        return False, Check("build.reproducible", WARN, message=f"cannot regenerate train_gpt.py from the blob's "
                                                                f"config ({e}): treated as a foreign artifact")
    have = code.read_bytes()
    prov = provenance(meta, regen["payload_sha256"], have == want)
    if info is not None:
        info["provenance"] = prov
    if have == want:
        return True, Check("build.reproducible", PASS, measured="identical", message=(
            f"train_gpt.py ({len(have):,} B) is byte-identical to the one the installed golf generates from the "
            "blob's config: a golf artifact, scored by the trusted path"))
    k = next((i for i, (a, b) in enumerate(zip(have, want)) if a != b), min(len(have), len(want)))
    return False, Check("build.reproducible", WARN, measured="differs", message=(
        f"train_gpt.py differs from the regenerated code ({len(have):,} B vs {len(want):,} B, first difference at "
        f"byte {k:,}; {prov['reason']}): treated as a FOREIGN artifact, scored by its protocol answers"))


def _claimed(value) -> str | None:
    """A provenance value from the blob, as text safe to print (it is the blob maker's claim)."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= 80 else text[:77] + "..."


def provenance(meta: dict, source_sha256: str, identical: bool) -> dict:
    """Why train_gpt.py does (not) regenerate, from the blob's claimed golf version / source sha256
    (``meta["build"]``, written by ``golf build``) against the installed golf's: a report field and the
    explanation in ``build.reproducible``'s message.  ``cause``: ``identical``, ``unrecorded`` (no version in
    the blob), ``version`` (another golf release), ``edited`` (same version and source: the file was changed
    after the build) or ``source`` (same version, other source: golf's shipped modules were changed)."""
    import golf
    flags = meta.get("build") if isinstance(meta.get("build"), dict) else {}
    blob_ver, blob_src = _claimed(flags.get("golf")), _claimed(flags.get("source_sha256"))
    mine = golf.__version__
    prov = {"blob_golf": blob_ver, "installed_golf": mine, "blob_source_sha256": blob_src,
            "installed_source_sha256": source_sha256}
    if identical:
        return prov | {"cause": "identical", "reason": "identical"}
    if blob_ver is None:
        cause, why = "unrecorded", "the blob records no golf version (built before golf recorded one, or not by golf)"
    elif blob_ver != mine:
        cause, why = "version", (f"the blob says golf {blob_ver} built it, this is golf {mine}: an artifact from "
                                 f"another golf release (verify it with golf {blob_ver})")
    elif blob_src == source_sha256:
        cause, why = "edited", (f"same golf version ({mine}) and shipped-source sha256 as the blob records: "
                                "train_gpt.py was edited after the build")
    else:
        cause, why = "source", (f"same golf version ({mine}) but the shipped source differs from the blob's record "
                                f"({(blob_src or 'none')[:12]} vs {source_sha256[:12]}): golf's shipped modules "
                                "were changed locally")
    return prov | {"cause": cause, "reason": why}


# ----------------------------------------------------------------------------- processes


@dataclass
class Ctx:
    """One verification: paths, options, data, and the log function."""

    art: Path
    opts: VerifyOptions
    tmp: Path
    data: Data = None
    log: object = print
    runs: int = 0
    threads: int = 0  # CPU threads of each sandboxed run (0: not set); see thread_split


# the thread-pool sizes torch / numpy read at start-up
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def thread_budget() -> int:
    """CPU threads this verification may use: ``OMP_NUM_THREADS`` when the user set it, else the cores this
    process may run on."""
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        n = 0
    return n if n > 0 else len(os.sched_getaffinity(0))


def thread_split(concurrent: bool) -> tuple[int, int]:
    """``(trusted, artifact)`` threads.  The trusted re-evaluation runs beside the artifact's run; two OpenMP
    pools of one thread per core each on the same cores spin against each other: on 2 cores the demo
    artifact's verification took 166 s that way and 41 s with one thread each (the trusted path alone, 2
    threads: 16 s).  So the budget is split, and the artifact's runs (main and audit) get the larger half."""
    total = thread_budget()
    if not concurrent:
        return 0, total
    trusted = max(1, total // 2)
    return trusted, max(1, total - trusted)


def thread_env(n: int) -> dict[str, str]:
    return {k: str(n) for k in THREAD_VARS} if n > 0 else {}


def _memory_bytes(opts: VerifyOptions) -> int | None:
    mem = opts.memory_limit_gb
    if mem is None:
        return None if opts.device == "cuda" else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return int(mem * (1 << 30)) or None


def limits_for(opts: VerifyOptions):
    from golf.verifier.sandbox import run as sandbox
    return sandbox.Limits(wall_s=opts.eval_time_limit, memory_bytes=_memory_bytes(opts))


def start_artifact(ctx: Ctx, env: dict, pass_fds=(), inputs: dict | None = None):
    """A fresh copy of the artifact (regular files only) started in the sandbox; the sandbox's ``Running``."""
    from golf.verifier.sandbox import run as sandbox
    from golf.verifier.scoring.inventory import inventory
    ctx.runs += 1
    root = ctx.tmp / f"run{ctx.runs}"
    work, private = root / "work", root / "private"
    private.mkdir(parents=True)
    inventory(ctx.art, copy_to=work)
    env = {ENV_DEVICE: ctx.opts.device, **thread_env(ctx.threads), **env, **ctx.opts.extra}
    spec = sandbox.SandboxSpec(work=work, argv=[CODE_NAME], env=env, inputs=inputs or {}, pass_fds=tuple(pass_fds),
                               limits=limits_for(ctx.opts), device=ctx.opts.device,
                               weak_isolation=ctx.opts.weak_isolation, private_dir=private,
                               packages=tuple(ctx.opts.allow_packages))
    return sandbox.start(spec)


class Pipes:
    """The two protocol pipes: the child reads requests from ``child_in`` and answers on ``child_out``."""

    def __init__(self):
        self.child_in, self.w = os.pipe()
        self.r, self.child_out = os.pipe()

    def env(self) -> dict:
        return {ENV_EVAL_PROTOCOL: P.PROTOCOL, ENV_EVAL_IN: str(self.child_in), ENV_EVAL_OUT: str(self.child_out)}

    def fds(self) -> tuple[int, int]:
        return self.child_in, self.child_out

    def close_child_ends(self) -> None:
        for fd in (self.child_in, self.child_out):
            os.close(fd)

    def close(self) -> None:
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass


def run_checks(sec: Section, res, what: str, opts: VerifyOptions, ended_by_verifier: bool = False) -> bool:
    """The sandbox's verdict on one run as checks (prefixed ``what``); True when the run ended cleanly.

    ``ended_by_verifier``: the verifier closed the pipes after a protocol failure (already a failed
    check), so the artifact's exit status is not a second fault."""
    from golf.verifier.sandbox import reads
    from golf.verifier.sandbox import run as sandbox
    checks = sandbox.isolation_checks(res) + sandbox.limit_checks(res, limits_for(opts))
    if res.isolation.get("weak"):
        sandbox.mark_weak(checks)
    for c in checks:
        if ended_by_verifier and c.name in ("run.exit", "limits.wall") and res.verdict in ("exit", "timeout"):
            c.status, c.message = SKIP, f"ended by the verifier after the protocol failure ({c.message})"
        c.name = c.name if c.name.split(".")[0] == what else f"{what}.{c.name}"
    sec.checks += checks
    sec.info.setdefault("runs", {})[what] = {"verdict": res.verdict, "wall_s": round(res.wall_s, 3),
                                             "isolation": res.isolation, "stdout_tail": res.stdout[-2000:],
                                             "stderr_tail": res.stderr[-2000:],
                                             "environment": reads.environment_info(res)}
    return res.verdict == "ok"


# ----------------------------------------------------------------------------- 5. trusted


def start_trusted(ctx: Ctx, blob: Path, L: int, s: int, threads: int):
    """``python -m golf.verifier.scoring.trusted`` in its own process (rlimits; golf's code only)."""
    import subprocess
    import sys
    out = ctx.tmp / "trusted"
    # paths absolute: the child runs in ctx.tmp
    cmd = [sys.executable, "-I", "-m", "golf.verifier.scoring.trusted", "--blob", os.path.abspath(blob), "--dataset",
           os.path.abspath(ctx.data.dataset), "--seq-len", str(L), "--stride", str(s), "--max-tokens",
           str(ctx.opts.val_max_tokens), "--device", ctx.opts.device, "--out", str(out)]
    mem = _memory_bytes(ctx.opts)

    def limits():  # pragma: no cover - runs in the child
        import resource
        if mem:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    errf = open(ctx.tmp / "trusted.stderr", "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf, preexec_fn=limits, cwd=str(ctx.tmp),
                            env={**os.environ, **thread_env(threads)})
    errf.close()
    return proc, out


def finish_trusted(ctx: Ctx, sec: Section, proc, out: Path):
    """The trusted scores: (sliding, plain) per-target NLL arrays, or None (a failed check is added)."""
    import subprocess
    try:
        rc = proc.wait(timeout=ctx.opts.eval_time_limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        sec.add("trusted.run", FAIL, exit_code=EXIT_TIMEOUT, message="the trusted re-evaluation ran past the limit")
        return None
    if rc != 0:
        err = (ctx.tmp / "trusted.stderr").read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
        sec.add("trusted.run", FAIL, measured=rc, exit_code=EXIT_MALFORMED,
                message=f"the trusted re-evaluation failed: {err[0][:400]}")
        return None
    T = len(ctx.data.stream) - 1
    arrs = [np.frombuffer(read_capped(out / f"{k}.f32", 4 * T), dtype="<f4") for k in ("sliding", "plain")]
    summary = json.loads(read_capped(out / "summary.json", 1 << 16))
    sec.info["trusted"] = summary
    sec.add("trusted.run", PASS, measured=round(summary["wall_s"], 3),
            message=f"golf's own model rebuilt from the blob scored {summary['windows']:,} windows "
                    f"({summary['targets']:,} targets) in a separate process running none of the artifact's code")
    return arrs


# ----------------------------------------------------------------------------- 6. protocol


def _is_int(v) -> bool:
    return type(v) is int  # a JSON true is not 1 token


def _hello(ctx: Ctx, sec: Section, client) -> dict | None:
    """The hello answer, type-checked strictly; None when the artifact never started a frame (unverified).  A
    broken frame or a wrong hello is a failed check (exit 17) and ``{}``."""
    try:
        hello = client.hello([P.WINDOWS, P.SCORE_FIRST])
    except P.Malformed as e:
        sec.add("protocol.hello", FAIL, exit_code=EXIT_INVALID, message=f"protocol failure in hello: {e}")
        return {}
    except P.ProtocolError as e:
        sec.info["hello_error"] = str(e)
        return None
    modes = hello.get("modes")
    modes = [m for m in modes if m in (P.WINDOWS, P.SCORE_FIRST)] if isinstance(modes, list) else []
    L, stride, problems = hello.get("eval_seq_len"), hello.get("eval_stride"), []
    if not _is_int(hello.get("vocab_size")) or hello["vocab_size"] != ctx.data.vocab:
        problems.append(f"announces vocab_size {hello.get('vocab_size')!r}, the data has {ctx.data.vocab}")
    if not modes:
        problems.append(f"announces no known mode ({hello.get('modes')!r})")
    if not _is_int(L) or not 0 < L <= ctx.opts.max_eval_seq_len and not ctx.opts.eval_seq_len:
        problems.append(f"eval_seq_len {L!r} not an int in [1, --max-eval-seq-len {ctx.opts.max_eval_seq_len}]")
    if stride is not None and not (_is_int(stride) and _is_int(L) and 0 < stride <= L):
        problems.append(f"eval_stride {stride!r} not an int in [1, eval_seq_len]")
    if hello.get("name") is not None and not isinstance(hello["name"], str):
        problems.append(f"name {hello['name']!r} is not a string")
    sec.add("protocol.hello", FAIL if problems else PASS, exit_code=EXIT_INVALID,
            message="; ".join(problems) or f"{P.PROTOCOL}: modes {modes}, eval_seq_len {L}"
            + (f", name {str(hello.get('name'))[:60]!r}" if hello.get("name") else ""))
    return {} if problems else dict(hello, modes=modes)


def _mode(opts: VerifyOptions, modes: list) -> str | None:
    if opts.protocol_mode == "auto":
        return P.WINDOWS if P.WINDOWS in modes else P.SCORE_FIRST
    return opts.protocol_mode if opts.protocol_mode in modes else None


def _open_client(ctx: Ctx):
    from golf.verifier.scoring.streaming import Client
    pipes = Pipes()
    try:
        running = start_artifact(ctx, pipes.env(), pipes.fds())
    finally:
        pipes.close_child_ends()
    return pipes, running, Client(pipes.r, pipes.w, ctx.opts.eval_time_limit, ctx.data.vocab)


def _end(pipes, running, client, ok: bool):
    """Say bye (or just close the pipes after a failure: the artifact reads EOF) and collect the result."""
    if ok:
        client.bye()
    pipes.close()
    return running.wait(timeout=None if ok else 10.0)


def cpu_estimate(targets: int, L: int, s: int, art: Path, budget: float) -> str:
    """A rough expected CPU time of the full validation pass, said before it starts.

    Forward tokens of the sliding plan (plus the audit budget) x 2 FLOPs per parameter, the
    parameter count guessed from the blob size (~0.5 byte per int6/int8 parameter), at a
    third of the float32 matmul rate measured here and now."""
    import time as _time

    from golf.verifier.scoring.streaming import window_plan
    plan = window_plan(targets, L, s)
    windows, tokens = len(plan), float(plan.length.sum()) * (1 + budget)
    blob = find_blob(art)
    params = (blob.stat().st_size / 0.5) if blob else 0
    a = np.ones((256, 256), dtype=np.float32)
    t0, n = _time.perf_counter(), 0
    while _time.perf_counter() - t0 < 0.1:
        a @ a
        n += 1
    rate = n * 2 * 256 ** 3 / (_time.perf_counter() - t0) / 3
    if not params:
        return f"full validation pass: {tokens:,.0f} forward tokens (model size unknown: no estimate)"
    secs = 2 * params * tokens / rate
    return (f"expected on this CPU: about {secs:,.0f} s for the full validation pass ({windows:,} windows of "
            f"{L}, ~{params / 1e6:.1f} M parameters guessed from the blob, {rate / 1e9:.1f} GFLOP/s usable; rough)")


def protocol_run(ctx: Ctx, sec: Section, golf: bool, cfg: dict) -> dict | None:
    """Main protocol run, then the audit process; None when the artifact never started a frame (unverified),
    ``{}`` after a failure (a failed check was added)."""
    from golf.verifier.scoring.audits import new_seed
    from golf.verifier.scoring.streaming import Scores, run_score_first, run_windows, window_plan
    pipes, running, client = _open_client(ctx)
    hello = _hello(ctx, sec, client)
    if not hello:
        res = _end(pipes, running, client, False)
        run_checks(sec, res, "run", ctx.opts, ended_by_verifier=hello is not None)
        return hello
    mode = _mode(ctx.opts, hello["modes"])
    L = ctx.opts.eval_seq_len or (cfg.get("eval_seq_len") if golf else hello["eval_seq_len"])
    s = ctx.opts.eval_stride or (cfg.get("eval_stride") if golf else min(64, L))
    seed = new_seed()
    out = {"mode": mode, "eval_seq_len": L, "eval_stride": s, "hello": hello, "seed": seed}
    ctx.log(f"protocol run ({mode}, L={L}, stride={s}) ...")
    if ctx.opts.device == "cpu":
        ctx.log(cpu_estimate(len(ctx.data.stream) - 1, L, s, ctx.art, ctx.opts.audit_budget))
    try:
        if mode is None:
            raise P.ProtocolError(f"--protocol-mode {ctx.opts.protocol_mode}: the artifact offers {hello['modes']}")
        if mode == P.WINDOWS:
            plan = window_plan(len(ctx.data.stream) - 1, L, s)
            scores = Scores(plan)
            client.start(P.WINDOWS, L, s)
            run_windows(client, ctx.data.stream, plan, scores, cfg.get("eval_batch_seqs") or REQUEST_ITEMS,
                        np.random.default_rng(seed))
            out.update(plan=plan, scores=scores, nll=scores.sliding, real_tokens=plan.forward_tokens())
        else:
            out.update(nll=run_score_first(client, ctx.data.stream, L), real_tokens=len(ctx.data.stream) - 1)
        ok = True
    except P.ProtocolError as e:
        sec.add("protocol.answers", FAIL, exit_code=EXIT_INVALID, message=f"protocol failure: {e}")
        ok = False
    res = _end(pipes, running, client, ok)
    ok = run_checks(sec, res, "run", ctx.opts, ended_by_verifier=not ok) and ok
    if ok and np.isfinite(out["nll"]).all():
        ok = _audit(ctx, sec, out)
    return out if ok else {"audits": out.get("audits")}


def _audit(ctx: Ctx, sec: Section, run: dict) -> bool:
    """The audit process (:mod:`golf.verifier.scoring.audits`): a fresh sandboxed copy of the artifact."""
    from golf.verifier.scoring import audits as A
    o, stream, L = ctx.opts, ctx.data.stream, run["eval_seq_len"]
    rng = np.random.default_rng(run["seed"] ^ 0xA0D17)
    needed, affordable, at = A.plan_audits(rng, len(stream) - 1, o.audit_fraction, o.audit_delta,
                                           o.audit_budget * run["real_tokens"], L)
    rep = A.AuditReport(seed=run["seed"], mode=run["mode"], fraction=o.audit_fraction, delta=o.audit_delta,
                        needed=needed, affordable=affordable, real_tokens=run["real_tokens"])
    run["audits"] = rep
    ctx.log(f"audits: {len(at):,} blind position(s) in a fresh process ...")
    pipes, running, client = _open_client(ctx)
    ok = False
    try:
        client.hello([run["mode"]])
        if run["mode"] == P.WINDOWS:
            client.start(P.WINDOWS, L, run["eval_stride"])
            A.audit_windows(client, stream, run["plan"], run["nll"], rep, at)
        else:
            A.audit_score_first(client, stream, L, run["nll"], rep, at)
        ok = True
    except P.ProtocolError as e:
        sec.add("audit.run", FAIL, exit_code=EXIT_INVALID, message=f"audit process: protocol failure: {e}")
    ok = run_checks(sec, _end(pipes, running, client, ok), "audit", ctx.opts, ended_by_verifier=not ok) and ok
    return ok


def audit_checks(sec: Section, rep, device: str) -> None:
    """The audits as checks: normalization, agreement with the main run, the bound bought, the budget."""
    from golf.verifier.scoring.audits import TOLERANCES
    tol = TOLERANCES.get(device, TOLERANCES["cuda"])
    ok = rep.n > 0 and rep.lse_max <= tol.lse
    sec.add("audit.normalized", PASS if ok else FAIL, measured=rep.lse_max, limit=tol.lse, exit_code=EXIT_INVALID,
            message=f"max |logsumexp| of {rep.n:,} full next-token vector(s) from a fresh process"
                    + ("" if ok else ": not a normalized distribution" if rep.n else ": no audit (budget)"))
    ok = rep.n > 0 and rep.agree_max <= tol.same
    sec.add("audit.agreement", PASS if ok else FAIL, measured=rep.agree_max, limit=tol.same, exit_code=EXIT_INVALID,
            message=f"main-run answers vs -log p[x_t+1] from the prefix alone at {rep.n:,} secret position(s)"
                    + ("" if ok else f": differ (worst at target {rep.worst_at}; the answer was not the causal "
                                     "normalized prediction: target read, state, or non-causal model)"))
    miss, full = rep.miss(), rep.n >= rep.needed
    sec.add("audit.bound", PASS if full else WARN, measured=f"{miss:.3g}", limit=rep.delta,
            message=f"n = ceil(ln(delta)/ln(1-f)) = {rep.needed:,} for f = {rep.fraction:g}, delta = {rep.delta:g}; "
                    f"{rep.n:,} audited: a client cheating on >= {rep.fraction:.0%} of positions passes with "
                    f"probability <= (1-f)^n = {miss:.3g}" + ("" if full else
                    f" (the audit budget paid for {rep.affordable:,}: --audit-budget / --audit-delta)"))
    extra = rep.audit_tokens + rep.replay_tokens
    sec.add("audit.budget", PASS, measured=round(rep.audit_tokens / max(1, rep.real_tokens), 4), limit=None,
            message=f"audit forward tokens {rep.audit_tokens:,} / real {rep.real_tokens:,} (hard limit: at most "
                    f"budget x real / cost cap audits)" + (f"; score-first history replay {rep.replay_tokens:,} "
                    f"tokens (total extra {extra / max(1, rep.real_tokens):.2f} x)" if rep.replay_tokens else ""))
    sec.info["audits"] = rep.to_dict()  # the seed and the positions go into the report only now


# ----------------------------------------------------------------------------- 7. compare, claimed


def coverage_check(sec: Section, n_scored: int, data: Data, partial: bool) -> bool:
    T = len(data.stream) - 1
    ok = n_scored == T
    side = f", sidecar sha256 {data.sidecar_sha256[:16]}…" if data.sidecar_sha256 else ""
    sec.add("score.coverage", PASS if ok else FAIL, measured=n_scored, limit=T, exit_code=EXIT_INVALID,
            message=(f"all {T:,} targets of the {'partial (--val-max-tokens) ' if partial else ''}validation stream "
                     f"scored ({data.nbytes:,} {data.byte_basis} bytes, stream sha256 {data.sha256[:16]}…{side})")
            if ok else f"only {n_scored:,} of {T:,} targets scored")
    return ok


def scores_from(ctx: Ctx, sec: Section, run: dict) -> dict | None:
    """{'sliding': {...}, 'plain': {...}} (windows) or {'score-first': {...}} from the artifact's answers."""
    from golf.verifier.scoring.streaming import bpb
    if run.get("mode") == P.WINDOWS:
        sc = run["scores"]
        n = int(np.isfinite(sc.sliding).sum()) if sc.missing() == 0 else 0
        if not coverage_check(sec, n, ctx.data, bool(ctx.opts.val_max_tokens)):
            return None
        return {"sliding": bpb(sc.sliding, ctx.data.nbytes), "plain": bpb(sc.plain, ctx.data.nbytes),
                "_nll": sc.sliding}
    nll = run["nll"]
    if not coverage_check(sec, int(np.isfinite(nll).sum()), ctx.data, bool(ctx.opts.val_max_tokens)):
        return None
    return {"score-first": bpb(nll, ctx.data.nbytes), "_nll": nll}


def guarantee(trusted: bool, rep) -> dict:
    """What an exit 0 means here: ``trusted`` (golf's own code scored a golf artifact whose code regenerates
    byte-identically) or ``audited`` (a black box; its answers, with the audits' detection bound)."""
    if trusted:
        return {"kind": "trusted", "message": "a golf artifact whose train_gpt.py regenerates byte-identically, "
                                              "scored by golf's own code in a separate process"}
    return {"kind": "audited", "fraction": rep.fraction, "audits": rep.n, "miss_probability": rep.miss(),
            "message": f"black box: a client cheating on >= {rep.fraction:.0%} of scored positions passes with "
                       f"probability <= {rep.miss():.3g} ({rep.n:,} blind audits)"}


def compare_trusted(ctx: Ctx, sec: Section, mine: dict, trusted) -> dict:
    from golf.verifier.scoring.streaming import bpb
    t = {"sliding": bpb(trusted[0], ctx.data.nbytes), "plain": bpb(trusted[1], ctx.data.nbytes)}
    tol = TRUSTED_TOL.get(ctx.opts.device, TRUSTED_TOL["cuda"])
    d = abs(mine["sliding"]["val_bpb"] - t["sliding"]["val_bpb"])
    dmax = float(np.max(np.abs(mine["_nll"].astype(np.float64) - trusted[0])))
    sec.add("score.trusted_agreement", PASS if d <= tol else FAIL, measured=d, limit=tol, exit_code=EXIT_SCORE,
            message=f"the artifact's own answers {mine['sliding']['val_bpb']:.8f} vs the trusted path "
                    f"{t['sliding']['val_bpb']:.8f} (sliding val_bpb; max per-target |Δ| {dmax:.2e} nats)")
    return t


def claimed_check(sec: Section, value: float, opts: VerifyOptions) -> None:
    if opts.val_max_tokens or opts.eval_seq_len or opts.eval_stride:
        if opts.claimed_bpb is not None:
            sec.add("score.claimed", SKIP, measured=round(value, 8), limit=opts.claimed_bpb,
                    message="non-default evaluation settings (--val-max-tokens / --eval-seq-len / --eval-stride): "
                            "the claimed score cannot be compared")
        return
    if opts.claimed_bpb is None:
        sec.add("score.claimed", SKIP, message="no claimed score given (--claimed-bpb or --submission)")
        return
    d = abs(value - opts.claimed_bpb)
    ok = d <= opts.tolerance
    sec.add("score.claimed", PASS if ok else FAIL, measured=round(value, 8), limit=opts.claimed_bpb,
            exit_code=EXIT_SCORE, message=f"verified {value:.8f} vs claimed {opts.claimed_bpb} ({opts.claimed_source}):"
                                          f" |Δ| {d:.2e} {'≤' if ok else '>'} tolerance {opts.tolerance:g}")


def unverified_run(ctx: Ctx, sec: Section) -> None:
    """The artifact did not answer hello: 'unverified', or with --allow-unverified a classic run, marked so."""
    why = sec.info.get("hello_error", "no hello")
    if not ctx.opts.allow_unverified:
        sec.add("protocol.hello", FAIL, exit_code=EXIT_UNVERIFIED,
                message=f"the artifact does not speak {P.PROTOCOL} ({why}); its printed score is not evidence "
                        "(--allow-unverified runs it classically and reports the printed number as unverified)")
        return
    sec.add("protocol.hello", WARN, message=f"no {P.PROTOCOL} ({why}); --allow-unverified: classic run")
    staged = stage_data(ctx.data, ctx.tmp / "staged")
    running = start_artifact(ctx, {ENV_DATA_DIR: "data", ENV_MODE: "eval"}, inputs={"data": staged})
    res = running.wait()
    if not run_checks(sec, res, "classic", ctx.opts):
        return
    line = parse_log(res.stdout, "stdout").scored
    if line is None:
        sec.add("score.printed", FAIL, exit_code=EXIT_SCORE, message="no final 'val_loss:… val_bpb:…' line printed")
        return
    sec.info["score"] = {"kind": line.label, "val_bpb": line.val_bpb, "source": "printed (UNVERIFIED)"}
    sec.add("score.printed", WARN, measured=line.val_bpb, message=f"printed '{line.label}' val_bpb {line.val_bpb} "
                                                                  "(UNVERIFIED: not measured by the verifier)")


def stage_data(data: Data, root: Path) -> Path:
    """Only the validation shards (and byte sidecars) and the tokenizer (copies), for --allow-unverified
    classic runs."""
    from golf.data.shards import SIDECAR_SPLIT, list_shards
    ds = root / "datasets" / data.dataset.name
    ds.mkdir(parents=True)
    for f in list_shards(data.dataset, "val") + list_shards(data.dataset, SIDECAR_SPLIT):
        shutil.copyfile(f, ds / f.name)
    (root / "tokenizers").mkdir()
    shutil.copyfile(data.tokenizer, root / "tokenizers" / data.tokenizer.name)
    return root


# ----------------------------------------------------------------------------- main


def _config_from(meta: dict | None) -> dict:
    cfg = (meta or {}).get("config")
    if not isinstance(cfg, dict):
        return {}
    ev, model = cfg.get("eval") or {}, cfg.get("model") or {}
    from golf.config import GolfConfig
    full = GolfConfig.from_dict(cfg)
    return {"vocab_size": model.get("vocab_size", full.model.vocab_size),
            "eval_seq_len": ev.get("eval_seq_len", full.eval.eval_seq_len),
            "eval_stride": ev.get("eval_stride", full.eval.eval_stride),
            "eval_batch_seqs": ev.get("eval_batch_seqs", full.eval.eval_batch_seqs)}


def static_steps(art: Path, sec: Section) -> tuple[Path, Path, dict | None, dict | None] | None:
    """Files + blob: (code, blob, blob meta, build report) or None when the artifact is malformed."""
    code, report = art / CODE_NAME, _json_or_none(art / REPORT_NAME)
    blob = find_blob(art)
    missing = [n for n, p in ((CODE_NAME, code), ("model blob (*.ptz)", blob)) if p is None or not p.is_file()]
    sec.add("artifact.files", FAIL if missing else PASS, exit_code=EXIT_MALFORMED,
            message=("missing: " + ", ".join(missing)) if missing else f"{CODE_NAME} and {blob.name} present")
    if missing:
        return None
    blob_check, meta = check_blob(blob, golf_artifact=report is not None)
    sec.checks.append(blob_check)
    return None if blob_check.failed else (code, blob, meta, report)


def verify_artifact(art_dir: str | Path, opts: VerifyOptions, log=print) -> Section:
    # absolute before anything starts a process: the trusted run and the sandbox have other working dirs
    # (a relative ART or --data failed there as a missing file); the report keeps the path as given
    art = Path(os.path.abspath(art_dir))
    opts = replace(opts, data_dir=Path(os.path.abspath(opts.data_dir)))
    if not art.is_dir():
        raise VerifyInputError(f"{art}: not a directory (expected an artifact dir with train_gpt.py)")
    if opts.protocol_mode not in PROTOCOL_MODES:
        raise VerifyInputError(f"--protocol-mode {opts.protocol_mode!r}: one of {', '.join(PROTOCOL_MODES)}")
    if not (0 < opts.audit_fraction < 1 and 0 < opts.audit_delta < 1 and opts.audit_budget >= 0):
        raise VerifyInputError(f"--audit-fraction {opts.audit_fraction} / --audit-delta {opts.audit_delta} must be in "
                               f"(0, 1) and --audit-budget {opts.audit_budget} >= 0")
    sec = Section(title=str(art_dir))
    sec.info.update(partial=bool(opts.val_max_tokens), device=opts.device, protocol=P.PROTOCOL, guarantee=None)
    static = static_steps(art, sec)
    if static is None:
        return sec
    code, blob, meta, report = static
    cfg = _config_from(meta)
    data = resolve_data(Path(opts.data_dir), cfg.get("vocab_size"))
    sec.checks += pinning_checks(data, Path(opts.data_dir), cfg.get("vocab_size"), report)
    golf, c = classify(code, meta, sec.info)
    sec.checks.append(c)
    sec.info["kind"] = "golf" if golf else "foreign"
    load_stream(data, opts.val_max_tokens)
    if opts.train_data is not None:
        sec.checks.append(overlap_check(data, Path(opts.train_data)))
    sec.info["stream"] = {"targets": len(data.stream) - 1, "bytes": data.nbytes, "sha256": data.sha256,
                          "partial": bool(opts.val_max_tokens), "byte_basis": data.byte_basis,
                          **({"sidecar_sha256": data.sidecar_sha256} if data.sidecar_sha256 else {})}
    from golf.verifier.scoring.inventory import inventory, size_checks
    inv = inventory(art)
    sec.checks += size_checks(inv, opts.max_bytes)
    sec.info["inventory"] = inv.to_dict()
    ctx = Ctx(art, opts, Path(tempfile.mkdtemp(prefix="golf-verify-")), data, log)
    from golf.verifier.sandbox.run import CannotIsolate
    try:
        return _score_steps(ctx, sec, golf, cfg, blob)
    except CannotIsolate as e:
        sec.add("isolation.namespaces", FAIL, exit_code=EXIT_CANNOT_ISOLATE, message=f"{e} (--weak-isolation "
                "runs it anyway, every check marked weak)")
        return sec
    finally:
        if opts.keep_temp:
            sec.info["temp_dir"] = str(ctx.tmp)
        else:
            shutil.rmtree(ctx.tmp, ignore_errors=True)


def _score_steps(ctx: Ctx, sec: Section, golf: bool, cfg: dict, blob: Path) -> Section:
    trusted = None
    trusted_threads, ctx.threads = thread_split(concurrent=golf)
    sec.info["threads"] = {"trusted": trusted_threads, "artifact": ctx.threads}
    if golf:
        L, s = ctx.opts.eval_seq_len or cfg["eval_seq_len"], ctx.opts.eval_stride or cfg["eval_stride"]
        ctx.log(f"trusted re-evaluation (golf's own code, L={L}, stride={s}) ...")
        trusted = start_trusted(ctx, blob, L, s, trusted_threads)
    try:
        run = protocol_run(ctx, sec, golf, cfg)
    except BaseException:
        if trusted:
            trusted[0].kill()
            trusted[0].wait()
        raise
    tscores = finish_trusted(ctx, sec, *trusted) if trusted else None
    if run is None:
        unverified_run(ctx, sec)
        return sec
    if run.get("audits") is not None:
        audit_checks(sec, run["audits"], ctx.opts.device)
    if "mode" not in run:
        return sec
    mine = scores_from(ctx, sec, run)
    if mine is None:
        return sec
    sec.info.update(mode=f"protocol {run['mode']}", eval_seq_len=run["eval_seq_len"],
                    eval_stride=run["eval_stride"],
                    artifact_scores={k: v for k, v in mine.items() if not k.startswith("_")})
    sec.info["guarantee"] = guarantee(golf and tscores is not None, run["audits"])
    if golf and tscores is not None:
        t = compare_trusted(ctx, sec, mine, tscores)
        sec.info["trusted_scores"] = t
        sec.info["score"] = {"kind": "sliding", "source": "trusted path", **t["sliding"]}
    elif not golf:
        kind = "sliding" if "sliding" in mine else "score-first"
        sec.info["score"] = {"kind": kind, "source": "protocol answers", **mine[kind]}
    if sec.info.get("score"):
        claimed_check(sec, sec.info["score"]["val_bpb"], ctx.opts)
    return sec

