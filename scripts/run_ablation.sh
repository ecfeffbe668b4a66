#!/usr/bin/env bash
# The single-factor stabilisation ablation: train the ten variants of
# cyclegan_lib.config.ABLATIONS at one short budget into $ABLATION_OUT/<name> (resumable:
# finished runs are skipped, interrupted ones continue from their last checkpoint).
#
# Usage: scripts/run_ablation.sh [NAME...]          (default: all ten)
#   ABLATION_PROFILE  profile of every run (default: ablation = 64 px, ngf 32, 400 steps;
#                     smoke for a test in seconds)
#   ABLATION_JOBS     runs side by side (default 2), each on one thread
#   ABLATION_OUT      where the runs go (default: ${CYCLEGAN_RUNS:-runs}/ablation)
#   CYCLEGAN_DATA     selfie2anime (trainA/trainB)
#   PYTHON            the interpreter with torch (default: .venv/bin/python, else python3)
# Each run's output goes to $ABLATION_OUT/<name>.log; the script exits 1 if any run failed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export ABLATION_PROFILE=${ABLATION_PROFILE:-ablation}
export ABLATION_OUT=${ABLATION_OUT:-${CYCLEGAN_RUNS:-runs}/ablation}
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then PYTHON="$repo/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHON
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
jobs=${ABLATION_JOBS:-2}
mkdir -p "$ABLATION_OUT"

run_one() {
  local name=$1; shift
  local dir="$ABLATION_OUT/$name"
  if grep -qs '"complete": true' "$dir/summary.json"; then
    echo "=== $name: complete, skipped"
    return 0
  fi
  echo "=== $name: start $(date -u +%H:%M:%S) ($*)"
  if "$PYTHON" -m cyclegan_lib.cli train "$@" --profile "$ABLATION_PROFILE" --out "$dir" \
      --resume --no-progress --threads 1 >"$dir.log" 2>&1; then
    echo "=== $name: done $(date -u +%H:%M:%S)"
  else
    echo "=== $name: FAILED (see $dir.log)"
    return 1
  fi
}
export -f run_one

variants=$("$PYTHON" -m cyclegan_lib.ablation args --profile "$ABLATION_PROFILE" "$@")
status=0
printf '%s\n' "$variants" | xargs -P "$jobs" -L 1 bash -c 'run_one "$@"' _ || status=1
echo "=== ablation ($ABLATION_PROFILE) finished $(date -u +%H:%M:%S) in $ABLATION_OUT, status $status"
exit $status
