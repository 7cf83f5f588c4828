"""Records lint over a whole tree: counts and time, with and without the static legality scan.

Usage: python benchmarks/bench_lint.py [PATH]   (default: the records-dev tarball, extracted to a temp dir)

Prints the number of folders, failed folders, folders that pass with warnings, logs with
lines the parser could not read, the failing checks by name, and the lint's wall-clock and
CPU time for the whole tree with the legality scan and without it (their ratio is the
scan's cost; CPU time is the number to compare on a shared machine).
"""
from __future__ import annotations

import collections
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from golf.verifier.lint.records import find_record_folders, lint_folder

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "records-dev" / "track_non_record_16mb.tar.xz"


def timed(folders: list[Path], legality: bool):
    t, c = time.perf_counter(), time.process_time()
    sections = [lint_folder(f, legality=legality) for f in folders]
    return sections, time.perf_counter() - t, time.process_time() - c


def main(path: Path) -> None:
    folders = find_record_folders(path)
    sections, wall, cpu = timed(folders, True)
    _, wall0, cpu0 = timed(folders, False)
    failed = [s for s in sections if not s.ok]
    warned = [s for s in sections if s.ok and any(c.status == "warn" for c in s.checks)]
    logs = [lg for s in sections for lg in s.info["logs"]]
    fails = collections.Counter(c.name.split("[")[0] for s in sections for c in s.checks if c.status == "fail")
    print(f"folders {len(sections)}  failed {len(failed)}  pass with warnings {len(warned)}  "
          f"clean {len(sections) - len(failed) - len(warned)}")
    print(f"logs {len(logs)}  with unparsed lines {sum(bool(lg['unparsed']) for lg in logs)}  "
          f"without a final line {sum(lg['scored'] is None for lg in logs)}  "
          f"embedded source skipped {sum(bool(lg['source_lines']) for lg in logs)}")
    print("failing checks: " + ", ".join(f"{k} {v}" for k, v in fails.most_common()))
    print(f"lint with legality scan: wall {wall:.2f} s, cpu {cpu:.2f} s; without: wall {wall0:.2f} s, "
          f"cpu {cpu0:.2f} s; cpu ratio {cpu / max(cpu0, 1e-9):.1f}x")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        if not DEV.is_file():
            sys.exit(f"no dev set at {DEV}; give a records tree as PATH")
        with tempfile.TemporaryDirectory() as tmp:
            with tarfile.open(DEV) as tf:
                tf.extractall(tmp, filter="data")
            main(Path(tmp) / "records")
