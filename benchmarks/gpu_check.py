"""The GPU check, in one command: the figures the README still lacks for a GPU.

    ./dev.sh shell python benchmarks/gpu_check.py --out benchmarks/results/gpu_check.json

prints one JSON report with

1. ``speed``: seconds per training iteration at 256 px, ngf 64, 9 blocks (the paper's
   settings), ``reference`` (the official way, fp32) vs ``fast`` (what ``cyclegan-anime
   train`` does, ``amp=auto``), measured by ``benchmarks/train_step.py``; the speed-up (target
   >= 2x on CUDA), the achieved TFLOP/s and fraction of peak, CUDA peak memory per mode;
2. ``colab_training``: a 200-step training run at the ``colab`` profile (128 px, ngf 64)
   in fp16 and, where the GPU has it, bf16: seconds per step, the projected time of the
   profile's 30,000 steps (the README's estimate is about 44 min on a T4), peak CUDA memory,
   whether every loss stayed finite and the fp16 loss scales at the end;
3. ``machine``: GPU name and memory, torch and CUDA versions.

``--tiny`` runs the same code at 32 px, ngf 8, a few steps on a few images (on CPU in
seconds: how the tests check it); ``--dry-run`` prints the plan without running anything.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import data_dir, emit, machine  # noqa: E402

from cyclegan_lib.config import PROFILES, make_config  # noqa: E402
from cyclegan_lib.cyclegan import resolve_device  # noqa: E402
from cyclegan_lib.precision import resolve_amp  # noqa: E402
from cyclegan_lib.trainer import Trainer  # noqa: E402


def plan(args) -> dict:
    """What will run: the train_step.py command and the training configs."""
    device = resolve_device(args.device)
    speed_cmd = [sys.executable, str(HERE / "train_step.py"), "--device", str(device),
                 "--size", str(args.size), "--ngf", str(args.ngf), "--modes", "reference,fast",
                 "--steps", str(args.speed_steps), "--repeats", str(args.repeats),
                 "--warmup", str(args.warmup)]
    if args.data:
        speed_cmd += ["--data", args.data]
    precisions = []
    for amp in args.precisions.split(","):
        try:
            precisions.append(resolve_amp(amp, device))
        except ValueError as exc:  # bf16 on a GPU without it: reported, not run
            precisions.append(f"skipped: {exc}")
    overrides = dict(device=str(device), max_steps=args.train_steps, log_every=25,
                     sample_every=10 ** 9, save_every=10 ** 9)
    if args.tiny:
        overrides.update(image_size=32, ngf=8, ndf=8, max_images=12, epoch_size=4)
    return {"device": str(device), "speed_command": speed_cmd, "precisions": precisions,
            "profile": args.profile, "profile_settings": PROFILES[args.profile],
            "train_overrides": overrides}


def run_speed(cmd: list[str]) -> dict:
    """Run train_step.py and keep the figures this check reports."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    report = json.loads(proc.stdout)
    modes = report["modes"]
    out = {"settings": report["settings"], "seconds_per_iteration": {}, "memory": {}}
    for mode, r in modes.items():
        if "error" in r:
            out.setdefault("errors", {})[mode] = r["error"]
            continue
        out["seconds_per_iteration"][mode] = r["seconds_per_iteration"]
        out["memory"][mode] = r.get("memory")
        out.setdefault("precision", {})[mode] = r.get("trainer", {}).get("precision")
    for key in ("fast_over_reference", "target", "target_met", "fast_precision",
                "gflop_per_iteration", "achieved_tflops", "peak_tflops", "fraction_of_peak"):
        if key in report:
            out[key] = report[key]
    return out


def run_training(args, precision: str, overrides: dict) -> dict:
    """``args.train_steps`` steps of the stabilized preset at the profile, in ``precision``."""
    amp = {"fp32": "off"}.get(precision, precision)
    cfg = make_config("stabilized", args.profile, amp=amp, **overrides)
    device = resolve_device(cfg.device)
    with tempfile.TemporaryDirectory() as tmp:
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        t = time.perf_counter()
        trainer = Trainer(cfg, data_dir(args.data), Path(tmp) / "run", progress=False)
        setup_s = time.perf_counter() - t
        summary = trainer.fit()
        losses = trainer.history
    steps = summary["step"]
    full_steps = cfg.total_epochs * trainer.epoch_size
    out = {
        "precision": summary["precision"], "steps": steps,
        "setup_s": round(setup_s, 1), "train_seconds": summary["train_seconds"],
        "seconds_per_step": summary["seconds_per_step"],
        "projected_profile_minutes": round(summary["seconds_per_step"] * full_steps / 60, 1),
        "profile_steps": full_steps,
        "losses_finite": bool(torch.isfinite(losses).all()),
        "loss_means_last_half": {k: round(v, 4) for k, v in zip(
            ("G_AB", "G_BA", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"),
            losses[steps // 2:].mean(0).tolist())},
    }
    if trainer.model.amp.scalers:
        out["fp16_loss_scales"] = {n: s.get_scale() for n, s in trainer.model.amp.scalers.items()}
    if device.type == "cuda":
        out["cuda_peak_allocated_mib"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cuda, cuda:N, cpu")
    p.add_argument("--size", type=int, default=256, help="image size of the speed comparison")
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--speed-steps", type=int, default=20, help="iterations per timed repeat")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--profile", default="colab", choices=sorted(PROFILES))
    p.add_argument("--train-steps", type=int, default=200)
    p.add_argument("--precisions", default="fp16,bf16",
                   help="comma list of amp modes for the training run (bf16 skipped without it)")
    p.add_argument("--tiny", action="store_true", help="32 px, ngf 8, 12 images (CPU tests)")
    p.add_argument("--no-speed", action="store_true", help="skip the reference-vs-fast timing")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--data", default=None, help="selfie2anime folder (default $CYCLEGAN_DATA)")
    p.add_argument("--out", default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    if args.tiny:
        args.size, args.ngf = 32, 8
        args.speed_steps, args.repeats, args.warmup = 1, 1, 1
        args.train_steps = min(args.train_steps, 4)
    todo = plan(args)
    if args.dry_run:
        emit({"benchmark": "gpu_check", "dry_run": True, **todo}, args.out)
        return 0
    device = torch.device(todo["device"])
    report: dict = {"benchmark": "gpu_check", "started": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                        time.gmtime()),
                    "machine": machine(device), "tiny": args.tiny}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        report["gpu"] = {"name": props.name, "memory_gib": round(props.total_memory / 2 ** 30, 1),
                         "bf16": torch.cuda.is_bf16_supported(), "cuda": torch.version.cuda}
    if not args.no_speed:
        report["speed"] = run_speed(todo["speed_command"])
    runs = []
    for precision in dict.fromkeys(todo["precisions"]):
        if precision.startswith("skipped"):
            runs.append({"precision": precision})
            continue
        try:
            runs.append(run_training(args, precision, todo["train_overrides"]))
        except Exception as exc:  # noqa: BLE001  report and go on to the next precision
            runs.append({"precision": precision, "error": f"{type(exc).__name__}: {exc}"})
    report["colab_training"] = {"profile": args.profile, "train_steps": args.train_steps,
                                "runs": runs}
    report["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    emit(report, args.out)
    failed = [r for r in runs if "error" in r] or ("error" in report.get("speed", {}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
