#!/usr/bin/env bash
# One command for the day a GPU is there (<= 8 minutes on one H100):
#   doctor, bench train, a 300-step seed training with validation, build (Hessian/GPTQ/pack times),
#   verify on the GPU, and the record script side by side when ../shared/reference/ holds it.
# Writes OUT/gpu_check.json and OUT/gpu_check.md (OUT defaults to ./gpu_check).
#
#   benchmarks/gpu_check.sh                       # on the GPU machine, from the repository root
#   benchmarks/gpu_check.sh --data ./data         # with real sp4096 shards (else built from the sample)
#   benchmarks/gpu_check.sh --cpu-smoke --out /tmp/smoke   # the same pipeline on a CPU, tiny preset
#
# Any option of `golf bench gpu --help` passes through.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VIRTUAL_ENV:-}" ] && [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
exec python -m golf bench gpu "$@"
