"""``golf verify``: ``golf verify artifact ART`` re-scores an artifact in a clean process,
``golf verify records PATH`` lints records folders; ``golf verify PATH`` picks one by what PATH is."""
from __future__ import annotations

import time
from pathlib import Path

import click

from golf.protocol import CODE_NAME, EXIT_NAMES, EXIT_OK, EXIT_RECORDS, LIMIT_BYTES, REPORT_NAME, SUBMISSION_NAME
from golf.verifier.lint.records import (
    DEFAULT_RULE,
    SIGNIFICANCE_RULES,
    TRACKS,
    LintOptions,
    RecordsError,
    find_record_folders,
    lint_records,
    parse_submission,
    summary_line,
)
from golf.verifier.report import Section, render_table, write_json
from golf.verifier.scoring.artifact import VerifyInputError, VerifyOptions, exit_code_for, verify_artifact

_CODES = "\n".join(f"  {code:>2}  {text}" for code, text in sorted(EXIT_NAMES.items()))
_TRACKS = "\n".join(
    f"  {t.key:<16} " + (f"training <= {t.train_limit_s:g} s, evaluation <= {t.eval_limit_s:g} s on {t.hardware}, "
                         if t.train_limit_s else "no training or evaluation cap, ") + f"{t.max_bytes:,} bytes"
    for t in TRACKS.values())
_RULES = "\n".join(f"  {name:<11} {text}" for name, (_, _, text) in SIGNIFICANCE_RULES.items())

HELP = """Verify an artifact or lint records folders.

\b
  golf verify artifact ART --data DIR [...]   re-score an artifact in a clean process
  golf verify records PATH [--against BPB]    lint one records folder or a tree of them
  golf verify PATH [...]                      either one, picked by what PATH is (a records
                                              folder/tree, or a directory with train_gpt.py and
                                              a model blob); the choice is printed
  golf verify --records PATH                  deprecated alias of `golf verify records PATH`

Run `golf verify artifact --help` / `golf verify records --help` for the options.
"""

ARTIFACT_HELP = f"""Re-score the artifact ART in a clean process.

\b
  golf verify artifact ART --data DIR [--claimed-bpb X | --submission submission.json]
  The verifier owns the data and the coverage: it scores all N-1 targets of the untruncated
  validation stream.  A golf artifact (train_gpt.py byte-identical to the one golf regenerates
  from the blob's config) is re-scored by golf's own code in a separate process; its own
  answers must agree.  Every artifact runs in the sandbox (user, mount, PID and network
  namespaces; it sees only a copy of itself) and answers the golf-eval/2 protocol (windows or
  score-first) over two pipes; the verifier sends only inputs, never a target.  A fresh process
  then answers blind audits (the prefix alone at secret positions: a normalized distribution
  that must match the main run's answer).  The report says which guarantee holds: trusted or
  audited (with the detection bound).  One that only prints a score is "unverified"
  (see --allow-unverified).  Size = every regular file in ART (decimal bytes); symlinks and
  special files are refused.  Protocol and isolation: docs/cli-verify.md.

\b
Exit codes (when several checks fail, the first in the order
malformed, cannot isolate, network, access, processes, memory, cpu time, file size,
timeout, runtime, tokenizer, unverified, invalid, score, size wins):
{_CODES}
   1  bad input to the verifier itself (missing --data, unreadable files)
   2  usage error
"""

RECORDS_HELP = f"""Lint a records folder or a tree of them (records/track_*/DATE_NAME/).

\b
Checks per folder: layout, log parsing (an embedded train_gpt.py source header is
skipped), score provenance (seed logs, recomputed mean, best-seed reporting), size, time
(an overshoot within the 1 s grace is a warning; only training-data access after
the cap counts: self-generated calibration and packaging are reported, not counted),
hardware, a static legality scan of train_gpt.py and its sibling imports (warnings,
"needs a human"), the final audit (one configuration across seeds, canonical training
data) and, with --against, significance.

\b
Tracks (inferred from the folder's track_* parent, else submission.json 'track'):
{_TRACKS}

\b
Significance rules (--significance picks the verdict, default {DEFAULT_RULE}; all are reported;
progression tests the folders in date order, each against the frontier row before it):
{_RULES}

\b
Output: one summary line per folder (verdict and first reason), then each folder's
checks, then --json. Exit 0 when every folder passes (warnings allowed), 3 otherwise,
1 for bad input (no such PATH, no records folder in it).
"""


def _print_section(sec: Section, kind: str) -> None:
    click.echo("")
    click.secho(f"== {kind}: {sec.title}", bold=True)
    click.echo(render_table(sec.checks))
    verdict = "PASS" if sec.ok else "FAIL"
    click.secho(f"-> {verdict}", fg="green" if sec.ok else "red", bold=True)


class VerifyGroup(click.Group):
    """``golf verify PATH`` dispatches to ``artifact`` or ``records`` by what PATH is, and says which."""

    def parse_args(self, ctx, args):
        if not args or args[0] in self.commands or args[0] in ("--help", "-h"):
            return super().parse_args(ctx, args)
        sub, rest, why = self.dispatch(ctx, list(args))
        click.echo(f"golf verify: {why}: running `golf verify {sub}`", err=True)
        return super().parse_args(ctx, [sub, *rest])

    def _value_options(self) -> set[str]:
        out = set()
        for cmd in self.commands.values():
            for p in cmd.params:
                if isinstance(p, click.Option) and not p.is_flag:
                    out.update(p.opts)
        return out

    def _only_in(self, args: list[str]) -> set[str]:
        """Subcommands that alone accept one of the options in ``args``."""
        owners = {}
        for name, cmd in self.commands.items():
            for p in cmd.params:
                if isinstance(p, click.Option):
                    for o in p.opts + p.secondary_opts:
                        owners.setdefault(o, set()).add(name)
        return {next(iter(owners[a.split("=")[0]])) for a in args
                if a.startswith("--") and len(owners.get(a.split("=")[0], ())) == 1}

    def dispatch(self, ctx, args: list[str]) -> tuple[str, list[str], str]:
        """(subcommand, its arguments, why) for a ``golf verify ...`` line without a subcommand."""
        if "--records" in args:
            i = args.index("--records")
            if i + 1 >= len(args):
                raise click.UsageError("--records needs a PATH", ctx=ctx)
            path = args[i + 1]
            return "records", [path, *args[:i], *args[i + 2:]], \
                f"--records {path} (deprecated: use `golf verify records PATH`)"
        takes_value, pos, i = self._value_options(), None, 0
        while i < len(args):
            a = args[i]
            if a.startswith("-"):
                i += 2 if (a in takes_value and "=" not in a) else 1
                continue
            pos = a
            break
        if pos is None:
            raise click.UsageError("give a PATH: an artifact directory or a records folder/tree "
                                   "(or a subcommand: artifact, records)", ctx=ctx)
        kind, why = path_kind(Path(pos))
        hinted = self._only_in(args)
        if len(hinted) == 1:  # options only one subcommand has (--data, --against) say what is meant
            hint = hinted.pop()
            if kind != hint:
                why = (f"{pos} does not exist" if not Path(pos).exists() else f"{pos}: {why}") + \
                    f"; the options given belong to `{hint}`"
            kind = hint
        if kind is None:
            raise click.UsageError(f"{pos}: {why}; say which with `golf verify artifact` or "
                                   "`golf verify records`", ctx=ctx)
        return kind, args, why


def path_kind(path: Path) -> tuple[str | None, str]:
    """("artifact" | "records" | None, why) for ``golf verify PATH``."""
    if not path.exists():
        return None, "no such file or directory"
    if path.is_file():
        if path.name.startswith("submission") and path.suffix == ".json":
            return "records", f"{path} is a submission JSON"
        return None, "a file that is neither an artifact directory nor a submission.json"
    has_blob = any(path.glob("*.ptz")) or (path / REPORT_NAME).is_file()
    if (path / CODE_NAME).is_file() and has_blob and not (path / SUBMISSION_NAME).is_file():
        return "artifact", f"{path} holds train_gpt.py and a model blob (an artifact directory)"
    try:
        n = len(find_record_folders(path))
    except RecordsError as e:
        return None, str(e)
    return "records", f"{path} holds {n} records folder(s)"


@click.group("verify", cls=VerifyGroup, help=HELP)
def verify() -> None:
    pass


@verify.command("records", help=RECORDS_HELP)
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--against", type=float, help="The current record's val_bpb: test that the seeds improve on it "
              "(under --significance progression: the frontier before the earliest folder).")
@click.option("--significance", "rule", type=click.Choice(sorted(SIGNIFICANCE_RULES)), default=DEFAULT_RULE,
              show_default=True, help="Which significance rule gives the verdict (all are reported).")
@click.option("--min-improvement", type=float, default=None,
              help="Override the chosen rule's required improvement in nats of val_loss (readme 0.005, chained and "
                   "progression 0).")
@click.option("--alpha", type=float, default=None,
              help="Override the chosen rule's significance level (readme 0.01, chained and progression 0.25).")
@click.option("--track", type=click.Choice(sorted(TRACKS)), default=None,
              help="Judge every folder by this track's rules instead of inferring the track.")
@click.option("--max-bytes", type=int, default=None, help="Size limit in decimal bytes (default: the track's).")
@click.option("--train-time-limit", type=float, default=None,
              help="Seconds of logged training time (default: the track's; none in non_record_16mb).")
@click.option("--eval-time-limit", type=float, default=None,
              help="Seconds of logged eval_time (default: the track's; none in non_record_16mb).")
@click.option("--no-legality", is_flag=True, help="Skip the static legality scan of train_gpt.py.")
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write every folder's checks (name, status, measured, limit, message) as JSON.")
def records_cmd(path, against, rule, min_improvement, alpha, track, max_bytes, train_time_limit, eval_time_limit,
                no_legality, json_out) -> None:
    opts = LintOptions(against=against, rule=rule, min_improvement=min_improvement, alpha=alpha,
                       max_bytes=max_bytes, train_limit_s=train_time_limit, eval_limit_s=eval_time_limit,
                       track=track, legality=not no_legality)
    t0 = time.perf_counter()
    try:
        sections = lint_records(path, opts=opts)
    except (RecordsError, OSError) as e:
        raise click.ClickException(str(e)) from None
    seconds = time.perf_counter() - t0
    click.secho("== summary", bold=True)
    for sec in sections:
        click.echo(summary_line(sec))
    for sec in sections:
        _print_section(sec, f"records [{sec.info.get('track')}]")
    failed = [s for s in sections if not s.ok]
    warned = [s for s in sections if s.ok and any(c.status == "warn" for c in s.checks)]
    code = EXIT_RECORDS if failed else EXIT_OK
    click.echo(f"\n{len(sections) - len(failed)} of {len(sections)} folder(s) pass "
               f"({len(warned)} with warnings, {len(failed)} failed) in {seconds:.1f} s")
    if json_out:
        write_json(json_out, {"mode": "records", "ok": not failed, "exit_code": code, "against": against,
                              "significance_rule": rule, "seconds": round(seconds, 3),
                              "summary": [summary_line(s) for s in sections],
                              "folders": [{"path": s.title, "ok": s.ok, "checks": [c.to_dict() for c in s.checks],
                                           **s.info} for s in sections]})
    raise SystemExit(code)


@verify.command("artifact", help=ARTIFACT_HELP)
@click.argument("artifact_dir", type=click.Path(path_type=Path))
@click.option("--data", "data_dir", type=click.Path(path_type=Path),
              help="Data dir with datasets/fineweb10B_sp{V}/ and tokenizers/fineweb_{V}_bpe.model.")
@click.option("--claimed-bpb", type=float, help="The val_bpb the entry claims.")
@click.option("--submission", type=click.Path(path_type=Path, dir_okay=False),
              help="Take the claimed val_bpb from this submission.json.")
@click.option("--max-bytes", type=int, default=LIMIT_BYTES, show_default=True,
              help="Size limit in decimal bytes (code + blob + other files the run opened).")
@click.option("--eval-time-limit", type=float, default=600.0, show_default=True,
              help="Seconds: end-to-end wall clock of the clean run (the child is killed at it).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Device the artifact evaluates on (GOLF_DEVICE).")
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the full report (every check: name, status, measured, limit, message) as JSON.")
@click.option("--val-max-tokens", type=int, default=0,
              help="Quick check: score only the first N validation tokens (recorded as a partial set; the claimed "
                   "score is then not compared).")
@click.option("--eval-seq-len", type=int, default=0, help="Override EVAL_SEQ_LEN for the run (quick checks).")
@click.option("--eval-stride", type=int, default=0, help="Override EVAL_STRIDE for the run (quick checks).")
@click.option("--tolerance", type=float, default=5e-4, show_default=True,
              help="Allowed |claimed - re-scored| val_bpb (cross-hardware noise).")
@click.option("--max-memory-gb", type=float, default=None,
              help="Address-space limit of the child (RLIMIT_AS). Default: physical RAM on cpu, none on cuda "
                   "(CUDA reserves huge virtual ranges); 0 = no limit.")
@click.option("--no-netns", is_flag=True, help="Deprecated, ignored: the sandbox always runs the artifact in its own "
                                               "network namespace (see --weak-isolation).")
@click.option("--keep-temp", is_flag=True, help="Keep the temp dir of the clean run (path in the JSON report).")
@click.option("--allow-unverified", is_flag=True,
              help="An artifact that does not speak golf-eval/2 (no frame at all) is run classically "
                   "(validation shards + tokenizer "
                   "as read-only input) and its printed score reported as UNVERIFIED, a warning instead of exit 23.")
@click.option("--protocol-mode", type=click.Choice(["auto", "windows", "score-first"]), default="auto",
              show_default=True, help="golf-eval/2 mode: windows (stateless), score-first (legal test-time "
                                      "training, chunk by chunk); auto = windows when the artifact offers it.")
@click.option("--weak-isolation", is_flag=True,
              help="Run the artifact even where the sandbox cannot create namespaces (every isolation check is "
                   "then marked weak); without it such a machine gives exit 18 'cannot isolate'.")
@click.option("--max-eval-seq-len", type=int, default=4096, show_default=True,
              help="Largest context length a foreign artifact may announce in its hello.")
@click.option("--audit-budget", type=float, default=0.10, show_default=True,
              help="Hard limit on the audits' forward tokens, as a fraction of the real ones (each audit is priced "
                   "at the context length; the score-first history replay is extra and reported).")
@click.option("--audit-fraction", type=float, default=0.01, show_default=True,
              help="f: the audits catch a client cheating on this fraction of positions ...")
@click.option("--audit-delta", type=float, default=1e-6, show_default=True,
              help="... except with probability delta: n = ceil(ln(delta)/ln(1-f)) audits, as far as the budget "
                   "pays (the report prints the bound bought).")
@click.option("--allow-package", "allow_packages", multiple=True, metavar="NAME",
              help="Also make this installed distribution (and its Requires-Dist) visible in the sandbox; "
                   "repeatable. By default only torch, numpy, sentencepiece, brotli and their dependencies are.")
@click.option("--train-data", type=click.Path(path_type=Path, file_okay=False, exists=True), default=None,
              help="The training shards the entry was trained on (a dataset folder or a data root): check "
                   "data.overlap fails if any validation document is among them (any variant).")
def artifact_cmd(artifact_dir, data_dir, claimed_bpb, submission, max_bytes, eval_time_limit, device, json_out,
                 val_max_tokens, eval_seq_len, eval_stride, tolerance, max_memory_gb, no_netns, keep_temp,
                 allow_unverified, protocol_mode, weak_isolation, max_eval_seq_len, audit_budget, audit_fraction,
                 audit_delta, allow_packages, train_data) -> None:
    if data_dir is None:
        raise click.UsageError("artifact mode needs --data DIR (datasets/ + tokenizers/)")
    if claimed_bpb is not None and submission is not None:
        raise click.UsageError("give --claimed-bpb or --submission, not both")
    source = "--claimed-bpb" if claimed_bpb is not None else None
    if submission is not None:
        try:
            claims = parse_submission(Path(submission).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise click.ClickException(f"--submission {submission}: {e}") from None
        if claims.val_bpb is None:
            raise click.ClickException(f"--submission {submission}: no val_bpb in it")
        claimed_bpb, source = claims.val_bpb, f"{submission}"
    opts = VerifyOptions(data_dir=Path(data_dir), claimed_bpb=claimed_bpb, claimed_source=source,
                         max_bytes=max_bytes, eval_time_limit=eval_time_limit, device=device,
                         val_max_tokens=val_max_tokens, eval_seq_len=eval_seq_len, eval_stride=eval_stride,
                         tolerance=tolerance, memory_limit_gb=max_memory_gb, network_namespace=not no_netns,
                         keep_temp=keep_temp, allow_unverified=allow_unverified, protocol_mode=protocol_mode,
                         weak_isolation=weak_isolation, max_eval_seq_len=max_eval_seq_len, audit_budget=audit_budget,
                         audit_fraction=audit_fraction, audit_delta=audit_delta, allow_packages=tuple(allow_packages),
                         train_data=train_data)
    from golf.verifier.sandbox.environment import EnvironmentError_
    try:
        sec = verify_artifact(artifact_dir, opts, log=lambda m: click.echo(m, err=True))
    except (VerifyInputError, EnvironmentError_) as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:  # e.g. unreadable artifact files, no space left for the temp copy
        raise click.ClickException(f"cannot verify {artifact_dir}: {e}") from None
    code = exit_code_for(sec.checks)
    _print_section(sec, "artifact")
    i = sec.info
    if i.get("mode"):
        click.echo(f"mode: {i['mode']}")
    if i.get("isolation"):
        click.echo(f"isolation: {i['isolation']}")
    if i.get("partial"):
        click.echo(f"partial validation set: first {i.get('stream', {}).get('targets', 0):,} targets "
                   "(--val-max-tokens)")
    if i.get("score"):
        s = i["score"]
        click.echo(f"score ({s['kind']}): val_bpb {s['val_bpb']:.8f}")
    click.echo(f"exit code {code}: {EXIT_NAMES.get(code, '')}")
    if json_out:
        write_json(json_out, {"mode": "artifact", "artifact": str(artifact_dir), "ok": sec.ok, "exit_code": code,
                              "exit_meaning": EXIT_NAMES.get(code), "claimed_bpb": claimed_bpb,
                              "claimed_source": source, "checks": [c.to_dict() for c in sec.checks], **i})
    raise SystemExit(code)
