"""Records-folder lint: ``golf verify --records PATH``.

A records folder is the official layout ``records/track_*/DATE_NAME/`` holding
``README.md``, ``submission.json``, ``train_gpt.py`` and one log per seed.  Each folder
gets a :class:`~golf.verifier.report.Section` of checks (layout, log parsing, score
provenance, size, time and, with ``against``, significance); a folder fails when any
check fails.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from golf.errors import GolfError
from golf.verifier.logparse import LogInfo, decimals, looks_like_log, parse_log_file
from golf.verifier.report import FAIL, PASS, SKIP, WARN, Check, Section
from golf.verifier.stats import one_sided_ttest

LIMIT_BYTES = 16_000_000
REQUIRED = ("README.md", "submission.json", "train_gpt.py")
RE_DATE_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}_\S+$")
RE_WRAPPER = re.compile(r"\bexec\s*\(", re.S)
RE_DECOMP = re.compile(r"(lzma|brotli|zlib|b85decode|b64decode|base64|bz2)")
SEED_KEYS = ("seed_results", "per_seed", "seeds_results", "results", "runs", "seed_scores", "val_bpb_per_seed")


class RecordsError(ValueError, GolfError):
    """PATH holds no records folder."""


# ----------------------------------------------------------------------------- discovery


def find_record_folders(path: str | Path) -> list[Path]:
    """Folders to lint under ``path``: ``path`` itself when it holds submission.json or
    logs; otherwise every directory holding a submission.json plus every direct child of
    a ``track_*`` directory (so a folder that lacks submission.json is still linted)."""
    root = Path(path)
    if not root.exists():
        raise RecordsError(f"{root}: no such file or directory")
    if root.is_file():
        if root.name.startswith("submission") and root.suffix == ".json":
            return [root.parent]
        raise RecordsError(f"{root}: expected a records folder or a tree of them, got a file")
    if (root / "submission.json").exists() or (root / "train_gpt.py").exists():
        return [root]
    found: set[Path] = set()
    for sub in root.rglob("submission.json"):
        if not any(part.startswith(".") for part in sub.relative_to(root).parts):
            found.add(sub.parent)
    for track in [root, *root.rglob("track_*")]:
        if track.is_dir() and track.name.startswith("track_"):
            found.update(p for p in track.iterdir() if p.is_dir() and not p.name.startswith("."))
    # drop folders nested inside another found folder (their submission.json is a duplicate)
    folders = sorted(found)
    out = [f for f in folders if not any(o != f and o in f.parents for o in folders)]
    if not out:
        raise RecordsError(f"{root}: no records folder found (no submission.json, no track_*/ directories)")
    return out


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not any(x.startswith(".") for x in p.relative_to(folder).parts))


def find_logs(folder: Path) -> list[Path]:
    logs = []
    for p in _files(folder):
        if p.suffix.lower() == ".log":
            logs.append(p)
        elif p.suffix.lower() == ".txt":
            try:
                head = p.read_bytes()[:2_000_000].decode("utf-8", errors="replace")
            except OSError:
                continue
            if looks_like_log(head):
                logs.append(p)
    return logs


# ----------------------------------------------------------------------------- submission.json


@dataclass
class Claims:
    val_bpb: float | None = None
    bpb_decimals: int = 8
    val_loss: float | None = None
    seeds: list[int] = field(default_factory=list)
    per_seed_bpb: dict[int, float] = field(default_factory=dict)
    per_seed_loss: dict[int, float] = field(default_factory=dict)
    bytes_total: int | None = None
    bytes_code: int | None = None
    notes: list[str] = field(default_factory=list)


def _num(v) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _seed(v) -> int | None:
    try:
        return int(str(v).strip().lower().removeprefix("seed").strip("_- "))
    except ValueError:
        return None


def parse_submission(text: str) -> Claims:
    """Read the claims of a submission.json (tolerant of the key variants used by records)."""
    doc = json.loads(text)
    raw = json.loads(text, parse_float=str)  # keep printed decimals
    if not isinstance(doc, dict):
        raise ValueError("submission.json must hold a JSON object")
    c = Claims()
    for key in ("val_bpb", "mean_val_bpb", "val_bpb_mean", "score"):
        if _num(doc.get(key)) is not None:
            c.val_bpb = float(doc[key])
            c.bpb_decimals = decimals(str(raw[key]))
            break
    for key in ("val_loss", "mean_val_loss", "val_loss_mean"):
        if _num(doc.get(key)) is not None:
            c.val_loss = float(doc[key])
            break
    c.bytes_total = int(doc["bytes_total"]) if _num(doc.get("bytes_total")) is not None else None
    c.bytes_code = int(doc["bytes_code"]) if _num(doc.get("bytes_code")) is not None else None

    seeds = doc.get("seeds", doc.get("seed"))
    if isinstance(seeds, (int, str)) and _seed(seeds) is not None:
        c.seeds = [_seed(seeds)]
    elif isinstance(seeds, list):
        for s in seeds:
            if isinstance(s, dict):
                sd = _seed(s.get("seed"))
                if sd is not None:
                    c.seeds.append(sd)
                    if _num(s.get("val_bpb")) is not None:
                        c.per_seed_bpb[sd] = float(s["val_bpb"])
                    if _num(s.get("val_loss")) is not None:
                        c.per_seed_loss[sd] = float(s["val_loss"])
            elif _seed(s) is not None:
                c.seeds.append(_seed(s))
            else:
                c.notes.append(f"unreadable seed entry {s!r}")
    for key in SEED_KEYS:
        v = doc.get(key)
        if isinstance(v, dict):
            items = list(v.items())
        elif isinstance(v, list):
            if all(isinstance(x, dict) for x in v):
                items = [(x.get("seed"), x) for x in v]
            elif len(v) == len(c.seeds) and all(_num(x) is not None for x in v):
                items = list(zip(c.seeds, v))
            else:
                c.notes.append(f"'{key}' is a list that cannot be matched to seeds")
                continue
        else:
            continue
        for s, val in items:
            sd = _seed(s)
            if sd is None:
                c.notes.append(f"'{key}': entry without a readable seed ({s!r})")
                continue
            if sd not in c.seeds:
                c.seeds.append(sd)
            if isinstance(val, dict):
                if _num(val.get("val_bpb")) is not None:
                    c.per_seed_bpb[sd] = float(val["val_bpb"])
                if _num(val.get("val_loss")) is not None:
                    c.per_seed_loss[sd] = float(val["val_loss"])
            elif _num(val) is not None:
                c.per_seed_bpb[sd] = float(val)
    c.seeds = list(dict.fromkeys(c.seeds))
    return c


# ----------------------------------------------------------------------------- lint


def _tol(*decs: int) -> float:
    """Agreement tolerance between printed numbers: half a unit of the last digit of each."""
    return sum(0.5 * 10.0 ** -d for d in decs) + 1e-12


def _is_wrapper(code: str) -> bool:
    lines = [ln for ln in code.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return len(lines) <= 4 and bool(RE_WRAPPER.search(code)) and bool(RE_DECOMP.search(code))


def lint_folder(folder: str | Path, against: float | None = None, max_bytes: int = LIMIT_BYTES,
                train_limit_s: float = 600.0, eval_limit_s: float = 600.0, min_improvement: float = 0.005,
                alpha: float = 0.01) -> Section:
    folder = Path(folder)
    sec = Section(title=str(folder))
    files = _files(folder) if folder.is_dir() else []

    # ---------------- layout
    problems = []
    for name in REQUIRED:
        p = folder / name
        if not p.is_file():
            problems.append(f"{name} missing")
        elif p.stat().st_size == 0:
            problems.append(f"{name} is empty")
    logs_paths = find_logs(folder) if folder.is_dir() else []
    if not logs_paths:
        problems.append("no per-seed log (*.log, or *.txt with log lines)")
    else:
        problems += [f"{p.relative_to(folder)} is empty" for p in logs_paths if p.stat().st_size == 0]
    sec.add("layout.files", FAIL if problems else PASS, measured=len(files),
            message="; ".join(problems) if problems else
            f"README.md, submission.json, train_gpt.py and {len(logs_paths)} log(s) present and non-empty")

    spaced = [str(p.relative_to(folder)) for p in files if " " in str(p.relative_to(folder))]
    if " " in folder.name:
        spaced.insert(0, f"folder name '{folder.name}'")
    sec.add("layout.names", FAIL if spaced else PASS,
            message=("names with spaces: " + ", ".join(spaced[:10])) if spaced else "no spaces in folder or file names")

    subs = [p for p in files if p.name.lower().startswith("submission") and p.suffix.lower() == ".json"]
    claims: Claims | None = None
    if len(subs) != 1:
        sec.add("layout.submission_json", FAIL, measured=len(subs), limit=1,
                message=f"expected exactly one submission.json, found {len(subs)}"
                        + (": " + ", ".join(str(p.relative_to(folder)) for p in subs) if subs else ""))
    sub = folder / "submission.json"
    if sub.is_file() and sub.stat().st_size:
        try:
            claims = parse_submission(sub.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            sec.add("layout.submission_json", FAIL, message=f"submission.json is not valid JSON: {e}")
        else:
            if claims.val_bpb is None:
                sec.add("layout.submission_json", FAIL, message="submission.json has no val_bpb")
            elif len(subs) == 1:
                notes = "; ".join(claims.notes)
                sec.add("layout.submission_json", WARN if notes else PASS, measured=claims.val_bpb,
                        message=f"claims val_bpb {claims.val_bpb}" + (f", seeds {claims.seeds}" if claims.seeds else "")
                        + (f"; {notes}" if notes else ""))

    name_ok = bool(RE_DATE_NAME.match(folder.name))
    track_ok = folder.parent.name.startswith("track_")
    if not (name_ok and track_ok):
        sec.add("layout.folder_name", WARN, message=(
            ("" if name_ok else f"folder name '{folder.name}' is not DATE_NAME (YYYY-MM-DD_Name); ")
            + ("" if track_ok else f"parent '{folder.parent.name}' is not a records/track_* directory")).strip("; "))
    else:
        sec.add("layout.folder_name", PASS, message=f"{folder.parent.name}/{folder.name}")

    # ---------------- logs
    logs: list[LogInfo] = []
    for p in logs_paths:
        try:
            info = parse_log_file(p)
        except OSError as e:
            sec.add("logs.parse", FAIL, message=f"{p.relative_to(folder)}: cannot read ({e})")
            continue
        info.path = str(p.relative_to(folder))
        logs.append(info)
        issues = info.missing + info.unparsed + info.seed_notes
        sec.add(f"logs.parse[{info.path}]", WARN if issues else PASS,
                measured=info.scored.val_bpb if info.scored else None,
                message=(f"seed {info.seed} ({info.seed_source}); scored line: "
                         + (f"'{info.scored.label}' (line {info.scored.line_no})" if info.scored else "none")
                         + ("; could not parse: " + "; ".join(issues) if issues else "")))
    sec.info["logs"] = [lg.to_dict() for lg in logs]
    sec.info["claims"] = claims.__dict__ if claims else None

    # ---------------- provenance
    by_seed: dict[int, list[LogInfo]] = {}
    unknown: list[LogInfo] = []
    for lg in logs:
        (by_seed.setdefault(lg.seed, []) if lg.seed is not None else unknown).append(lg)
    claimed = list(claims.seeds) if claims and claims.seeds else []
    notes, fails = [], []
    if not claimed:
        claimed = sorted(by_seed)
        if claims is not None:
            notes.append("submission.json names no seeds; using the seeds of the logs" if claimed else
                         "submission.json names no seeds")
    missing = [s for s in claimed if s not in by_seed]
    if len(missing) == 1 and len(unknown) == 1:
        by_seed[missing[0]] = [unknown.pop()]
        notes.append(f"log {by_seed[missing[0]][0].path} states no seed; assumed to be seed {missing[0]}")
        missing = []
    if not claimed and len(unknown) == 1 and len(logs) == 1:
        claimed = [None]  # type: ignore[list-item]
        by_seed[None] = [unknown.pop()]  # type: ignore[index]
        notes.append("single log without a seed")
    if missing:
        fails.append(f"no log for claimed seed(s) {', '.join(map(str, missing))}")
    dup = {s: v for s, v in by_seed.items() if len(v) > 1}
    for s, v in dup.items():
        fails.append(f"seed {s} has {len(v)} logs ({', '.join(x.path for x in v)})")
    sig_seen: dict[tuple, str] = {}
    for lg in logs:
        sc = lg.scored
        if sc is None:
            continue
        key = (sc.val_bpb, sc.val_loss, lg.train_time_ms, lg.total_bytes)
        if key in sig_seen and (lg.seed is None or sig_seen[key].split("|")[0] != str(lg.seed)):
            fails.append(f"{lg.path} repeats the final numbers of {sig_seen[key].split('|')[1]} (copied log?)")
        sig_seen.setdefault(key, f"{lg.seed}|{lg.path}")
    for lg in logs:
        if any("file name says seed" in n for n in lg.seed_notes):
            fails.append(f"{lg.path}: " + "; ".join(lg.seed_notes))
    unclaimed = [s for s in by_seed if s not in claimed]
    if unclaimed:
        notes.append(f"log(s) for unclaimed seed(s) {', '.join(map(str, unclaimed))} "
                     "(runs left out of the reported set? the lint cannot tell)")
    if unknown:
        notes.append("logs without a seed: " + ", ".join(lg.path for lg in unknown))
    status = FAIL if fails else (WARN if (unclaimed or unknown) else PASS)
    sec.add("provenance.seeds", status, measured=len([s for s in claimed if s in by_seed]), limit=len(claimed),
            message="; ".join(fails + notes) or f"each of {len(claimed)} claimed seed(s) has exactly one log")

    per_seed: dict = {}
    for s in claimed:
        if s in by_seed and len(by_seed[s]) == 1 and by_seed[s][0].scored is not None:
            per_seed[s] = by_seed[s][0]
    sec.info["per_seed_scored"] = {str(s): lg.scored.to_dict() for s, lg in per_seed.items()}

    if claims is not None and claims.per_seed_bpb:
        bad = []
        for s, v in claims.per_seed_bpb.items():
            lg = by_seed.get(s, [None])[0]
            if lg is None:
                continue
            if not any(abs(v - e.val_bpb) <= _tol(decimals(repr(v)), e.bpb_decimals) for e in lg.evals):
                bad.append(f"seed {s}: claimed {v} matches no final line of {lg.path}")
        sec.add("provenance.per_seed_claims", FAIL if bad else PASS, measured=len(claims.per_seed_bpb),
                message="; ".join(bad) or "every per-seed claim matches a final line of its log")

    if claims is not None and claims.val_bpb is not None:
        c = claims.val_bpb
        if not per_seed:
            all_lines = [(lg, e) for lg in logs for e in lg.evals]
            hit = [f"{lg.path}:{e.line_no}" for lg, e in all_lines
                   if abs(c - e.val_bpb) <= _tol(claims.bpb_decimals, e.bpb_decimals)]
            sec.add("provenance.claimed_score", FAIL, measured=c,
                    message="no seed log with a final evaluation line to check the claim against"
                            + (f" (matches {', '.join(hit)})" if hit else ""))
        else:
            vals = {s: lg.scored for s, lg in per_seed.items()}
            dl = min(e.bpb_decimals for e in vals.values())
            mean = sum(e.val_bpb for e in vals.values()) / len(vals)
            tol = _tol(claims.bpb_decimals, dl)
            sec.info["recomputed_mean_bpb"] = mean
            n = len(vals)
            labels = ", ".join(sorted({e.label for e in vals.values()}))
            if abs(c - mean) <= tol:
                sec.add("provenance.claimed_score", PASS, measured=mean, limit=c,
                        message=f"claimed {c} = mean of the {n} seed(s)' '{labels}' lines ({mean:.8f})")
            else:
                # mean of another line kind present in every log (e.g. round-trip instead of sliding)
                common = set.intersection(*[{e.label for e in lg.evals} for lg in per_seed.values()])
                alt = None
                for lab in sorted(common):
                    es = [[e for e in lg.evals if e.label == lab][-1] for lg in per_seed.values()]
                    m = sum(e.val_bpb for e in es) / len(es)
                    if abs(c - m) <= _tol(claims.bpb_decimals, min(e.bpb_decimals for e in es)):
                        alt = (lab, m)
                        break
                best_seed = min(vals, key=lambda s: vals[s].val_bpb)
                best = vals[best_seed].val_bpb
                lines = [(lg, e) for lg in logs for e in lg.evals
                         if abs(c - e.val_bpb) <= _tol(claims.bpb_decimals, e.bpb_decimals)]
                if alt is not None:
                    sec.add("provenance.claimed_score", WARN, measured=alt[1], limit=c,
                            message=f"claimed {c} = mean of the '{alt[0]}' lines, not of the last evaluation "
                                    f"lines ('{labels}', mean {mean:.8f}); check which number is the score")
                elif n > 1 and abs(c - best) <= _tol(claims.bpb_decimals, vals[best_seed].bpb_decimals):
                    sec.add("provenance.claimed_score", FAIL, measured=mean, limit=c,
                            message=f"best-seed reporting: claimed {c} is seed {best_seed}'s score, "
                                    f"the mean of the {n} seeds is {mean:.8f}")
                elif lines:
                    lg, e = lines[0]
                    sec.add("provenance.claimed_score", FAIL, measured=mean, limit=c,
                            message=f"claimed {c} is the '{e.label}' line of {lg.path} (line {e.line_no}), "
                                    f"not the mean of the seeds ({mean:.8f})")
                else:
                    sec.add("provenance.claimed_score", FAIL, measured=mean, limit=c,
                            message=f"claimed {c} matches no final line in any log and not the recomputed "
                                    f"mean {mean:.8f} (difference {c - mean:+.8f})")
            if claims.val_loss is not None and all(e.val_loss is not None for e in vals.values()):
                ml = sum(e.val_loss for e in vals.values()) / n
                tl = _tol(decimals(repr(claims.val_loss)), min(e.loss_decimals or 8 for e in vals.values()))
                ok = abs(claims.val_loss - ml) <= tl
                sec.add("provenance.claimed_loss", PASS if ok else WARN, measured=ml, limit=claims.val_loss,
                        message=f"claimed val_loss {claims.val_loss} vs recomputed mean {ml:.8f}")

    # ---------------- size
    totals = [(lg.path, lg.total_bytes, lg.total_format) for lg in logs if lg.total_bytes is not None]
    if totals:
        worst = max(totals, key=lambda t: t[1])
        over = [t for t in totals if t[1] > max_bytes]
        sec.add("size.logged_total", FAIL if over else PASS, measured=worst[1], limit=max_bytes,
                message=("over the limit: " + ", ".join(f"{p} {n:,} B" for p, n, _ in over)) if over else
                        f"largest logged total {worst[1]:,} B ({worst[2]}) in {worst[0]}; "
                        f"margin {max_bytes - worst[1]:,} B")
    else:
        sec.add("size.logged_total", WARN if logs else FAIL,
                message="no 'Total submission size ... bytes' line in any log")

    code_path = folder / "train_gpt.py"
    models = [(lg.path, lg.model_bytes, lg.code_bytes) for lg in logs if lg.model_bytes is not None]
    if code_path.is_file() and models:
        code = code_path.read_bytes()
        n_code = len(code)
        wrapped = _is_wrapper(code.decode("utf-8", errors="replace"))
        worst = max(models, key=lambda t: t[1])
        total = n_code + worst[1]
        logged_codes = sorted({c for _, _, c in models if c is not None})
        if logged_codes and logged_codes != [n_code]:
            code_note = (f"logged code size {', '.join(f'{x:,}' for x in logged_codes)} B differs from the committed "
                         f"train_gpt.py ({n_code:,} B): the log counted another file (e.g. a computed wrapper vs the "
                         "shipped raw source)")
        else:
            code_note = "logged code size equals the committed file" if logged_codes else "no logged code size"
        others = [str(p.relative_to(folder)) for p in files if p.suffix == ".py" and p.name != "train_gpt.py"]
        msg = (f"committed train_gpt.py {n_code:,} B ({'self-extracting wrapper' if wrapped else 'raw source'}) "
               f"+ largest logged model {worst[1]:,} B ({worst[0]}) = {total:,} B; {code_note}")
        if others:
            msg += f"; other code not counted: {', '.join(others)}"
        sec.add("size.committed", FAIL if total > max_bytes else PASS, measured=total, limit=max_bytes, message=msg)
    else:
        sec.add("size.committed", SKIP, message="needs train_gpt.py and a logged 'Serialized model' size")

    if claims is not None and claims.bytes_total is not None:
        logged = {t[1] for t in totals}
        bad = claims.bytes_total > max_bytes
        sec.add("size.claimed_total", FAIL if bad else (PASS if (not logged or claims.bytes_total in logged
                                                                   or claims.bytes_total >= max(logged)) else WARN),
                measured=claims.bytes_total, limit=max_bytes,
                message=f"submission.json bytes_total {claims.bytes_total:,}"
                        + ("" if not logged else f"; logged totals {', '.join(f'{x:,}' for x in sorted(logged))}"))

    # ---------------- time
    tt = [lg for lg in logs if lg.train_time_ms is not None]
    if tt:
        worst = max(tt, key=lambda lg: lg.train_time_ms)
        secs = worst.train_time_ms / 1000.0
        over = secs - train_limit_s
        step = (worst.step_avg_ms or 0.0) / 1000.0
        if over <= 0:
            st, msg = PASS, f"longest training {secs:.3f} s ({worst.path}), {-over:.3f} s under the cap"
        elif over <= step:
            st, msg = WARN, (f"{worst.path}: training {secs:.3f} s overshoots the cap by {over:.3f} s, within one "
                             f"step ({step * 1000:.1f} ms; the cap is checked between steps)")
        else:
            st, msg = FAIL, f"{worst.path}: training {secs:.3f} s overshoots the cap by {over:.3f} s"
        sec.add("time.train", st, measured=round(secs, 3), limit=train_limit_s, message=msg)
    else:
        sec.add("time.train", WARN if logs else FAIL, message="no training time in any log")
    et = [lg for lg in logs if lg.eval_time_total_ms is not None]
    if et:
        worst = max(et, key=lambda lg: lg.eval_time_total_ms)
        secs = worst.eval_time_total_ms / 1000.0
        sec.add("time.eval", FAIL if secs > eval_limit_s else PASS, measured=round(secs, 3), limit=eval_limit_s,
                message=f"longest logged evaluation {secs:.3f} s ({worst.path}, sum of eval_time over "
                        f"{sum(e.eval_time_ms is not None for e in worst.evals)} final line(s)); logged eval_time "
                        "excludes decompression and compile warm-up — `golf verify ARTIFACT` measures end to end")
    else:
        sec.add("time.eval", WARN if logs else FAIL, message="no eval_time on any final line")

    # ---------------- significance
    if against is not None:
        sec.checks.append(significance(per_seed, against, min_improvement, alpha))
    return sec


def significance(per_seed: dict, against_bpb: float, min_improvement: float = 0.005,
                 alpha: float = 0.01) -> Check:
    """One-sided t-test that the seeds improve on ``against_bpb`` by >= ``min_improvement`` nats.

    Per seed i the bpb gap is converted to nats with that run's own ratio
    ``r_i = val_loss_i / val_bpb_i = ln2 · bytes / tokens``: ``d_i = (against − bpb_i) · r_i``.
    """
    name = "significance"
    scored = {s: lg.scored for s, lg in per_seed.items() if lg.scored is not None}
    if len(scored) < 2:
        return Check(name, FAIL, measured=len(scored), limit=2,
                     message=f"needs at least 2 seeds with a final line to test (have {len(scored)})")
    ratios = [e.val_loss / e.val_bpb for e in scored.values() if e.val_loss is not None and e.val_bpb > 0]
    if not ratios:
        return Check(name, FAIL, message="no val_loss next to val_bpb in the logs: cannot convert bpb to nats")
    fallback = sum(ratios) / len(ratios)
    d = []
    for e in scored.values():
        r = e.val_loss / e.val_bpb if e.val_loss is not None and e.val_bpb > 0 else fallback
        d.append((against_bpb - e.val_bpb) * r)
    t = one_sided_ttest(d, min_improvement)
    ok = t.p < alpha
    return Check(name, PASS if ok else FAIL, measured=round(t.p, 6), limit=alpha, message=(
        f"mean improvement {t.mean:.5f} nats (std {t.std:.5f}, n={t.n}) over {against_bpb} bpb "
        f"(≈ {against_bpb * fallback:.5f} nats at the bytes/token of these runs); H0: improvement ≤ "
        f"{min_improvement} nats, t={t.t:.3f}, df={t.df}, one-sided p={t.p:.3g} "
        + ("< " if ok else "≥ ") + f"{alpha}"))


def lint_records(path: str | Path, **kw) -> list[Section]:
    return [lint_folder(f, **kw) for f in find_record_folders(path)]
