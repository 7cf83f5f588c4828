"""``golf demo``: the whole pipeline on the embedded sample corpus, on CPU, in a few minutes.

data build (tokenizer + shards) -> tiny training run per seed -> golf build -> clean-process
verification -> records folder.  Each stage is the same library code the CLI commands
run; the equivalent command lines are recorded in the logs and the records README.
"""
from __future__ import annotations

import json
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from golf.data.build import SAMPLE_DOCS as SAMPLE
from golf.protocol import SUBMISSION_NAME

# wall-clock bound of each clean verification run in the demo: generous, so a slow machine still finishes
DEMO_VERIFY_LIMIT_S = 3600.0


@dataclass
class DemoResult:
    out: Path
    data: Path
    runs: list[Path]
    artifacts: list[Path]
    records: Path
    plots: list[Path]
    val_bpb: float
    val_bpb_std: float
    artifact_bytes: int
    seconds: float


def run_demo(out: str | Path = "golf-demo", seeds: tuple[int, ...] = (1, 2), iterations: int = 200,
             vocab_size: int = 1024, num_val_docs: int = 60, quiet: bool = False, log=print,
             caseops: bool = False) -> DemoResult:
    """The five stages; ``caseops``: the data is the CaseOps variant (golf data build --caseops), scored
    in the bytes of the original text through its byte sidecar."""
    from golf.builder.build import build
    from golf.data.build import build_dataset
    from golf.presets import preset_config
    from golf.submission.assemble import assemble
    from golf.trainer.loop import RunOptions, train
    from golf.verifier.lint.records import TRACK_NON_RECORD

    t0 = time.perf_counter()
    out = Path(out)
    data, runs_root, arts_root = out / "data", out / "runs", out / "artifacts"
    # a CPU run is not an 8xH100 run: the non-record track (no training-time cap), however slow the machine
    records = out / "records" / f"track_{TRACK_NON_RECORD}" / f"{time.strftime('%Y-%m-%d')}_GolfDemo_Tiny"

    def stage(msg: str) -> None:
        log(f"\n== {msg} ({time.perf_counter() - t0:.0f}s)")

    stage(f"1/5 tokenizer + shards{' (CaseOps)' if caseops else ''} from the embedded sample ({SAMPLE.name}) "
          f"-> {data}")
    build_dataset([SAMPLE], vocab_size, data, num_val_docs=num_val_docs, shard_tokens=1_000_000,
                  progress=False if quiet else None, overwrite=True, log=log, caseops=caseops)

    run_dirs, art_dirs, plots = [], [], []
    for seed in seeds:
        run = runs_root / f"seed{seed}"
        cfg = preset_config("tiny")
        cfg.train.seed = seed
        cfg.train.iterations = iterations
        cfg.train.data_dir = str(data)
        cfg.train.run_dir = str(run)
        cmd = shlex.join(["golf", "train", "--preset", "tiny", "--data", str(data), "--run-dir", str(run),
                          "--seed", str(seed), "--iterations", str(iterations), "--device", "cpu"])
        stage(f"2/5 train seed {seed}: {cmd}")
        if run.exists():
            shutil.rmtree(run)
        train(cfg, RunOptions(device="cpu", progress=False if quiet else None, echo=not quiet, command=cmd))
        run_dirs.append(run)
        try:
            from golf.submission.plot import PlotError, plot_run
            plots.append(plot_run(run))
        except PlotError as e:  # matplotlib missing: the demo goes on
            log(f"(no curve plot: {e})")

        art = arts_root / f"seed{seed}"
        bcmd = shlex.join(["golf", "build", "--checkpoint", str(run), "--data", str(data), "--out", str(art),
                           "--device", "cpu"])
        stage(f"3/5 build seed {seed}: {bcmd}")
        build(run, data, art, device="cpu", command=bcmd, progress=False if quiet else None, log=log)
        art_dirs.append(art)

    stage(f"4/5 verify each artifact in a clean process + 5/5 assemble {records}")
    path, _ = assemble(art_dirs, records, name="golf demo: tiny recurrent GPT on the embedded sample",
                       author="golf demo", github_id="golf-demo", data_dir=data, device="cpu", force=True,
                       track=TRACK_NON_RECORD, eval_time_limit=DEMO_VERIFY_LIMIT_S, log=log)
    sub = json.loads((path / SUBMISSION_NAME).read_text(encoding="utf-8"))
    return DemoResult(out=out, data=data, runs=run_dirs, artifacts=art_dirs, records=path, plots=plots,
                      val_bpb=sub["val_bpb"], val_bpb_std=sub["val_bpb_std"], artifact_bytes=sub["bytes_total"],
                      seconds=time.perf_counter() - t0)
