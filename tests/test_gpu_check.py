"""benchmarks/gpu_check.py, the one-command GPU check, runs end to end at a tiny size on CPU."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from _cli import cli_env

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=cli_env(), cwd=REPO, timeout=1800)


def test_dry_run_prints_the_plan():
    proc = _run("--dry-run", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["dry_run"] and plan["profile"] == "colab"
    assert plan["train_overrides"]["max_steps"] == 200
    cmd = plan["speed_command"]
    assert cmd[1].endswith("train_step.py") and "reference,fast" in cmd
    assert cmd[cmd.index("--size") + 1] == "256" and cmd[cmd.index("--ngf") + 1] == "64"
    assert plan["precisions"][0] == "fp16"


def test_tiny_run_on_cpu_reports_speed_and_both_precisions(tiny_dataset, tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = _run("--tiny", "--device", "cpu", "--data", str(tiny_dataset), "--out", str(out))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    report = json.loads(out.read_text())
    speed = report["speed"]
    assert set(speed["seconds_per_iteration"]) == {"reference", "fast"}, speed
    assert speed["precision"]["reference"] == "fp32"
    runs = {r["precision"]: r for r in report["colab_training"]["runs"]}
    assert set(runs) == {"fp16", "bf16"}
    for r in runs.values():
        assert r["steps"] == 4 and r["losses_finite"] and r["seconds_per_step"] > 0
        assert r["projected_profile_minutes"] > 0
    assert set(runs["fp16"]["fp16_loss_scales"]) == {"G", "D"}
