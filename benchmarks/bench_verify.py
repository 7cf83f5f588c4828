"""`golf verify` wall time vs one plain `python train_gpt.py` evaluation of the same artifact.

Usage: python benchmarks/bench_verify.py ART --data DIR [--val-max-tokens N] [-- extra verify flags]

Runs, in this order and in this process's machine state: (a) ``python train_gpt.py`` in a copy
of ART with ``DATA_DIR`` (the artifact's own evaluation: plain + sliding when its config says
so), (b) ``golf verify ART --data DIR --json ...`` (trusted re-evaluation + sandboxed protocol
run + the audit process).  Prints both wall times, their ratio (issue 22 target <= 2.5x)
and the audit overhead (extra forward tokens / real ones, target <= 10 %) with the bound it buys.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("art", type=Path)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--val-max-tokens", type=int, default=0)
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "art"
        shutil.copytree(a.art, work)
        env = dict(os.environ, DATA_DIR=str(a.data.resolve()))
        if a.val_max_tokens:
            env["VAL_MAX_TOKENS"] = str(a.val_max_tokens)
        t0 = time.perf_counter()
        plain = subprocess.run([sys.executable, "train_gpt.py"], cwd=work, env=env, capture_output=True, text=True)
        t_plain = time.perf_counter() - t0
        if plain.returncode:
            print(plain.stderr[-2000:], file=sys.stderr)
            return 1
        report = Path(tmp) / "verify.json"
        cmd = ["golf", "verify", str(a.art), "--data", str(a.data), "--json", str(report), "--eval-time-limit",
               "7200", *(["--val-max-tokens", str(a.val_max_tokens)] if a.val_max_tokens else []), *a.extra]
        t0 = time.perf_counter()
        ver = subprocess.run(cmd, capture_output=True, text=True)
        t_verify = time.perf_counter() - t0
        doc = json.loads(report.read_text()) if report.is_file() else {}
    aud = doc.get("audits") or {}
    print(f"plain python train_gpt.py: {t_plain:8.1f} s")
    print(f"golf verify:               {t_verify:8.1f} s  (exit {ver.returncode})")
    print(f"ratio verify / plain:      {t_verify / t_plain:8.2f}x  (target <= 2.5x)")
    if aud:
        print(f"audit overhead:            {aud['extra_fraction']:8.2%}  ({aud['audit_tokens']:,} audit + "
              f"{aud['replay_tokens']:,} replay of {aud['real_tokens']:,} real forward tokens; target <= 10 %)")
        print(f"audits: {aud['n']:,} of {aud['needed']:,} needed (f={aud['fraction']:g}, delta={aud['delta']:g}): "
              f"P(miss) <= {aud['miss_probability']:.3g}; {aud['formula']}")
    print(f"load average (1 min): {os.getloadavg()[0]:.2f}")
    for k, v in (doc.get("runs") or {}).items():
        print(f"  sandboxed {k}: {v['wall_s']:.1f} s")
    if doc.get("trusted"):
        print(f"  trusted re-evaluation: {doc['trusted']['wall_s']:.1f} s (concurrent with the protocol run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
