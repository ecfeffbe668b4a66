"""Detector rates and output diversity of every checkpoint of a run, averaged and raw weights.

GAN quality swings from checkpoint to checkpoint; this prints, for each saved step,
the anime-detector rate on G_AB(testA), the human-detector rate on G_BA(testB) and
the diversity of G_AB(testA) relative to its inputs (collapse), for the generators'
running average (EMA) and for the raw weights, and writes them as JSON.

    python scripts/checkpoint_rates.py RUN_DIR --data $CYCLEGAN_DATA --out rates.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from cyclegan_lib.checkpoint import list_checkpoints, safe_load
from cyclegan_lib.data import float_to_uint8, load_domain, uint8_to_float
from cyclegan_lib.evaluate import translate_batch
from cyclegan_lib.faces import detection_hits, human_cascade_path
from cyclegan_lib.paths import anime_cascade as anime_cascade_path
from cyclegan_lib.report import diversity
from cyclegan_lib.runs import load_generator


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--data", default=os.environ.get("CYCLEGAN_DATA"))
    p.add_argument("--cascade", default=os.environ.get("CYCLEGAN_ANIME_CASCADE"))
    p.add_argument("--last", type=int, default=3, help="checkpoints in the mean-and-spread line")
    p.add_argument("--every", type=int, default=None,
                   help="only checkpoints at multiples of this many steps (and the last)")
    p.add_argument("--ema-only", action="store_true", help="skip the raw weights (half the time)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    run = Path(args.run_dir)
    ckpts = list_checkpoints(run / "checkpoints")
    if not ckpts:
        sys.exit(f"no checkpoints in {run}/checkpoints")
    if args.every:
        ckpts = [c for c in ckpts[:-1] if c[0] % args.every == 0] + ckpts[-1:]
    size = int(safe_load(ckpts[-1][1])["config"]["image_size"])
    data = Path(args.data)
    a = load_domain(data / "testA", size).images
    b = load_domain(data / "testB", size).images
    fa, fb = uint8_to_float(a), uint8_to_float(b)
    anime, human = str(anime_cascade_path(args.cascade)), str(human_cascade_path())
    rows = []
    base = {"testA anime": detection_hits(a, anime), "testB anime": detection_hits(b, anime),
            "testA human": detection_hits(a, human), "testB human": detection_hits(b, human)}
    for step, path in ckpts:
        has_ema = "ema" in safe_load(path)
        for weights in (["ema"] if args.ema_only else ["ema", "raw"]) if has_ema else ["raw"]:
            g_ab = load_generator(path, "AtoB", ema=weights == "ema")
            g_ba = load_generator(path, "BtoA", ema=weights == "ema")
            fake_b = translate_batch(g_ab, fa, "cpu")
            fake_a = translate_batch(g_ba, fb, "cpu")
            row = {"step": step, "weights": weights,
                   "anime_hits_G_AB(testA)": detection_hits(float_to_uint8(fake_b), anime),
                   "human_hits_G_BA(testB)": detection_hits(float_to_uint8(fake_a), human),
                   "diversity_ratio_G_AB": diversity(fake_b) / diversity(fa)}
            row["anime_rate"] = statistics.mean(row["anime_hits_G_AB(testA)"])
            row["human_rate"] = statistics.mean(row["human_hits_G_BA(testB)"])
            rows.append(row)
            print(f"step {step:6d} {weights:3s}  anime G_AB(testA) {row['anime_rate']:.2f}  "
                  f"human G_BA(testB) {row['human_rate']:.2f}  "
                  f"diversity {row['diversity_ratio_G_AB']:.2f}x inputs", flush=True)
    for weights in ("ema", "raw"):
        tail = [r for r in rows if r["weights"] == weights][-args.last:]
        if len(tail) > 1:
            rates = [r["anime_rate"] for r in tail]
            print(f"{weights}: last {len(tail)} checkpoints anime rate mean "
                  f"{statistics.mean(rates):.3f}, sd {statistics.stdev(rates):.3f}, "
                  f"range {min(rates):.2f}-{max(rates):.2f}")
    print("baselines: " + ", ".join(f"{k} {statistics.mean(v):.2f}" for k, v in base.items()))
    if args.out:
        Path(args.out).write_text(json.dumps({"run": run.name, "baselines": base, "rows": rows},
                                             indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
