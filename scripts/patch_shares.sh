#!/usr/bin/env bash
# Chapter 4's patch-size experiment: the four runs of cyclegan_lib.config.PATCH_SHARES
# (stabilized, patch32, scaled70, scaled32) at the book profile, compared at one step.
# Trains what is missing up to STEP (resumable; the schedule stays the book's, so a run
# stopped at STEP is the first STEP steps of the full one), views each run at STEP
# (cyclegan_lib.runs.run_until) and writes the measurements to pretrained/patch_shares.json.
#
# Usage: scripts/patch_shares.sh
#   STEP            the budget compared (default 3000, the book profile's; a multiple of 500)
#   SHARES_RUNS     where the runs are (default ${CYCLEGAN_RUNS:-runs}/book)
#   SHARES_THREADS  torch threads per run (default 2; the runs train one after another)
#   CYCLEGAN_DATA   selfie2anime
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
PYTHON=${PYTHON:-$repo/.venv/bin/python}
step=${STEP:-3000}
runs=${SHARES_RUNS:-${CYCLEGAN_RUNS:-$repo/runs}/book}
data=${CYCLEGAN_DATA:?set CYCLEGAN_DATA to the selfie2anime folder}
views=$(mktemp -d)
trap 'rm -rf "$views"' EXIT
for name in stabilized patch32 scaled70 scaled32; do
  if [ ! -f "$runs/$name/checkpoints/$(printf 'step_%08d.pt' "$step")" ]; then
    "$PYTHON" -m cyclegan_lib.cli train --preset "$name" --profile book --data "$data" \
      --out "$runs/$name" --resume --no-progress --threads "${SHARES_THREADS:-2}" \
      --set max_steps="$step"
  fi
  "$PYTHON" -c "import sys; from cyclegan_lib.runs import run_until; a = sys.argv; run_until(a[1], int(a[2]), a[3])" \
    "$runs/$name" "$step" "$views/$name" > /dev/null
done
"$PYTHON" -m cyclegan_lib.ablation summary --variants shares --profile book --runs "$views" \
  --data "$data" --out "$repo/pretrained/patch_shares.json"
