#!/usr/bin/env bash
# Publish the book's trained runs into pretrained/<preset>/ (fp16 safetensors + records).
# Usage: scripts/publish_pretrained.sh [RUNS_DIR]   (default $CYCLEGAN_RUNS or runs/)
# The book profile's four compared models (the 9-block one as stabilized_book), plus the naive
# model at cpu length (it collapses by construction, so the book keeps it short);
# discriminators for the chapters that look inside one; and the shipped model,
# pretrained/stabilized: the book run lengthened to the long profile ($RUNS/long/stabilized),
# with the detector rates of all its checkpoints (rates.json, scripts/checkpoint_rates.py).
# CODE_COMMIT: the commit of the code that trained the runs (default: this checkout's HEAD).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-${CYCLEGAN_RUNS:-runs}}
publish() {  # RUN_DIR FOLDER [--discriminators] [--profile NAME]
  python - "$@" <<'PY'
import os, sys
from cyclegan_lib.pretrained import export_run
run, folder, *flags = sys.argv[1:]
profile = flags[flags.index("--profile") + 1] if "--profile" in flags else None
out = export_run(run, f"pretrained/{folder}", discriminators="--discriminators" in flags,
                 code_commit=os.environ.get("CODE_COMMIT"), profile=profile)
print(f"published {run} -> {out}")
PY
}
publish "$runs/long/stabilized" stabilized --profile long
python scripts/checkpoint_rates.py "$runs/long/stabilized" --out pretrained/stabilized/rates.json
publish "$runs/book/stabilized" stabilized_book --discriminators
publish "$runs/book/patch32" patch32 --discriminators
publish "$runs/book/blocks3" blocks3
publish "$runs/book/blocks6" blocks6
publish "$runs/cpu/naive" naive
du -sh pretrained
