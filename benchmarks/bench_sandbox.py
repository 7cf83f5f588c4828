"""Start-up overhead of the verifier's sandbox (golf.verifier.sandbox.run) vs a plain child process.

Usage: python benchmarks/bench_sandbox.py [--reps 5] [--artifact ART --data DIR [--val-max-tokens N]]

Times, alternating plain and sandboxed runs so machine load hits both alike:
  (a) a trivial script (``pass``): plain ``python -I -B`` vs the sandbox with namespaces
      (user+mount+PID+net, pivot_root, recorder) vs the sandbox without them (weak);
  (b) a script that imports torch, numpy, sentencepiece and brotli (the environment read through
      the read-only bind mounts);
  (c) with --artifact: an artifact's train_gpt.py in eval mode on the first N validation tokens
      (plain child reading the data dir directly vs the sandbox with the staged val data as input).
Prints median seconds, the difference and the ratio for each, and which namespaces this machine grants.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from golf.verifier.sandbox import run as sb


def plain(work: Path, script: str, env: dict[str, str]) -> float:
    t = time.perf_counter()
    # a new session like the sandbox's: with autogroup scheduling a session is a CPU-share unit, and on a
    # busy machine a child in the benchmark's own session would get a smaller share than the sandbox
    r = subprocess.run([sys.executable, "-I", "-B", script], cwd=work, env=sb.minimal_env(env),
                       capture_output=True, start_new_session=True)
    if r.returncode:
        raise SystemExit(f"plain run failed: {r.stderr.decode()[-2000:]}")
    return time.perf_counter() - t


def sandboxed(work: Path, script: str, env: dict[str, str], weak: bool, inputs=None) -> float:
    priv = Path(tempfile.mkdtemp(prefix="bench-sbx-"))
    try:
        t = time.perf_counter()
        spec = sb.SandboxSpec(work=work, argv=[script], env=env, inputs=inputs or {}, private_dir=priv,
                              weak_isolation=weak, limits=sb.Limits(wall_s=3600))
        if weak:
            os.environ[sb.ENV_SANDBOX_FORCE_NO_NS] = "1"
        try:
            res = sb.run(spec)
        finally:
            os.environ.pop(sb.ENV_SANDBOX_FORCE_NO_NS, None)
        dt = time.perf_counter() - t
        if res.verdict != "ok":
            raise SystemExit(f"sandboxed run: {res.verdict}: {res.stderr[-2000:]}")
        return dt
    finally:
        shutil.rmtree(priv, ignore_errors=True)


def compare(name: str, reps: int, runs: dict) -> None:
    times = {k: [] for k in runs}
    for _ in range(reps):
        for k, fn in runs.items():
            times[k].append(fn())
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["plain"]
    print(f"\n{name} (median of {reps}):")
    for k, v in med.items():
        extra = "" if k == "plain" else f"   +{v - base:.3f} s  ({v / base:.2f}x)"
        print(f"  {k:<14} {v:8.3f} s{extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--artifact", type=Path)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--val-max-tokens", type=int, default=4096)
    a = ap.parse_args()
    ok, how = sb.namespaces_available()
    print(f"namespaces: {'granted' if ok else 'REFUSED'} ({how})")
    tmp = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    try:
        work = tmp / "work"
        work.mkdir()
        (work / "t.py").write_text("pass\n")
        (work / "imp.py").write_text("import torch, numpy, sentencepiece, brotli\n")
        for name, script, reps in (("trivial script", "t.py", a.reps), ("import torch/numpy/sp/brotli", "imp.py",
                                                                        max(2, a.reps // 2))):
            runs = {"plain": lambda s=script: plain(work, s, {})}
            if ok:
                runs["sandbox (ns)"] = lambda s=script: sandboxed(work, s, {}, False)
            runs["sandbox (weak)"] = lambda s=script: sandboxed(work, s, {}, True)
            compare(name, reps, runs)
        if a.artifact:
            bench_artifact(a, tmp, ok)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_artifact(a, tmp: Path, ok: bool) -> None:
    ds = sorted((a.data / "datasets").glob("fineweb10B_sp*"))[0]
    vocab = ds.name.removeprefix("fineweb10B_sp")
    tok = a.data / "tokenizers" / f"fineweb_{vocab}_bpe.model"
    staged = tmp / "staged"
    (staged / "datasets" / ds.name).mkdir(parents=True)
    (staged / "tokenizers").mkdir()
    for f in ds.glob("fineweb_val_*.bin"):
        shutil.copy(f, staged / "datasets" / ds.name / f.name)
    shutil.copy(tok, staged / "tokenizers" / tok.name)
    art = tmp / "art"
    shutil.copytree(a.artifact, art)

    def env(root: Path) -> dict[str, str]:
        return {"GOLF_MODE": "eval", "GOLF_DEVICE": "cpu", "VOCAB_SIZE": vocab, "DATA_DIR": str(root),
                "DATA_PATH": str(root / "datasets" / ds.name), "TOKENIZER_PATH": str(root / "tokenizers" / tok.name),
                "VAL_MAX_TOKENS": str(a.val_max_tokens)}

    runs = {"plain": lambda: plain(art, "train_gpt.py", env(staged))}
    if ok:
        runs["sandbox (ns)"] = lambda: sandboxed(art, "train_gpt.py", env(art / "data"), False, {"data": staged})
    compare(f"artifact {a.artifact} eval, {a.val_max_tokens} val tokens", max(2, a.reps // 2), runs)


if __name__ == "__main__":
    main()
