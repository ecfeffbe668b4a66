#!/usr/bin/env bash
# Train every experiment of the book at one profile into runs/PROFILE/PRESET (resumable).
# Usage: scripts/train_cpu_runs.sh [PROFILE] [PRESET...]
# Runs one after another; TRAIN_THREADS sets torch's CPU threads per run.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-cpu}; shift || true
presets=${*:-stabilized naive patch32 blocks3 blocks6}
runs=${CYCLEGAN_RUNS:-runs}
threads=()
[ -n "${TRAIN_THREADS:-}" ] && threads=(--threads "$TRAIN_THREADS")
for preset in $presets; do
  echo "=== $preset ($profile) $(date -u +%H:%M:%S)"
  cyclegan-anime train --preset "$preset" --profile "$profile" --out "$runs/$profile/$preset" \
    --resume --no-progress "${threads[@]}"
done
echo "=== all done $(date -u +%H:%M:%S)"
