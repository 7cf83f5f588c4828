"""Start-up of the sandbox's own launcher vs bubblewrap with the same view (issue 21 item 6).

Usage: python benchmarks/bench_bwrap.py [--reps 7]

Both run ``python -I -B t.py`` (``pass``) with the pinned environment of
golf.verifier.sandbox.environment (same binds, masks and symlinks), new user/PID/net/IPC/UTS
namespaces, a private /tmp and /proc, the work dir read-write.  bubblewrap (``bwrap``, Debian
package ``bubblewrap``) must be installed; the launcher path is golf's ``sandbox.run``.  Prints
the median seconds of each and the ratios to a plain child.
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

from golf.verifier.sandbox import environment
from golf.verifier.sandbox import run as sb


def bwrap_cmd(exp, work: Path, empty: Path) -> list[str]:
    cmd = ["bwrap", "--unshare-user", "--uid", "0", "--gid", "0", "--unshare-pid", "--unshare-net", "--unshare-ipc",
           "--unshare-uts", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--tmpfs", "/tmp",
           "--proc", "/proc", "--dev", "/dev"]
    for b in exp.binds:
        cmd += ["--ro-bind", b, b]
    for path, target in exp.links:
        cmd += ["--symlink", target, path]
    for m in exp.masks:
        cmd += ["--tmpfs", m] if os.path.isdir(m) else ["--ro-bind", str(empty), m]
    return cmd + ["--bind", str(work), str(work), "--chdir", str(work), "--remount-ro", "/",
                  sys.executable, "-I", "-B", "t.py"]


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    if not shutil.which("bwrap"):
        raise SystemExit("bwrap not found (apt-get install bubblewrap)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-bwrap-"))
    work, empty = tmp / "work", tmp / "empty"
    work.mkdir()
    (work / "t.py").write_text("pass\n")
    empty.write_text("")
    exp = environment.resolve(sys.executable)
    cmd = bwrap_cmd(exp, work, empty)

    def plain():
        subprocess.run([sys.executable, "-I", "-B", "t.py"], cwd=work, check=True)

    def launcher():
        priv = Path(tempfile.mkdtemp(dir=tmp))
        res = sb.run(sb.SandboxSpec(work=work, argv=["t.py"], private_dir=priv))
        if res.verdict != "ok":
            raise SystemExit(f"launcher run: {res.verdict}: {res.stderr[-2000:]}")

    def bwrap():
        r = subprocess.run(cmd, capture_output=True)
        if r.returncode:
            raise SystemExit(f"bwrap run failed: {r.stderr.decode()[-2000:]}")

    launcher()  # warm: resolves nothing more after this
    times = {"plain": [], "launcher": [], "bwrap": []}
    for _ in range(args.reps):
        for name, fn in (("plain", plain), ("launcher", launcher), ("bwrap", bwrap)):
            times[name].append(timed(fn))
    base = statistics.median(times["plain"])
    print(f"pinned environment: {len(exp.binds)} binds, {len(exp.masks)} masks, {len(exp.links)} symlinks")
    for name, v in times.items():
        m = statistics.median(v)
        print(f"  {name:9s} {m:7.3f} s  ({m / base:.2f}x plain)")
    print(f"  bwrap / launcher: {statistics.median(times['bwrap']) / statistics.median(times['launcher']):.1f}x")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
