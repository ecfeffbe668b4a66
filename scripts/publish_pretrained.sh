#!/usr/bin/env bash
# Publish the book's trained runs into pretrained/<preset>/ (fp16 safetensors + records).
# Usage: scripts/publish_pretrained.sh [RUNS_DIR]   (default $CYCLEGAN_RUNS or runs/)
# The book profile's four compared models, plus the naive model at cpu length (it collapses by
# construction, so the book keeps it short); discriminators for the chapters that look inside one.
# CODE_COMMIT: the commit of the code that trained the runs (default: this checkout's HEAD).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-${CYCLEGAN_RUNS:-runs}}
publish() {  # RUN_DIR PRESET [--discriminators]
  python - "$@" <<'PY'
import os, sys
from cyclegan_lib.pretrained import export_run
run, preset, *flags = sys.argv[1:]
out = export_run(run, f"pretrained/{preset}", discriminators="--discriminators" in flags,
                 code_commit=os.environ.get("CODE_COMMIT"))
print(f"published {run} -> {out}")
PY
}
publish "$runs/book/stabilized" stabilized --discriminators
publish "$runs/book/patch32" patch32 --discriminators
publish "$runs/book/blocks3" blocks3
publish "$runs/book/blocks6" blocks6
publish "$runs/cpu/naive" naive
du -sh pretrained
