#!/usr/bin/env bash
# Times the README's two commands as a new user runs them: a fresh clone beside ../shared, the set-up line
# (venv, torch, golf, `golf demo`) and the test command, each with the machine's load before and after.
# Usage: benchmarks/time_readme.sh [WORKDIR]   (default: a new folder beside this repo; removed at the end)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-$(dirname "$repo")/readme-timing-$$}"
git clone -q "$repo" "$work"
cd "$work"
stamp() { printf '%-22s %6s s   load %s\n' "$1" "$2" "$(cut -d' ' -f1-3 /proc/loadavg)"; }
t() { local name=$1 s=$SECONDS; shift; "$@" > "$work.$name.log" 2>&1 || { echo "FAILED: $* (log: $work.$name.log)" >&2; exit 1; }; echo $((SECONDS - s)); }
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)   cores: $(nproc)"
s=$SECONDS; python3 -m venv .venv && . .venv/bin/activate && pip install -q torch==2.13.0 && pip install -q -e ".[test]"
stamp "install" $((SECONDS - s))
stamp "golf demo" "$(t demo golf demo)"
stamp "tests (main step)" "$(t tests1 python -m pytest -q)"
stamp "tests (second step)" "$(t tests2 python -m pytest -q -m 'compile or smoke or slow')"
[ -n "${1:-}" ] || { cd /; rm -rf "$work"; }
