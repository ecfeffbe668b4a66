#!/usr/bin/env bash
# Publish the book's trained runs into pretrained/<preset>/ (fp16 safetensors + records).
# Usage: scripts/publish_pretrained.sh [RUNS_DIR [FOLDER...]]   (default $CYCLEGAN_RUNS or runs/;
# FOLDER: only these pretrained/ folders, e.g. stabilized; default all)
# The book profile's four compared models (the 9-block one as stabilized_book), plus the naive
# model at cpu length (it collapses by construction, so the book keeps it short);
# discriminators for the chapters that look inside one; and the shipped model,
# pretrained/stabilized: the book run lengthened to the long profile ($RUNS/long/stabilized),
# with the detector rates of all its checkpoints (rates.json, scripts/checkpoint_rates.py).
# CODE_COMMIT: the commit of the code that trained the runs (default: this checkout's HEAD).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-${CYCLEGAN_RUNS:-runs}}
shift || true
wanted() { [ ${#only[@]} -eq 0 ] || [[ " ${only[*]} " == *" $1 "* ]]; }
publish() {  # RUN_DIR FOLDER [--d-b] [--profile NAME] [--samples N] [--note TEXT]
  # --d-b: also the anime discriminator D_B (chapter 4's score maps); --samples: grids kept;
  # --note: a line of provenance for summary.json
  python - "$@" <<'PY'
import os, sys
from cyclegan_lib.pretrained import export_run
run, folder, *flags = sys.argv[1:]
value = lambda flag: flags[flags.index(flag) + 1] if flag in flags else None
samples = value("--samples")
out = export_run(run, f"pretrained/{folder}", discriminators=["D_B"] if "--d-b" in flags else False,
                 code_commit=os.environ.get("CODE_COMMIT"), profile=value("--profile"),
                 max_samples=int(samples) if samples else None)
if value("--note"):  # provenance a run's own records do not hold (e.g. a schedule change)
    import json
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, "note": value("--note")}, indent=2))
print(f"published {run} -> {out}")
PY
}
short="steps 1-1,000 ran under commit 9c2214c (the same training code) configured for 12,000 steps, still at the constant learning rate; resumed at step 1,000 under the 3,000-step schedule (exact: the steps so far are those of the shorter schedule)"
long="steps 1-1,000 ran on two threads under a 12,000-step schedule, still at the constant learning rate; resumed at step 1,000 on one thread under the 18,000-step schedule (exact: every step so far is at the constant rate under both schedules)"
only=("$@")
if wanted stabilized; then
  publish "$runs/long/stabilized" stabilized --profile long --samples 2 --note "$long"
  python scripts/checkpoint_rates.py "$runs/long/stabilized" --every 1000 \
    --out pretrained/stabilized/rates.json
fi
wanted stabilized_book && publish "$runs/book/stabilized" stabilized_book --d-b --note "$short"
wanted patch32 && publish "$runs/book/patch32" patch32 --d-b --samples 3 --note "$short"
wanted blocks3 && publish "$runs/book/blocks3" blocks3 --samples 1
wanted blocks6 && publish "$runs/book/blocks6" blocks6 --samples 1
wanted naive && publish "$runs/cpu/naive" naive --samples 4
du -sh pretrained
