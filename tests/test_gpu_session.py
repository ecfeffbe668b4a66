"""The lent-GPU path at a tiny size on the CPU: scripts/device_pack.py makes the data small
enough to travel; scripts/gpu_session.py trains the 256-px run (scripts/gpu_train_256.py: sized
to its budget, generators in shards under the cap, the reference-vs-fast benchmark) and the
64-px variants side by side, measures and picks one, and leaves in OUT no more than the device
tool returns (8 files, 16 MiB each, 64 MiB in all, two folders deep)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from PIL import Image

from conftest import REPO, make_images
from cyclegan_lib.config import make_config
from cyclegan_lib.pretrained import is_pretrained, load_network


def test_pack_then_session_at_a_tiny_size_on_cpu(tmp_path: Path, anime_cascade: Path) -> None:
    data = tmp_path / "data"
    for split, n in (("train", 8), ("test", 4)):
        make_images(data / f"{split}A", n, size=80, seed=1, tint=-40)
        make_images(data / f"{split}B", n, size=80, seed=2, tint=40)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CYCLEGAN_CACHE": str(tmp_path / "cache")}
    pack = tmp_path / "pack"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "device_pack.py"), "--data", str(data), "--out",
         str(pack), "--n256", "6", "--cascade", str(anime_cascade), "--no-wheel"],
        capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MiB (limit 64)" in proc.stdout
    load = make_config("stabilized", "long").resolved_load_size  # 72 px
    small = sorted((pack / "data64" / "trainB").iterdir())
    assert len(small) == 8 and Image.open(small[0]).size == (load, load)
    assert len(list((pack / "data64" / "testA").iterdir())) == 4
    assert len(list((pack / "data256" / "trainA").iterdir())) == 6

    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gpu_session.py"), "--data64",
         str(pack / "data64"), "--data256", str(pack / "data256"), "--out", str(out),
         "--device", "cpu", "--tiny", "--minutes64", "0.02", "--minutes256", "0.01",
         "--probe-steps", "4", "--every", "4",
         "--variant", "base:", "--variant", "fast:lr=0.0004"],
        capture_output=True, text=True, timeout=900, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.rindex("\n{") + 1:])
    assert report["picked"] in ("base", "fast") and report["run256_exit_code"] == 0
    for name in ("base", "fast"):
        run = report["runs64"][name]
        # sized to the budget in whole epochs of 4; max_minutes may stop it sooner
        assert run["total_steps"] >= 8 and run["total_steps"] % 4 == 0 and run["step"] >= 1
        assert 0 <= run["last3_ema"]["anime"] <= 1

    files = [f for f in out.rglob("*") if f.is_file()]
    assert len(files) <= 8 and all(len(f.relative_to(out).parts) <= 3 for f in files)
    assert all(f.stat().st_size <= 16 * 2**20 for f in files)
    shards = list((out / "stabilized_256").glob("*.safetensors"))
    assert len(shards) == 4 and all(f.stat().st_size <= 0.3 * 2**20 + 16384 for f in shards)
    with tarfile.open(out / "records.tar.gz") as tar:
        tar.extractall(tmp_path / "back", filter="data")
    records = tmp_path / "back" / "records"
    assert json.loads((records / "session.json").read_text())["picked"] == report["picked"]
    summary = json.loads((records / "stabilized_256" / "summary.json").read_text())
    assert summary["total_steps"] >= 10 and summary["total_steps"] % 5 == 0  # sized to budget
    bench = json.loads((records / "stabilized_256" / "train_step_bench.json").read_text())
    assert {"reference", "fast"} <= set(bench["modes"]) and bench["fast_over_reference"] > 0
    for folder in ("gpu64", "stabilized_256"):  # shards + records = a published folder again
        for f in (out / folder).iterdir():
            (records / folder / f.name).write_bytes(f.read_bytes())
        assert is_pretrained(records / folder) and load_network(records / folder, "G_BA")
    rates = json.loads((records / "runs64" / report["picked"] / "rates.json").read_text())
    assert rates["rows"] and {"ema", "raw"} == {r["weights"] for r in rates["rows"]}
