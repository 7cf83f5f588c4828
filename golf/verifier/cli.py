"""``golf verify``: re-score an artifact in a clean process, or lint records folders."""
from __future__ import annotations

from pathlib import Path

import click

from golf.verifier.artifact import (EXIT_NAMES, EXIT_OK, EXIT_RECORDS, LIMIT_BYTES, VerifyInputError,
                                    VerifyOptions, exit_code_for, verify_artifact)
from golf.verifier.records import RecordsError, lint_records, parse_submission
from golf.verifier.report import Section, render_table, write_json

_CODES = "\n".join(f"  {code:>2}  {text}" for code, text in sorted(EXIT_NAMES.items()))

HELP = f"""Verify an artifact (ARTIFACT_DIR) or lint records folders (--records PATH).

\b
Artifact mode:  golf verify ART --data DIR [--claimed-bpb X | --submission submission.json]
  The verifier owns the data and the coverage: it scores all N-1 targets of the untruncated
  validation stream.  A golf artifact (train_gpt.py byte-identical to the one golf regenerates
  from the blob's config) is re-scored by golf's own code in a separate process; its own
  answers must agree.  Every artifact runs in the sandbox and answers the golf-eval/1
  protocol (windows or score-first) over two pipes, with decoys (repeats, fresh replay,
  causality splices, vocabulary sweeps) it cannot tell apart.  One that only prints a
  score is "unverified" (see --allow-unverified).  Protocol: docs/cli-verify.md.

\b
Records mode:   golf verify --records records/ [--against BPB]
  Lints one records folder or a tree (records/track_*/DATE_NAME/): layout, log parsing,
  score provenance (seed logs, recomputed mean, best-seed reporting), size, time and, with
  --against (the current record's val_bpb), a one-sided t-test that the seeds' mean
  improves by >= --min-improvement nats at p < --alpha.

\b
Exit codes (artifact mode: when several checks fail, the first in the order
malformed, cannot isolate, network, access, processes, memory, cpu time, file size,
timeout, runtime, tokenizer, unverified, invalid, score, size wins):
{_CODES}
   1  bad input to the verifier itself (missing --data, unreadable files)
   2  usage error
"""


def _print_section(sec: Section, kind: str) -> None:
    click.echo("")
    click.secho(f"== {kind}: {sec.title}", bold=True)
    click.echo(render_table(sec.checks))
    verdict = "PASS" if sec.ok else "FAIL"
    click.secho(f"-> {verdict}", fg="green" if sec.ok else "red", bold=True)


@click.command("verify", help=HELP)
@click.argument("artifact_dir", required=False, type=click.Path(path_type=Path))
@click.option("--records", "records", type=click.Path(path_type=Path),
              help="Lint a records folder or a tree of them instead of verifying an artifact.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path),
              help="Data dir with datasets/fineweb10B_sp{V}/ and tokenizers/fineweb_{V}_bpe.model (artifact mode).")
@click.option("--claimed-bpb", type=float, help="The val_bpb the entry claims (artifact mode).")
@click.option("--submission", type=click.Path(path_type=Path, dir_okay=False),
              help="Take the claimed val_bpb from this submission.json (artifact mode).")
@click.option("--max-bytes", type=int, default=LIMIT_BYTES, show_default=True,
              help="Size limit in decimal bytes (code + blob + other files the run opened).")
@click.option("--eval-time-limit", type=float, default=600.0, show_default=True,
              help="Seconds: artifact mode = end-to-end wall clock of the clean run (the child is killed at it); "
                   "records mode = logged eval_time.")
@click.option("--train-time-limit", type=float, default=600.0, show_default=True,
              help="Records mode: seconds of logged training time.")
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
@click.option("--no-netns", is_flag=True, help="Do not try a network namespace (the audit hook still blocks).")
@click.option("--keep-temp", is_flag=True, help="Keep the temp dir of the clean run (path in the JSON report).")
# ---- artifact mode, verifier v2 (issue 12): protocol, isolation and coverage flags
@click.option("--allow-unverified", is_flag=True,
              help="An artifact that does not speak golf-eval/1 is run classically (validation shards + tokenizer "
                   "as read-only input) and its printed score reported as UNVERIFIED, a warning instead of exit 18.")
@click.option("--protocol-mode", type=click.Choice(["auto", "windows", "score-first"]), default="auto",
              show_default=True, help="golf-eval/1 mode: windows (stateless), score-first (legal test-time "
                                      "training, chunk by chunk); auto = windows when the artifact offers it.")
@click.option("--weak-isolation", is_flag=True,
              help="Run the artifact even where the sandbox cannot create namespaces (every isolation check is "
                   "then marked weak); without it such a machine gives exit 19 'cannot isolate'.")
@click.option("--max-eval-seq-len", type=int, default=4096, show_default=True,
              help="Largest context length a foreign artifact may announce in its hello.")
@click.option("--decoy-budget", type=float, default=0.10, show_default=True,
              help="Extra forward tokens for decoys, as a fraction of the real ones (measured and reported).")
@click.option("--against", type=float, help="Records mode: the current record's val_bpb for the significance test.")
@click.option("--min-improvement", type=float, default=0.005, show_default=True,
              help="Records mode: required improvement in nats of val_loss.")
@click.option("--alpha", type=float, default=0.01, show_default=True, help="Records mode: significance level.")
def verify(artifact_dir, records, data_dir, claimed_bpb, submission, max_bytes, eval_time_limit, train_time_limit,
           device, json_out, val_max_tokens, eval_seq_len, eval_stride, tolerance, max_memory_gb, no_netns,
           keep_temp, allow_unverified, protocol_mode, weak_isolation, max_eval_seq_len, decoy_budget, against,
           min_improvement, alpha) -> None:
    if (artifact_dir is None) == (records is None):
        raise click.UsageError("give either ARTIFACT_DIR (verify an artifact) or --records PATH (lint records)")
    if records is not None:
        try:
            sections = lint_records(records, against=against, max_bytes=max_bytes, train_limit_s=train_time_limit,
                                    eval_limit_s=eval_time_limit, min_improvement=min_improvement, alpha=alpha)
        except (RecordsError, OSError) as e:
            raise click.ClickException(str(e)) from None
        for sec in sections:
            _print_section(sec, "records")
        failed = [s for s in sections if not s.ok]
        code = EXIT_RECORDS if failed else EXIT_OK
        click.echo(f"\n{len(sections) - len(failed)} of {len(sections)} folder(s) pass")
        if json_out:
            write_json(json_out, {"mode": "records", "ok": not failed, "exit_code": code, "against": against,
                                  "folders": [{"path": s.title, "ok": s.ok, "checks": [c.to_dict() for c in s.checks],
                                               **s.info} for s in sections]})
        raise SystemExit(code)

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
                         weak_isolation=weak_isolation, max_eval_seq_len=max_eval_seq_len, decoy_budget=decoy_budget)
    try:
        sec = verify_artifact(artifact_dir, opts, log=lambda m: click.echo(m, err=True))
    except VerifyInputError as e:
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
