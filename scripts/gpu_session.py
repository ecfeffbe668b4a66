"""One command for a lent GPU: the 256-px model, and the shipped 64-px recipe trained longer.

The shipped model (64 px, ngf 32, 18,000 steps) took 81 min of a CPU core and missed the
book's targets (anime rate >= 0.90, human rate >= 0.80); a GPU trains that recipe in minutes.
Side by side on one CUDA GPU, each under a wall-clock budget, this

1. runs ``scripts/gpu_train_256.py`` (stabilized at 256 px, ngf 64; ``--minutes256``);
2. times every 64-px variant (``--variant NAME:KEY=VALUE,...``, the ``long`` profile with
   those overrides) in a short probe, all at once as they will train, and sizes each to
   ``--minutes64``: as many 100-step epochs as fit, half at the constant rate, half decaying;
3. trains the variants side by side (``max_minutes`` stops any that overrun, checkpointed);
4. measures each variant's checkpoints, every 1,000 steps, EMA and raw weights
   (``scripts/checkpoint_rates.py``; ``--ema-only`` halves that time) and picks the variant
   whose last three EMA checkpoints have the highest mean of min(anime rate, human rate):
   a choice on the test set, said so;
5. writes into OUT no more than the device tool returns (8 files of at most 16 MiB, 64 MiB
   in all, two folders deep): ``stabilized_256/`` and ``gpu64/`` with the generators' fp16
   shards, and ``records.tar.gz`` with every run's config, history, summary, samples and rates,
   the benchmark and this script's report (also printed).

    PYTHONPATH=.:/tmp/site python3 scripts/gpu_session.py --data64 .device/data64 \\
        --data256 .device/data256 --out $OUT

(``scripts/device_pack.py`` makes the two data folders and the wheel; README, "On a GPU".)
On a CPU, for the tests: ``--device cpu --tiny``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from cyclegan_lib.pretrained import export_run

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ["lr2e-4:", "lr4e-4:lr=0.0004", "lr4e-4_batch4:lr=0.0004,batch_size=4"]
TINY = ["image_size=32", "ngf=8", "ndf=8", "epoch_size=4", "max_images=12", "log_every=2"]


def parse_variant(text: str) -> tuple[str, list[str]]:
    name, _, settings = text.partition(":")
    return name, [s for s in settings.split(",") if s]


def train_command(name: str, settings: list[str], run_dir: Path, data: Path, device: str,
                  extra: list[str]) -> list[str]:
    sets = [f"--set={s}" for s in [*settings, *extra]]
    return [sys.executable, "-m", "cyclegan_lib.cli", "train", "--preset", "stabilized",
            "--profile", "long", "--data", str(data), "--out", str(run_dir), "--device", device,
            "--no-progress", *sets]


def run_all(commands: dict[str, list[str]], timeout: float, threads: int) -> dict[str, int]:
    """Start every command at once; wait for all (killed at ``timeout`` seconds)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    procs = {k: subprocess.Popen(c, env=env) for k, c in commands.items()}
    end = time.monotonic() + timeout
    codes = {}
    for k, proc in procs.items():
        try:
            codes[k] = proc.wait(timeout=max(1.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[k] = proc.wait()
    return codes


def last_ema(rates: dict, n: int = 3) -> dict[str, float]:
    rows = [r for r in rates["rows"] if r["weights"] == "ema"] or rates["rows"]
    tail = rows[-n:]
    return {"anime": statistics.mean(r["anime_rate"] for r in tail),
            "human": statistics.mean(r["human_rate"] for r in tail),
            "steps": [r["step"] for r in tail]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data64", required=True, help="selfie2anime at 64-px load size, with tests")
    p.add_argument("--data256", help="training images for the 256-px run (none: no such run)")
    p.add_argument("--out", required=True)
    p.add_argument("--cascade", default=os.environ.get("CYCLEGAN_ANIME_CASCADE"),
                   help="lbpcascade_animeface.xml (default: $CYCLEGAN_ANIME_CASCADE, else the "
                        "one beside --data64)")
    p.add_argument("--minutes64", type=float, default=4.5)
    p.add_argument("--minutes256", type=float, default=3.5)
    p.add_argument("--variant", action="append", default=None, metavar="NAME:KEY=VALUE,...")
    p.add_argument("--device", default="cuda")
    p.add_argument("--probe-steps", type=int, default=150)
    p.add_argument("--every", type=int, default=1000, help="checkpoint (and measure) every N steps")
    p.add_argument("--ema-only", action="store_true", help="measure the EMA weights alone")
    p.add_argument("--tiny", action="store_true", help="32 px, ngf 8, a few images (tests)")
    args = p.parse_args(argv)
    started = time.monotonic()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_session_"))
    variants = dict(parse_variant(v) for v in (args.variant or VARIANTS))
    cpus = os.cpu_count() or 2
    threads = max(1, cpus // (len(variants) + 1))
    tiny = TINY if args.tiny else []
    report: dict = {"device": args.device, "variants": variants}

    big = None
    if args.data256:
        big_cmd = [sys.executable, str(REPO / "scripts" / "gpu_train_256.py"), "--data",
                   args.data256, "--out", str(work / "stabilized_256"), "--runs",
                   str(work / "runs256"), "--minutes", str(args.minutes256), "--device",
                   args.device]
        if args.tiny:
            big_cmd += ["--size", "32", "--ngf", "8", "--epoch-size", "5", "--bench-steps", "1",
                        "--bench-repeats", "1", "--max-shard-mb", "0.3"]
        big = subprocess.Popen(big_cmd, env={**os.environ, "PYTHONUNBUFFERED": "1",
                                             "OMP_NUM_THREADS": str(threads)})

    # 2. probe all variants at once, as they will run
    probes = {n: train_command(n, s, work / "probe" / n, Path(args.data64), args.device,
                               [*tiny, f"max_steps={args.probe_steps}",
                                f"save_every={args.probe_steps}"])
              for n, s in variants.items()}
    run_all(probes, timeout=300, threads=threads)
    plans = {}
    for name, settings in variants.items():
        summary = json.loads((work / "probe" / name / "summary.json").read_text())
        steps = args.minutes64 * 60 / summary["seconds_per_step"]
        size = 4 if args.tiny else 100
        epochs = max(2, int(0.9 * steps) // size)
        plans[name] = [f"n_epochs={(epochs + 1) // 2}", f"n_epochs_decay={epochs // 2}",
                       f"save_every={args.every}", "keep_checkpoints=1000",
                       f"sample_every={args.every}", f"max_minutes={1.15 * args.minutes64}"]
        report.setdefault("probe_seconds_per_step", {})[name] = summary["seconds_per_step"]
        print(f"{name}: {summary['seconds_per_step']:.4f} s/step in the probe -> "
              f"{epochs * size} steps", flush=True)

    # 3. train side by side
    runs = {n: work / "runs64" / n for n in variants}
    codes = run_all({n: train_command(n, variants[n], runs[n], Path(args.data64), args.device,
                                      [*tiny, *plans[n]]) for n in variants},
                    timeout=args.minutes64 * 60 * 1.3 + 120, threads=threads)
    report["train_exit_codes"] = codes

    # 4. every checkpoint of every variant, then the pick
    cascade = args.cascade or str(Path(args.data64).parent / "lbpcascade_animeface.xml")
    rate_env = ["--data", args.data64, "--every", str(args.every), "--cascade", cascade,
                *(["--ema-only"] if args.ema_only else [])]
    run_all({n: [sys.executable, str(REPO / "scripts" / "checkpoint_rates.py"), str(runs[n]),
                 *rate_env, "--out", str(runs[n] / "rates.json")] for n in variants},
            timeout=300, threads=max(1, cpus // len(variants)))
    scores = {}
    for name, run in runs.items():
        summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json"
                                                                      ).is_file() else {}
        entry = {k: summary.get(k) for k in ("step", "total_steps", "complete", "train_seconds",
                                             "seconds_per_step", "precision")}
        if (run / "rates.json").is_file():
            entry["last3_ema"] = last_ema(json.loads((run / "rates.json").read_text()))
            scores[name] = min(entry["last3_ema"]["anime"], entry["last3_ema"]["human"])
        report.setdefault("runs64", {})[name] = entry
    best = max(scores, key=scores.get) if scores else None
    report["picked"] = best
    report["pick_rule"] = ("highest mean of min(anime rate G_AB(testA), human rate G_BA(testB)) "
                           "over the last three EMA checkpoints (a choice on the test set)")

    # 5. what comes back: shards in two folders, everything else in one archive
    records = work / "records"
    records.mkdir()
    for name, run in runs.items():
        for item in ("config.json", "summary.json", "history.csv", "rates.json", "log.txt"):
            if (run / item).is_file():
                (records / "runs64" / name).mkdir(parents=True, exist_ok=True)
                shutil.copy2(run / item, records / "runs64" / name / item)
    if best is not None:
        export_run(runs[best], work / "gpu64", max_shard_mb=16, max_samples=4)
    if big is not None:
        try:
            report["run256_exit_code"] = big.wait(
                timeout=max(1.0, args.minutes256 * 60 * 1.25 + 240 - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            big.kill()
            report["run256_exit_code"] = "killed at its time limit"
    for folder in ("gpu64", "stabilized_256"):
        src = work / folder
        if not src.is_dir():
            continue
        (out / folder).mkdir(exist_ok=True)
        for f in src.iterdir():
            if f.suffix == ".safetensors":
                shutil.copy2(f, out / folder / f.name)
            elif f.is_dir():
                shutil.copytree(f, records / folder / f.name)
            else:
                (records / folder).mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, records / folder / f.name)
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    (records / "session.json").write_text(json.dumps(report, indent=2))
    with tarfile.open(out / "records.tar.gz", "w:gz") as tar:
        tar.add(records, arcname="records")
    print(json.dumps(report, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if best is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
