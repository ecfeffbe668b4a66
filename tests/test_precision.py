"""Mixed precision: the amp rule per device, and fp16 training with gradient scaling on CPU.

fp16 autocast and ``torch.amp.GradScaler`` both run on CPU in current torch, so the fp16 path
that Colab's T4 takes (``amp=auto`` on a GPU without bf16) is tested here: it trains, records
fp16, resumes bit-exactly (the scalers' state is in the checkpoint), reads checkpoints written
before the scalers existed, and its losses track fp32.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import twenty_steps

from cyclegan_lib import precision as precision_mod
from cyclegan_lib.checkpoint import atomic_save, latest_checkpoint, safe_load
from cyclegan_lib.config import ConfigError, make_config
from cyclegan_lib.data import DomainImages, ScanReport, UnpairedData
from cyclegan_lib.precision import INIT_SCALE, Precision, resolve_amp
from cyclegan_lib.trainer import Trainer, train

from _cli import run


@pytest.mark.parametrize("device,cuda_bf16,cpu_bf16,expected", [
    ("cuda", True, False, {"auto": "bf16", "bf16": "bf16", "fp16": "fp16", "off": "fp32"}),
    # Colab's free T4 (and V100): no bf16, so auto takes the fp16 tensor-core path.
    ("cuda", False, False, {"auto": "fp16", "bf16": None, "fp16": "fp16", "off": "fp32"}),
    ("cpu", False, True, {"auto": "bf16", "bf16": "bf16", "fp16": "fp16", "off": "fp32"}),
    ("cpu", False, False, {"auto": "fp32", "bf16": "bf16", "fp16": "fp16", "off": "fp32"}),
])
def test_amp_rule_per_device(monkeypatch, device, cuda_bf16, cpu_bf16, expected):
    monkeypatch.setattr(precision_mod, "_cuda_bf16", lambda d: cuda_bf16)
    monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: cpu_bf16)
    for amp, label in expected.items():
        if label is None:
            with pytest.raises(ConfigError, match="amp='bf16'.*no bf16"):
                resolve_amp(amp, device)
        else:
            assert resolve_amp(amp, device) == label, amp
    with pytest.raises(ConfigError, match="amp"):
        resolve_amp("fp8", device)


def test_precision_holder_scalers_only_in_fp16():
    assert Precision("off", "cpu").state_dict() == {} and not Precision("off", "cpu").enabled
    prec = Precision("fp16", "cpu")
    assert prec.enabled and prec.dtype == torch.float16 and set(prec.scalers) == {"G", "D"}
    state = prec.state_dict()
    assert state["G"]["scale"] == INIT_SCALE
    state["G"]["scale"] = 1024.0
    other = Precision("fp16", "cpu")
    other.load_state_dict(state)
    assert other.scalers["G"].get_scale() == 1024.0 and other.scalers["D"].get_scale() == INIT_SCALE
    other.load_state_dict(None)  # a checkpoint without scalers: nothing changes
    assert other.scalers["G"].get_scale() == 1024.0


def test_cli_fp16_smoke_run_trains_and_records_fp16(tmp_path):
    """The issue's command: trains, records fp16, and keeps the scalers in the checkpoint."""
    data = Path(__import__("os").environ.get("CYCLEGAN_DATA", ""))
    if not (data / "trainA").is_dir():
        pytest.skip("CYCLEGAN_DATA not set")
    out = tmp_path / "run"
    res = run("train", "--preset", "stabilized", "--profile", "smoke", "--set", "amp=fp16",
              "--data", data, "--out", out, "--no-progress")
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["precision"] == "fp16" and summary["complete"]
    state = safe_load(latest_checkpoint(out / "checkpoints"))
    assert set(state["scalers"]) == {"G", "D"} and state["scalers"]["G"]["scale"] > 0
    assert json.loads((out / "config.json").read_text())["amp"] == "fp16"


def test_fp16_resume_is_bit_exact(tiny_dataset: Path, tmp_path: Path, one_thread) -> None:
    """Stop an fp16 run at step 3, resume to the end: weights, Adam state, scalers, history
    identical to one uninterrupted run."""
    cfg = dict(pool_size=2, amp="fp16")
    full = Trainer(make_config("stabilized", "smoke", **cfg), tiny_dataset, tmp_path / "full",
                   progress=False)
    full.fit()
    train(make_config("stabilized", "smoke", max_steps=3, **cfg), tiny_dataset, tmp_path / "part",
          progress=False)
    part = Trainer(make_config("stabilized", "smoke", **cfg), tiny_dataset, tmp_path / "part",
                   resume=True, progress=False)
    assert part.step == 3 and part.precision == "fp16"
    part.fit()
    for k, v in full.model.state_dict().items():
        assert torch.equal(part.model.state_dict()[k], v), k
    for name in ("opt_G", "opt_D"):
        a, b = getattr(full.model, name).state_dict(), getattr(part.model, name).state_dict()
        for i, st in a["state"].items():
            assert all(torch.equal(st[k], b["state"][i][k]) for k in st), (name, i)
    assert full.model.amp.state_dict() == part.model.amp.state_dict()
    assert torch.equal(full.history, part.history)
    assert json.loads((tmp_path / "part" / "summary.json").read_text())["precision"] == "fp16"


def test_checkpoint_without_scalers_still_resumes(tiny_dataset: Path, tmp_path: Path,
                                                  one_thread) -> None:
    """Checkpoints written before fp16 existed (no ``scalers`` key) resume, in any precision."""
    train(make_config("stabilized", "smoke", max_steps=4, amp="off"), tiny_dataset,
          tmp_path / "old", progress=False)
    path = latest_checkpoint(tmp_path / "old" / "checkpoints")
    state = safe_load(path)
    assert "scalers" not in state  # fp32 runs write no scaler state, as the old code
    for amp in ("off", "fp16"):
        trainer = Trainer(make_config("stabilized", "smoke", amp=amp), tiny_dataset,
                          tmp_path / "old", resume=True, progress=False)
        assert trainer.step == 4
    trainer.fit()  # fp16 from an fp32 checkpoint: scalers start fresh
    assert trainer.step == 8 and trainer.precision == "fp16"
    # ...and an fp16 checkpoint with its scalers removed (as older code wrote it) resumes too.
    state = safe_load(latest_checkpoint(tmp_path / "old" / "checkpoints"))
    state.pop("scalers")
    atomic_save(state, tmp_path / "bare" / "checkpoints" / path.name)
    trainer = Trainer(make_config("stabilized", "smoke", amp="fp16"), tiny_dataset,
                      tmp_path / "bare", resume=True, progress=False)
    assert trainer.step == 8


def _data(n: int, size: int) -> UnpairedData:
    g = torch.Generator().manual_seed(5)
    images = [torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
              for _ in range(2)]
    return UnpairedData(DomainImages(images[0], ScanReport("A")),
                        DomainImages(images[1], ScanReport("B")))


def test_fp16_training_tracks_fp32(tmp_path, one_thread):
    """fp16 autocast + scaling keeps the training signal: the first step's losses agree to
    rounding and the 20-step mean of every loss term stays within 5% of fp32."""
    data = _data(4, 36)
    runs = {}
    for amp in ("off", "fp16"):
        runs[amp], trainer = twenty_steps(data, amp, tmp_path / amp)
        if amp == "fp16":
            scales = {n: s.get_scale() for n, s in trainer.model.amp.scalers.items()}
            print("fp16 loss scales after 20 steps:", scales)
            # No step was skipped for overflow (a skip halves the scale): the updates are the
            # fp32 run's, in fewer bits.  (torch's default start, 2**16, skipped 4-5 of 20.)
            assert scales == {"G": INIT_SCALE, "D": INIT_SCALE}, scales
    assert torch.isfinite(runs["fp16"]).all()
    assert not torch.equal(runs["fp16"], runs["off"])  # fp16 really ran
    torch.testing.assert_close(runs["fp16"][0], runs["off"][0], rtol=0.02, atol=0.01)
    torch.testing.assert_close(runs["fp16"].mean(0), runs["off"].mean(0), rtol=0.05, atol=0.01)
