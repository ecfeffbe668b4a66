"""scripts/gpu_train_256.py at a tiny size on the CPU: sizes the run to the budget, publishes
the generators in shards under the cap, and writes the reference-vs-fast benchmark JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, make_images
from cyclegan_lib.pretrained import is_pretrained, load_network


def test_gpu_script_runs_at_a_tiny_size_on_cpu(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for split, n in (("train", 8), ("test", 4)):
        make_images(data / f"{split}A", n, seed=1, tint=-40)
        make_images(data / f"{split}B", n, seed=2, tint=40)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CYCLEGAN_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_train_256.py"), "--data", str(data),
         "--runs", str(tmp_path / "runs"), "--out", str(out), "--size", "32", "--ngf", "8",
         "--minutes", "0.01", "--epoch-size", "5", "--device", "cpu", "--max-shard-mb", "0.05",
         "--bench-steps", "1", "--bench-repeats", "1"],
        capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert report["steps"] >= 10 and report["steps"] % 5 == 0
    assert is_pretrained(out)
    files = list(out.glob("G_AB-*-of-*.safetensors"))
    assert len(files) > 1
    assert all(f.stat().st_size <= 0.05 * 2**20 + 16384 for f in out.glob("*.safetensors"))
    assert load_network(out, "G_BA").state_dict()
    bench = json.loads((out / "train_step_bench.json").read_text())
    assert {"reference", "fast"} <= set(bench["modes"]) and bench["fast_over_reference"] > 0
