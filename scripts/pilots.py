"""Quality per CPU-hour: short pilot runs of the stabilised model at an equal time budget.

Each pilot changes one setting of the book profile (resolution, width, batch, learning
rate).  A 30-step probe times the base setting on this machine and gives it as many steps
as fit the budget; every other pilot gets the base's steps scaled by its cost relative to
the base, both timed back to back.  Half the steps are at the constant learning rate, half
decaying, like every profile.  Each pilot is measured on the test sets with its averaged
(EMA) generators: the anime-detector rate of G_AB(testA) with a bootstrap interval and its
paired difference from the base, the human-detector rate of G_BA(testB) and the diversity
of G_AB(testA) relative to its inputs.  An interrupted pilot resumes from its checkpoint.

    python scripts/pilots.py --runs /work/runs/pilots --minutes 15 --out pretrained/pilots.json
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from cyclegan_lib.claims import measure_test_set
from cyclegan_lib.config import make_config
from cyclegan_lib.evaluate import evaluate_run
from cyclegan_lib.pretrained import describe_machine
from cyclegan_lib.runs import run_info
from cyclegan_lib.stats import bootstrap_ci, paired_difference
from cyclegan_lib.trainer import train

# One change each from the book profile (64 px, ngf/ndf 32, batch 1, lr 2e-4).
PILOTS: dict[str, dict] = {
    "base": {},
    "lr4e-4": {"lr": 4e-4},
    "96px": {"image_size": 96},
    "ngf64": {"ngf": 64, "ndf": 64},
    "batch4": {"batch_size": 4},
}


def seconds_per_step(cfg, data: Path, steps: int = 30) -> float:
    """Seconds per training step of ``cfg`` here, from a throw-away run of ``steps`` steps."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = dataclasses.replace(cfg, max_steps=steps, save_every=10 ** 9,
                                    sample_every=10 ** 9)
        return float(train(probe, data, Path(tmp) / "probe", progress=False)["seconds_per_step"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", required=True, help="folder for the pilot runs")
    p.add_argument("--data", default=os.environ.get("CYCLEGAN_DATA"))
    p.add_argument("--minutes", type=float, default=15.0, help="training budget per pilot")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", action="append", choices=sorted(PILOTS))
    p.add_argument("--out", default=None, help="JSON file for the results")
    args = p.parse_args(argv)
    if not args.data:
        raise SystemExit("pilots.py: set --data or $CYCLEGAN_DATA")
    data, runs = Path(args.data), Path(args.runs)
    results = json.loads(Path(args.out).read_text()) if args.out and Path(args.out).exists() \
        else {"pilots": {}}
    results.update(budget_minutes=args.minutes, threads=args.threads,
                   machine=describe_machine(), torch=torch.__version__)
    base_hits = None
    for name in ["base"] + [n for n in PILOTS if n != "base"]:
        if args.only and name not in args.only and name != "base":
            continue
        run_dir = runs / name
        cfg = make_config("stabilized", "book", threads=args.threads, keep_checkpoints=2,
                          **PILOTS[name])
        if name == "base":
            base_cfg = cfg
        if not (run_dir / "config.json").exists():
            sps = seconds_per_step(cfg, data)
            if name == "base":
                steps = args.minutes * 60 / sps
            else:  # the base's steps scaled by the cost ratio, both timed now (a shared CPU's
                # speed drifts, the ratio much less)
                steps = results["pilots"]["base"]["steps"] * seconds_per_step(base_cfg, data) / sps
            half = max(1, int(steps / (2 * cfg.epoch_size)))
            cfg = dataclasses.replace(cfg, n_epochs=half, n_epochs_decay=half)
            print(f"{name}: {sps:.3f} s/step -> {2 * half * cfg.epoch_size} steps", flush=True)
        else:
            saved = json.loads((run_dir / "config.json").read_text())
            cfg = dataclasses.replace(cfg, n_epochs=saved["n_epochs"],
                                      n_epochs_decay=saved["n_epochs_decay"])
        started = time.perf_counter()
        summary = train(cfg, data, run_dir, resume=True, progress=False)
        print(f"{name}: trained in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
        m = evaluate_run(run_dir, data, kid=False)
        hits = measure_test_set(run_dir, data, human=False)["anime"]
        rate, low, high = bootstrap_ci(hits)
        row = {
            "overrides": PILOTS[name], "steps": summary["step"],
            "seconds_per_step": summary["seconds_per_step"],
            "train_minutes": round(summary["train_seconds"] / 60, 1),
            "precision": run_info(run_dir).get("precision"),
            "anime_rate": rate, "anime_ci": [low, high],
            "human_rate_G_BA(testB)": m["detector"]["G_BA(testB)"]["human"],
            "diversity_ratio": m["diversity"]["G_AB(testA)"] / m["diversity"]["testA"],
            "cycle_l1": m["cycle_l1"]["A->B->A"],
            "anime_hits": [int(h) for h in hits],
        }
        if name == "base":
            base_hits = hits
        elif base_hits is not None and len(base_hits) == len(hits):
            row["minus_base"] = list(paired_difference(hits, base_hits))
        results["pilots"][name] = row
        print(f"{name}: {row['steps']} steps, {row['train_minutes']} min, anime "
              f"{rate:.2f} [{low:.2f}, {high:.2f}], human {row['human_rate_G_BA(testB)']:.2f}, "
              f"diversity {row['diversity_ratio']:.2f}", flush=True)
        if args.out:
            tmp = Path(args.out).with_suffix(".tmp")
            tmp.write_text(json.dumps(results, indent=1))
            tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
