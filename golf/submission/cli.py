"""``golf submit``, ``golf plot`` and ``golf demo``."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from golf.protocol import EXIT_RECORDS, LIMIT_BYTES


class _ManyValues(click.Command):
    """Lets ``--runs A B C`` take several values (rewritten to ``--runs A --runs B --runs C``)."""

    many = ("--runs",)

    def parse_args(self, ctx, args):
        fixed, i = [], 0
        while i < len(args):
            a = args[i]
            fixed.append(a)
            i += 1
            if a in self.many:
                if i >= len(args) or args[i].startswith("-"):
                    raise click.UsageError(f"{a} needs at least one value", ctx=ctx)
                j = i
                while j < len(args) and not args[j].startswith("-"):
                    if j > i:
                        fixed.append(a)
                    fixed.append(args[j])
                    j += 1
                i = j
        return super().parse_args(ctx, fixed)


def _not_blank(ctx, param, value: str) -> str:
    """Refuse an empty or whitespace-only value (it would become an empty title or field)."""
    if not value.strip():
        raise click.BadParameter("must not be empty", ctx=ctx, param=param)
    return value.strip()


@click.command(cls=_ManyValues)
@click.option("--runs", "runs", multiple=True, required=True, metavar="ART...",
              type=click.Path(path_type=Path, file_okay=False),
              help="Artifact directories written by `golf build`, one per seed (several may follow one --runs).")
@click.option("--name", required=True, callback=_not_blank, help="Entry name (README title, submission.json 'name').")
@click.option("--author", required=True, callback=_not_blank, help="Author name.")
@click.option("--github-id", required=True, callback=_not_blank, help="GitHub user id of the author.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Records folder to create, e.g. records/track_10min_16mb/2026-11-25_MyEntry.")
@click.option("--data", "data_dir", type=click.Path(path_type=Path, file_okay=False),
              help="Data dir: verify every artifact now in a clean process (writes ART/verify.json). Without it, "
                   "each ART/verify.json from `golf verify ART --data DIR --json ART/verify.json` is reused.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Device for the verification runs.")
@click.option("--against", type=float, default=None,
              help="val_bpb of the baseline/record this entry claims to beat: recorded in submission.json and "
                   "tested for significance (>= 0.005 nats at p < 0.01) by the lint.")
@click.option("--baseline-name", default=None, help="Name of the baseline given with --against.")
@click.option("--track", default=None,
              help="Track id: 10min_16mb or non_record_16mb. Default: from what the runs were: 8xH100 and "
                   "training <= 600 s -> the --out parent's track_* (else 10min_16mb); a CPU, T4 or 1-GPU run, or "
                   "training over 600 s -> non_record_16mb (the folder moves to track_non_record_16mb, and it says "
                   "so). An explicit --track the logs contradict is refused.")
@click.option("--hardware", default=None, help="Hardware text (default: from the training logs).")
@click.option("--summary", default=None, help="Technique summary (default: generated from the configuration).")
@click.option("--date", default=None, help="Date for submission.json (default: today, YYYY-MM-DD).")
@click.option("--eval-time-limit", type=float, default=600.0, show_default=True,
              help="Wall-clock seconds allowed for each clean verification run (the lint applies the track's limit).")
@click.option("--train-time-limit", type=float, default=None,
              help="Seconds of training the lint allows (default: the track's cap; none in non_record_16mb).")
@click.option("--force", is_flag=True, help="Replace --out if it exists (only after the new folder passed the lint).")
def submit(runs, name, author, github_id, out, data_dir, device, against, baseline_name, track, hardware, summary,
           date, eval_time_limit, train_time_limit, force):
    """Assemble a records folder from seed runs built with `golf build`.

    \b
    Writes OUT/train_gpt.py (shared by all seeds), OUT/train_seed<S>.log (training log +
    the final lines of the clean evaluation run), OUT/submission.json (val_bpb = mean over
    seeds, val_bpb_std, seed_results, ...) and OUT/README.md (results table, configuration,
    exact commands). Scores come from `golf verify` re-running each artifact in a clean
    process. The folder is linted with `golf verify records` before it appears; if the
    lint fails nothing is left at OUT and the exit status is 3.

    \b
    Example:
      golf submit --runs artifacts/seed1 artifacts/seed2 artifacts/seed3 --data data \\
        --name "SP4096 recurrent GPT" --author "Ada" --github-id ada \\
        --out records/track_10min_16mb/2026-11-25_SP4096_Recurrent
    """
    from golf.submission.assemble import LintFailed, assemble
    from golf.verifier.report import render_table

    try:
        path, sec = assemble(list(runs), out, name=name, author=author, github_id=github_id, data_dir=data_dir,
                             device=device, against=against, baseline_name=baseline_name, track=track,
                             hardware=hardware, summary=summary, date=date, force=force,
                             eval_time_limit=eval_time_limit, train_time_limit=train_time_limit,
                             submit_command=shlex.join(["golf", "submit", *sys.argv[2:]])
                             if sys.argv[1:2] == ["submit"] else "",
                             log=lambda m: click.echo(m, err=True))
    except LintFailed as e:
        click.echo(render_table(e.section.checks))
        click.echo(f"error: {e}", err=True)
        raise SystemExit(EXIT_RECORDS)
    click.echo(render_table(sec.checks))
    click.echo(f"records folder: {path}")


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="PNG to write (default: RUN/curves.png).")
def plot(run_dir, out):
    """Plot train loss and val BPB of a `golf train` run (RUN/metrics.jsonl) to a PNG."""
    from golf.submission.plot import plot_run

    click.echo(f"wrote {plot_run(run_dir, out)}")


@click.command()
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("golf-demo"),
              show_default=True, help="Folder for data, runs, artifacts and the records folder.")
@click.option("--seeds", default="1,2", show_default=True, help="Comma-separated training seeds.")
@click.option("--iterations", type=int, default=200, show_default=True, help="Training steps per seed.")
@click.option("--num-val-docs", type=int, default=60, show_default=True,
              help="Sample documents held out for validation (fewer = faster evaluation).")
@click.option("--caseops", is_flag=True, help="Build the CaseOps variant of the sample (golf data build --caseops): "
                                            "scored in the original text's bytes through the byte sidecar.")
@click.option("--quiet", "-q", is_flag=True, help="Only stage headers and the summary.")
def demo(out, seeds, iterations, num_val_docs, caseops, quiet):
    """Run the whole pipeline on the embedded sample, on CPU, in a few minutes.

    \b
    1. golf data build   tokenizer (SP1024) + shards from golf/data/sample/sample_docs.jsonl.xz
    2. golf train        the tiny preset (every seed feature on) for each seed
    3. golf build        GPTQ int6 + int8 embeddings + brotli, self-contained train_gpt.py
    4. golf verify       each artifact re-scored in a clean, network-less process
    5. golf submit       a records folder (track non_record_16mb: a CPU run), linted
                         with golf verify records
    """
    from golf.submission.assemble import LintFailed, SubmitError
    from golf.submission.demo import run_demo

    try:
        seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
    except ValueError:
        raise click.UsageError(f"--seeds {seeds!r}: expected comma-separated integers, e.g. 1,2") from None
    if not seed_list:
        raise click.UsageError("--seeds: give at least one seed")
    if iterations < 1 or not 1 <= num_val_docs < 700:
        raise click.UsageError("--iterations must be >= 1 and --num-val-docs between 1 and 699")
    log = (lambda m: click.echo(m) if m.startswith("\n==") else None) if quiet else click.echo
    try:
        r = run_demo(out, seeds=seed_list, iterations=iterations, num_val_docs=num_val_docs, quiet=quiet, log=log,
                     caseops=caseops)
    except LintFailed as e:
        from golf.verifier.report import render_table
        click.echo(render_table(e.section.checks))
        raise click.ClickException(str(e)) from None
    except (SubmitError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"""
golf demo done in {r.seconds:.0f} s
  data        {r.data}
  runs        {', '.join(map(str, r.runs))}
  curves      {', '.join(map(str, r.plots)) or '(matplotlib not installed)'}
  artifacts   {', '.join(map(str, r.artifacts))}
  records     {r.records}
  val_bpb     {r.val_bpb:.8f} (mean of {len(r.runs)} seeds, std {r.val_bpb_std:.8f}; verified in a clean process)
  artifact    {r.artifact_bytes:,} bytes of {LIMIT_BYTES:,}""")
