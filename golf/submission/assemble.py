"""Assemble an official-layout records folder from one or more built seed runs.

A *seed run* is an artifact directory written by ``golf build`` (``train_gpt.py``,
``final_model.int6.ptz``, ``build_report.json``) whose report points back at the
training run directory (``train.log``, ``config.json``).  Every artifact is scored by
``golf verify`` in a clean process (or its existing ``verify.json`` is reused), so the
numbers in the folder are the verifier's, never the trainer's own claim.

The folder gets the shared ``train_gpt.py``, one ``train_seed<S>.log`` per seed (training
log + the artifact's final evaluation lines from the clean run), ``submission.json`` and a
``README.md``.  It is written into a temporary sibling, linted with the same code as
``golf verify records`` and only then renamed into place; a folder that fails the lint
is not left behind.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from golf.errors import GolfError
from golf.protocol import (
    BLOB_NAME,
    CODE_NAME,
    LABEL_ROUNDTRIP,
    LABEL_SLIDING,
    LIMIT_BYTES,
    README_NAME,
    REPORT_NAME,
    SIZE_LINES,
    SUBMISSION_NAME,
    VERIFY_NAME,
)


class SubmitError(ValueError, GolfError):
    """Bad input to ``golf submit``; the message names the artifact and what to do."""


class LintFailed(SubmitError):
    """The assembled folder failed ``golf verify records``; ``section`` holds the checks."""

    def __init__(self, msg: str, section):
        super().__init__(msg)
        self.section = section


@dataclass
class SeedRun:
    seed: int
    artifact_dir: Path
    run_dir: Path | None
    val_bpb: float  # the scored number printed by the clean run (sliding window when present)
    val_loss: float
    metric: str  # label of the scored line, e.g. final_int6_sliding_window
    roundtrip_bpb: float | None
    artifact_bytes: int
    code_bytes: int
    blob_bytes: int
    log_text: str
    code: bytes
    config: dict = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    train_time_ms: float | None = None
    steps: int | None = None
    hardware: str = ""
    verify: dict = field(default_factory=dict)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- verification


def verify_report(art: Path, data_dir: Path | None, device: str = "cpu", eval_time_limit: float = 600.0,
                  max_bytes: int = LIMIT_BYTES, log=print) -> dict:
    """The clean-process verification of ``art``: run it now (``data_dir`` given) or reuse ART/verify.json.

    A reused report must be a passing, full-validation-set report whose counted file sizes
    still match the files in ``art`` (so an edited artifact cannot borrow an old verdict).
    """
    from golf.protocol import EXIT_NAMES
    from golf.verifier.report import write_json
    from golf.verifier.scoring.artifact import VerifyInputError, VerifyOptions, exit_code_for, verify_artifact

    if data_dir is not None:
        opts = VerifyOptions(data_dir=Path(data_dir), device=device, eval_time_limit=eval_time_limit,
                             max_bytes=max_bytes)
        log(f"verifying {art} in a clean process ...")
        try:
            sec = verify_artifact(art, opts, log=lambda _m: None)
        except VerifyInputError as e:
            raise SubmitError(f"{art}: cannot verify: {e}") from None
        code = exit_code_for(sec.checks)
        doc = {"mode": "artifact", "artifact": str(art), "ok": sec.ok, "exit_code": code,
               "exit_meaning": EXIT_NAMES.get(code), "checks": [c.to_dict() for c in sec.checks], **sec.info}
        write_json(art / VERIFY_NAME, doc)
        doc = json.loads((art / VERIFY_NAME).read_text(encoding="utf-8"))
    else:
        p = art / VERIFY_NAME
        if not p.is_file():
            raise SubmitError(f"{art}: not verified yet. Pass --data DIR so golf submit verifies it, or run "
                              f"`golf verify {art} --data DIR --json {p}` first")
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise SubmitError(f"{p}: unreadable verification report ({e})") from None
        for entry in (doc.get("inventory") or {}).get("files", []):
            f = art / entry["path"]
            if not f.is_file() or f.stat().st_size != entry["size"]:
                raise SubmitError(f"{p}: {entry['path']} changed since it was verified; verify again (pass --data DIR)")
    if not doc.get("ok"):
        failed = [c for c in doc.get("checks", []) if c.get("status") == "fail"]
        why = "; ".join(f"{c['name']}: {c.get('message', '')}" for c in failed[:3]) or doc.get("exit_meaning", "")
        raise SubmitError(f"{art}: verification failed (exit {doc.get('exit_code')}): {why}")
    if doc.get("partial") or doc.get("val_max_tokens"):
        raise SubmitError(f"{art}: {VERIFY_NAME} scored only part of the validation set (--val-max-tokens); "
                          "a submission needs the full set: verify again without it")
    return doc


# ----------------------------------------------------------------------------- loading


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SubmitError(f"{path}: missing ({what})") from None
    except (OSError, ValueError) as e:
        raise SubmitError(f"{path}: unreadable {what} ({e})") from None


def _log_value(text: str, prefix: str) -> str | None:
    for line in reversed(text.splitlines()):
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return None


def verified_lines(doc: dict) -> str:
    """The verifier's own scores as official-format final lines (what the records lint reads).

    The numbers come from ``golf verify``'s report (trusted path or protocol answers over the
    whole validation stream), never from what the artifact printed about itself."""
    scores = doc.get("trusted_scores") if (doc.get("score") or {}).get("source") == "trusted path" \
        else doc.get("artifact_scores")
    lines = []
    for key, label in (("plain", LABEL_ROUNDTRIP), ("sliding", LABEL_SLIDING)):
        r = (scores or {}).get(key)
        if r:
            lines.append(f"{label} val_loss:{r['val_loss']:.8f} val_bpb:{r['val_bpb']:.8f}")
    return "\n".join(lines)


def _size_lines(doc: dict, rep: dict) -> str:
    """Official-format size lines from the sizes the verifier counted (code + model blob)."""
    sizes = {f["path"]: f["size"] for f in (doc.get("inventory") or {}).get("files", [])}
    code = sizes.get(CODE_NAME, rep.get("code_bytes", 0))
    blob = sizes.get(BLOB_NAME, rep.get("blob_bytes", 0))
    comp = rep.get("compressor") or (rep.get("config") or {}).get("quant", {}).get("compressor", "brotli")
    return SIZE_LINES.format(code, comp, blob, code + blob)


def load_seed_run(art: str | Path, doc: dict) -> SeedRun:
    """Collect what the records folder needs about one built + verified seed run."""
    from golf.verifier.logparse import parse_log

    art = Path(art)
    rep = _read_json(art / REPORT_NAME, "the report written by `golf build`")
    code = (art / CODE_NAME).read_bytes()
    eval_lines = verified_lines(doc)
    printed = parse_log(eval_lines, "verified scores")
    if not printed.evals:
        raise SubmitError(f"{art}: the verification report holds no verified score; verify again (pass --data DIR)")
    kind = (doc.get("score") or {}).get("kind", "sliding")
    want = LABEL_SLIDING if kind == "sliding" else LABEL_ROUNDTRIP
    scored = next((e for e in reversed(printed.evals) if e.label == want), printed.evals[-1])
    roundtrip = next((e for e in printed.evals if e.label == LABEL_ROUNDTRIP), None)

    run_dir = Path(rep["run_dir"]) if rep.get("run_dir") else None
    train_log = ""
    if run_dir is not None and (run_dir / "train.log").is_file():
        train_log = (run_dir / "train.log").read_text(encoding="utf-8", errors="replace")
    else:
        raise SubmitError(f"{art}: the training log is not found (build_report.json run_dir={rep.get('run_dir')!r}); "
                          "keep the `golf train` run directory where it was built from")
    final = {}
    if (run_dir / "final.json").is_file():
        final = _read_json(run_dir / "final.json", "final numbers of the run")
    seed = rep.get("seed", (rep.get("config") or {}).get("train", {}).get("seed"))
    if seed is None:
        raise SubmitError(f"{art}/build_report.json: no seed recorded (rebuild with this golf version)")
    source = (doc.get("score") or {}).get("source", "")
    log_text = (train_log.rstrip("\n") + "\n"
                + f"clean_eval: golf verify ({doc.get('kind', '')} artifact, score from the {source}, "
                  f"{(doc.get('stream') or {}).get('targets', 0)} targets) device:{doc.get('device', 'cpu')}\n"
                + eval_lines + "\n" + _size_lines(doc, rep) + "\n")
    commands = [c for c in (_log_value(train_log, "command:"), rep.get("command")) if c]
    return SeedRun(
        seed=int(seed), artifact_dir=art, run_dir=run_dir, val_bpb=scored.val_bpb,
        val_loss=scored.val_loss if scored.val_loss is not None else float("nan"), metric=scored.label,
        roundtrip_bpb=roundtrip.val_bpb if roundtrip else None,
        artifact_bytes=int(rep["total_bytes"]),
        code_bytes=len(code), blob_bytes=int(rep["blob_bytes"]), log_text=log_text, code=code,
        config=rep.get("config") or {}, commands=commands, train_time_ms=final.get("train_time_ms"),
        steps=final.get("steps"), hardware=_log_value(train_log, "hardware:") or "", verify=doc)


# ----------------------------------------------------------------------------- rendering


def technique_summary(cfg: dict) -> str:
    m, t, q = cfg.get("model", {}), cfg.get("train", {}), cfg.get("quant", {})
    if not m:
        return ""
    head_dim = m["model_dim"] // max(1, m["num_heads"])
    parts = [f"{m['num_layers']}L/{m['model_dim']}d GPT, GQA {m['num_heads']}H/{m['num_kv_heads']}KV",
             f"MLPx{m['mlp_mult']:g} LeakyReLU({m['leaky_slope']:g})^2",
             f"partial RoPE {m['rope_dims']}/{head_dim} dims",
             "tied embeddings" if m.get("tie_embeddings") else "untied embeddings",
             f"logit softcap {m['logit_softcap']:g}"]
    if m.get("skip_weights"):
        parts.append("U-Net skips with learned weights")
    if m.get("parallel_start_layer", -1) >= 0 and m["parallel_start_layer"] < m["num_layers"]:
        parts.append(f"parallel residuals from layer {m['parallel_start_layer']}")
    if m.get("recur_loops", 0) > 0:
        parts.append(f"depth recurrence layers {m['recur_start']}-{m['recur_end']} "
                     f"(+{m['recur_loops']} loop) from {100 * t.get('recur_start_frac', 0):g}% of training")
    parts.append(f"Muon (NS{t.get('muon_backend_steps', 5)}) + Adam, EMA {t.get('ema_decay')}")
    if q:
        parts.append(f"{q.get('method', 'gptq').upper()} int{q.get('matrix_bits')} + SDClip, "
                     f"int{q.get('embed_bits')} embeddings, {q.get('compressor')}")
    return "; ".join(parts) + "."


def render_readme(name: str, author: str, github_id: str, runs: list[SeedRun], sub: dict,
                  extra_commands: list[str]) -> str:
    rows = "\n".join(
        f"| {r.seed} | {r.val_loss:.8f} | {r.val_bpb:.8f} | "
        f"{'' if r.roundtrip_bpb is None else f'{r.roundtrip_bpb:.8f}'} | {r.artifact_bytes:,} | "
        f"{'' if r.steps is None else r.steps} | "
        f"{'' if r.train_time_ms is None else f'{r.train_time_ms / 1000:.1f} s'} |"
        for r in runs)
    cfg = runs[0].config
    sections = []
    for sec_name, keys in (
            ("Model", ("vocab_size", "num_layers", "model_dim", "num_heads", "num_kv_heads", "mlp_mult",
                       "rope_dims", "logit_softcap", "parallel_start_layer", "recur_start", "recur_end",
                       "recur_loops")),
            ("Training", ("train_batch_tokens", "train_seq_len", "iterations", "warmup_steps", "warmdown_iters",
                          "warmdown_frac", "matrix_lr", "muon_momentum", "muon_wd", "tied_embed_lr", "scalar_lr",
                          "ema_decay", "recur_start_frac", "max_wallclock_seconds")),
            ("Quantization / packing", ("method", "matrix_bits", "embed_bits", "matrix_clip_sigmas",
                                        "embed_clip_sigmas", "small_tensor_numel", "compressor",
                                        "code_compressor"))):
        part = {"Model": "model", "Training": "train"}.get(sec_name, "quant")
        d = cfg.get(part, {})
        sections.append(f"- {sec_name}: " + ", ".join(f"`{k}={d[k]}`" for k in keys if k in d))
    cmds = list(dict.fromkeys(c for r in runs for c in r.commands)) + extra_commands
    baseline = sub.get("baseline")
    base_txt = (f"{baseline.get('name') or 'baseline'} at {baseline['val_bpb']} val BPB"
                if baseline else "none given")
    n = len(runs)
    return f"""# {name}

**{sub['val_bpb']:.8f} val BPB** (mean of {n} seed{'s' if n != 1 else ''}, std {sub['val_bpb_std']:.8f}),
artifact at most {max(r.artifact_bytes for r in runs):,} of {LIMIT_BYTES:,} bytes.
Author: {author} (@{github_id}). Baseline compared against: {base_txt}.

## Results

Scores are from a clean-process re-run of each artifact by `golf verify` (per-token NLLs
re-scored with the verifier's own byte count); the scored line is `{runs[0].metric}`.

| seed | val_loss | val_bpb | round-trip val_bpb | artifact bytes | steps | train time |
|---:|---:|---:|---:|---:|---:|---:|
{rows}

Hardware: {sub['hardware']}. PyTorch {sub['pytorch_version']}.

## Technique

{sub['technique_summary']}

## Configuration

{chr(10).join(sections)}

## Commands

```bash
{chr(10).join(cmds) or '(commands not recorded)'}
```

`train_gpt.py` is the self-contained artifact code generated by `golf build` (identical
for every seed: sha256 `{sub['train_gpt_sha256']}`). Per-seed logs are
`train_seed<SEED>.log`: the training log followed by the final lines of the clean
evaluation run.
"""


# ----------------------------------------------------------------------------- track


def runs_qualify_for_10min(runs: list[SeedRun], train_limit_s: float) -> list[str]:
    """Why these runs cannot enter the 10-minute track (empty: they can): 8xH100 and training <= the cap."""
    from golf.verifier.lint.records import RE_8XH100

    why = []
    for r in runs:
        if not r.hardware:
            why.append(f"seed {r.seed}: hardware not recorded in its train.log")
        elif not RE_8XH100.search(r.hardware):
            why.append(f"seed {r.seed} ran on {r.hardware}, not 8xH100")
        if r.train_time_ms is None:
            why.append(f"seed {r.seed}: training time not recorded (final.json)")
        elif r.train_time_ms / 1000 > train_limit_s:
            why.append(f"seed {r.seed} trained {r.train_time_ms / 1000:.0f} s, over {train_limit_s:g} s")
    return why


def choose_track(runs: list[SeedRun], out: Path, track: str | None, log=print) -> tuple[str, Path]:
    """(track key, folder path) for the records folder, from what the runs were.

    An explicit ``track`` that the runs contradict is refused; a ``track_*`` parent of
    ``out`` that they contradict is replaced by ``track_non_record_16mb`` (and said so)."""
    from golf.verifier.lint.records import TRACK_10MIN, TRACK_NON_RECORD, TRACKS, normalize_track

    cap = TRACKS[TRACK_10MIN].train_limit_s
    why = runs_qualify_for_10min(runs, cap)
    if track is not None:
        key = normalize_track(track)
        if key is None:
            raise SubmitError(f"--track {track!r}: unknown track (known: {', '.join(TRACKS)})")
        if key == TRACK_10MIN and why:
            raise SubmitError(f"--track {track} contradicts the logs: " + "; ".join(why)
                              + f". Submit to {TRACK_NON_RECORD} instead")
    else:
        key = normalize_track(out.parent.name) if out.parent.name.startswith("track_") else None
        if key is None or (key == TRACK_10MIN and why):
            key = TRACK_NON_RECORD if why else TRACK_10MIN
            if why:
                log(f"track: {TRACK_NON_RECORD} (" + "; ".join(why) + ")")
    if out.parent.name.startswith("track_") and normalize_track(out.parent.name) != key:
        moved = out.parent.parent / f"track_{key}" / out.name
        log(f"records folder goes to {moved} (the runs belong to track {key}, not {out.parent.name})")
        out = moved
    return key, out


# ----------------------------------------------------------------------------- assembly


def assemble(artifacts: list[str | Path], out: str | Path, *, name: str, author: str, github_id: str,
             data_dir: str | Path | None = None, device: str = "cpu", against: float | None = None,
             baseline_name: str | None = None, track: str | None = None, hardware: str | None = None,
             summary: str | None = None, date: str | None = None, force: bool = False,
             eval_time_limit: float = 600.0, train_time_limit: float | None = None, submit_command: str = "",
             log=print) -> tuple[Path, object]:
    """Write the records folder ``out``; returns (path, lint section). Raises SubmitError / LintFailed.

    The track comes from what the runs were (:func:`choose_track`); ``out`` moves to the
    matching ``track_*`` sibling when its parent names another one.  ``eval_time_limit``
    bounds each clean verification run; the lint applies the track's own limits
    (``train_time_limit`` overrides the track's training cap)."""
    from golf.verifier.lint.records import lint_folder

    if not artifacts:
        raise SubmitError("give at least one artifact directory with --runs")
    out = Path(out)
    if " " in out.name:
        raise SubmitError(f"--out {out}: records folder names may not contain spaces")
    if out.exists() and not force:
        raise SubmitError(f"--out {out} already exists (pass --force to replace it)")
    arts = [Path(a) for a in artifacts]
    for a in arts:
        for f in (CODE_NAME, REPORT_NAME):
            if not (a / f).is_file():
                raise SubmitError(f"--runs {a}: no {f} (expected a directory written by `golf build`)")
    runs = []
    for a in arts:
        doc = verify_report(a, Path(data_dir) if data_dir else None, device=device,
                            eval_time_limit=eval_time_limit, log=log)
        runs.append(load_seed_run(a, doc))
    seeds = [r.seed for r in runs]
    dup = sorted({s for s in seeds if seeds.count(s) > 1})
    if dup:
        raise SubmitError(f"seed(s) {dup} appear more than once in --runs; each seed run must be distinct")
    codes = {sha256_bytes(r.code) for r in runs}
    if len(codes) > 1:
        raise SubmitError("the artifacts' train_gpt.py differ; a records folder holds one train_gpt.py "
                          "(build every seed with the same golf version and settings)")
    metrics = {r.metric for r in runs}
    if len(metrics) > 1:
        raise SubmitError(f"the seeds were scored on different lines ({', '.join(sorted(metrics))})")
    runs.sort(key=lambda r: r.seed)
    track, out = choose_track(runs, out, track, log=log)
    if out.exists() and not force:
        raise SubmitError(f"--out {out} already exists (pass --force to replace it)")

    import torch

    # the mean of the printed per-seed numbers, to the printed precision (what the lint recomputes)
    mean_bpb, std_bpb = mean_std([r.val_bpb for r in runs])
    mean_loss, _ = mean_std([r.val_loss for r in runs])
    hw = hardware or "; ".join(sorted({r.hardware for r in runs if r.hardware})) or "unknown"
    sub = {
        "name": name,
        "author": author,
        "github_id": github_id,
        "date": date or _dt.date.today().isoformat(),
        "track": track,
        "val_bpb": round(mean_bpb, 8),
        "val_bpb_std": round(std_bpb, 8),
        "val_loss": round(mean_loss, 8),
        "metric": runs[0].metric,
        "seeds": [r.seed for r in runs],
        "seed_results": {str(r.seed): {"val_bpb": r.val_bpb, "val_loss": r.val_loss,
                                       "artifact_bytes": r.artifact_bytes} for r in runs},
        "bytes_total": max(r.artifact_bytes for r in runs),
        "bytes_code": runs[0].code_bytes,
        "hardware": hw,
        "pytorch_version": torch.__version__,
        "technique_summary": summary or technique_summary(runs[0].config),
        "baseline": ({"name": baseline_name or "current record", "val_bpb": against}
                     if against is not None else None),
        "train_gpt_sha256": codes.pop(),
        "verified_by": "golf verify (clean process, re-scored)",
    }
    extra = [f"golf verify {r.artifact_dir} --data {data_dir or 'DATA'} --device {device} "
             f"--json {r.artifact_dir / VERIFY_NAME}" for r in runs]
    if submit_command:
        extra.append(submit_command)
    readme = render_readme(name, author, github_id, runs, sub, extra)

    out.parent.mkdir(parents=True, exist_ok=True)
    stage_root = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    # lint under the real names: <tmp>/<track dir>/<name>
    stage = stage_root / out.parent.name / out.name
    try:
        stage.mkdir(parents=True)
        (stage / CODE_NAME).write_bytes(runs[0].code)
        for r in runs:
            (stage / f"train_seed{r.seed}.log").write_text(r.log_text, encoding="utf-8")
        (stage / SUBMISSION_NAME).write_text(json.dumps(sub, indent=2) + "\n", encoding="utf-8")
        (stage / README_NAME).write_text(readme, encoding="utf-8")
        sec = lint_folder(stage, against=against, train_limit_s=train_time_limit, track=track)
        sec.title = str(out)
        if not sec.ok:
            raise LintFailed(f"the assembled folder fails `golf verify records`; nothing was written to {out}",
                             sec)
        if out.exists():  # --force: swap the old folder out only once the new one passed
            old = stage_root / "replaced"
            os.replace(out, old)
        os.replace(stage, out)
    finally:
        shutil.rmtree(stage_root, ignore_errors=True)
    return out, sec
