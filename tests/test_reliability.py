"""Issue 6: bad data, interrupted runs, untrusted checkpoints, clear errors (one test per bullet).

Every file these tests use is generated in a temporary folder.  Training runs are the
smoke profile on a handful of 40 px images, on one CPU thread.
"""
from __future__ import annotations

import io
import os
import pickle
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import cyclegan_lib.cyclegan as cyclegan_mod
from _cli import CLI, cli_env, run, run_many
from conftest import make_images
from cyclegan_lib.checkpoint import (CheckpointError, atomic_save, checkpoint_name,
                                     list_checkpoints, safe_load)
from cyclegan_lib.cli import main
from cyclegan_lib.config import make_config
from cyclegan_lib.data import scan_folder
from cyclegan_lib.models import load_official_generator
from cyclegan_lib.runs import load_generator
from cyclegan_lib.trainer import Trainer, TrainingError, train




def _rgb(size: int = 40, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


# Every kind of bad file the issue lists, and what must happen to it.
SKIPPED = {"zero.jpg": "empty", "truncated.jpg": "truncated", "text.jpg": "not an image",
           "small.jpg": "too small", "notes.txt": "not an image file", "Thumbs.db": "not an image file",
           ".DS_Store": "not an image file"}
CONVERTED = {"grey.jpg": "L", "cmyk.jpg": "CMYK", "rgba.png": "RGBA", "palette.png": "P",
             "grey16.png": "16-bit"}


def _write_bad_files(folder: Path) -> np.ndarray:
    """The convertible and unusable files next to the good ones; returns their source pixels."""
    rgb = _rgb()
    (folder / "zero.jpg").write_bytes(b"")
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    (folder / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (folder / "text.jpg").write_text("this is a text file with a .jpg name\n")
    Image.fromarray(rgb[:20, :20]).save(folder / "small.jpg")  # below the 32 px crop
    (folder / "notes.txt").write_text("not an image")
    (folder / "Thumbs.db").write_bytes(b"\x00\x01\x02")
    (folder / ".DS_Store").write_bytes(b"\x00")
    (folder / "subfolder").mkdir()
    Image.fromarray(rgb).convert("L").save(folder / "grey.jpg", quality=95)
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    alpha = np.full((40, 40, 1), 128, np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha], axis=2), "RGBA").save(folder / "rgba.png")
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(folder / "grey16.png")
    assert Image.open(folder / "grey16.png").mode.startswith("I;16")
    return rgb


# -- bad images --------------------------------------------------------------------------------
def test_bad_images_are_skipped_reported_and_convertible_ones_used(tmp_path: Path,
                                                                    one_thread) -> None:
    root = tmp_path / "data"
    make_images(root / "trainA", 4, seed=1)
    make_images(root / "trainB", 6, seed=2)
    rgb = _write_bad_files(root / "trainA")

    # What the scan decides, file by file, and the pixels of the converted ones.
    images, report = scan_folder(root / "trainA", 40, min_size=32)
    skipped = dict(report.skipped)
    assert set(skipped) == set(SKIPPED)
    for name, why in SKIPPED.items():
        assert why in skipped[name], (name, skipped[name])
    assert {name for name, _ in report.converted} == set(CONVERTED)
    for name, mode in CONVERTED.items():
        assert mode in dict(report.converted)[name]
    assert set(report.used) == set(CONVERTED) | {f"img_{i:03d}.jpg" for i in range(4)}
    pixels = {name: images[report.used.index(name)].permute(1, 2, 0).numpy().astype(int)
              for name in CONVERTED}
    assert np.array_equal(pixels["grey16.png"], np.repeat(rgb[..., :1].astype(int), 3, axis=2))
    grey = pixels["grey.jpg"]
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    over_white = rgb.astype(float) * 128 / 255 + 255 * 127 / 255
    assert np.abs(pixels["rgba.png"] - over_white).max() <= 1
    assert np.abs(pixels["cmyk.jpg"] - rgb.astype(int)).mean() < 8  # a lossy round trip
    assert np.abs(pixels["palette.png"] - rgb.astype(int)).mean() < 40  # quantised to 256 colours

    # Training goes on with the rest, and says what it left out, in the log and the run dir.
    cfg = make_config("stabilized", "smoke", max_steps=2)
    trainer = Trainer(cfg, root, tmp_path / "run", progress=False)
    assert len(trainer.data.a) == 9 and len(trainer.data.b) == 6
    summary = trainer.fit()
    assert summary["step"] == 2
    data_report = (tmp_path / "run" / "data_report.txt").read_text()
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "trainA: 9 images used, 5 converted, 7 skipped" in data_report
    assert "trainA: 9 images used, 5 converted, 7 skipped" in log
    for name in SKIPPED:
        assert f"skipped   {name}: {skipped[name]}" in data_report
        assert f"skipped {name}: {skipped[name]}" in log
    for name in CONVERTED:
        assert f"converted {name}" in data_report


# -- empty domain / missing folder ---------------------------------------------------------------
def test_empty_domain_or_missing_folder_is_a_one_line_error(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    (empty / "trainA").mkdir(parents=True)
    (empty / "trainA" / "zero.jpg").write_bytes(b"")
    (empty / "trainA" / "readme.txt").write_text("no images here")
    make_images(empty / "trainB", 3)
    no_b = tmp_path / "no_b"
    make_images(no_b / "trainA", 3)
    out = tmp_path / "out"
    base = ["train", "--profile", "smoke", "--out", str(out), "--no-progress", "--data"]
    # Through the real console script once (no traceback reaches the user)...
    line = run(*base, empty).one_line_error()
    for word in ("no usable images", str(empty / "trainA"), "2 files skipped"):
        assert word in line, (word, line)
    # ...and in-process for the missing folders (the same handler, without the import cost).
    for data, folder in ((no_b, no_b / "trainB"), (tmp_path / "absent", tmp_path / "absent")):
        assert main([*base, str(data)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "data folder not found" in err and str(folder) in err, err
    assert not out.exists()


# -- exact resume after SIGKILL ------------------------------------------------------------------
RESUME_STEPS = 12  # 2 epochs of 6: the lr decays in the second, the 3-image buffer is full by step 3


def _train_args(data: Path, out: Path) -> list[str | Path]:
    return ["train", "--preset", "stabilized", "--profile", "smoke", "--data", data, "--out", out,
            "--seed", "3", "--save-every", "1", "--threads", "1", "--no-progress",
            "--set", "pool_size=3", "--set", "epoch_size=6"]


def _final_state(run_dir: Path) -> dict:
    steps = list_checkpoints(run_dir / "checkpoints")
    assert steps and steps[-1][0] == RESUME_STEPS, steps
    return safe_load(steps[-1][1])


def test_sigkill_at_a_random_moment_then_resume_is_bit_exact(tiny_dataset: Path,
                                                             tmp_path: Path) -> None:
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    target = rng.randint(2, RESUME_STEPS - 4)  # the kill comes once this checkpoint exists,
    fraction = rng.random()                    # ...then this fraction of a step later
    where = f"(random seed {seed}: kill {fraction:.2f} steps after checkpoint {target})"

    reference = subprocess.Popen([str(CLI), *map(str, _train_args(tiny_dataset, tmp_path / "ref"))],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=cli_env())
    killed = subprocess.Popen([str(CLI), *map(str, _train_args(tiny_dataset, tmp_path / "run"))],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=cli_env())
    seen: dict[int, float] = {}  # step -> when its checkpoint appeared
    deadline = time.monotonic() + 240
    while killed.poll() is None and time.monotonic() < deadline and target not in seen:
        for step, _ in list_checkpoints(tmp_path / "run" / "checkpoints"):
            seen.setdefault(step, time.monotonic())
        time.sleep(0.002)
    assert target in seen, f"checkpoint {target} never appeared (exit {killed.poll()}) {where}"
    step_time = (seen[target] - min(seen.values())) / max(1, target - min(seen))
    time.sleep(fraction * step_time)  # anywhere in the next step, its checkpoint write included
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, f"the run ended before the kill {where}"
    at_kill = [s for s, _ in list_checkpoints(tmp_path / "run" / "checkpoints")]
    assert at_kill and at_kill[-1] < RESUME_STEPS, (at_kill, where)

    resumed = run(*_train_args(tiny_dataset, tmp_path / "run"), "--resume")
    assert resumed.returncode == 0, (resumed.stderr, where)
    out, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err
    log = (tmp_path / "run" / "log.txt").read_text()
    assert f"resuming from {checkpoint_name(at_kill[-1])} at step {at_kill[-1]}" in log, where

    ref, got = _final_state(tmp_path / "ref"), _final_state(tmp_path / "run")
    for net in ("G_AB", "G_BA", "D_A", "D_B"):
        for key, value in ref["models"][net].items():
            assert torch.equal(got["models"][net][key], value), (net, key, where)
    assert len(ref["buffers"]["A"]["images"]) == 3  # the history buffer was full and in use
    for a, b in zip(ref["buffers"]["A"]["images"], got["buffers"]["A"]["images"]):
        assert torch.equal(a, b), where
    assert torch.equal(ref["history"], got["history"]), where
    assert (tmp_path / "ref" / "history.csv").read_text() == \
        (tmp_path / "run" / "history.csv").read_text()


def test_damaged_newest_checkpoint_falls_back_to_the_previous(tiny_dataset: Path, tmp_path: Path,
                                                              one_thread) -> None:
    """A newest file cut short (a partial copy or sync) is set aside; the run resumes before it."""
    cfg = make_config("stabilized", "smoke", save_every=2, keep_checkpoints=3, pool_size=2)
    full = Trainer(cfg, tiny_dataset, tmp_path / "full", progress=False)
    full.fit()
    train(make_config("stabilized", "smoke", save_every=2, keep_checkpoints=3, pool_size=2,
                      max_steps=6), tiny_dataset, tmp_path / "run", progress=False)
    newest = tmp_path / "run" / "checkpoints" / checkpoint_name(6)
    newest.write_bytes(newest.read_bytes()[:2000])
    part = Trainer(cfg, tiny_dataset, tmp_path / "run", resume=True, progress=False)
    assert part.step == 4
    part.fit()
    assert (tmp_path / "run" / "checkpoints" / (checkpoint_name(6) + ".damaged")).is_file()
    assert "skipped damaged checkpoint step_00000006.pt" in (tmp_path / "run" / "log.txt").read_text()
    for key, value in full.model.state_dict().items():
        assert torch.equal(part.model.state_dict()[key], value), key
    # nothing readable at all: a one-line error, not a fresh start over the old run
    for _, path in list_checkpoints(tmp_path / "run" / "checkpoints"):
        path.write_bytes(b"")
    with pytest.raises(TrainingError, match="no readable checkpoint") as info:
        Trainer(cfg, tiny_dataset, tmp_path / "run", resume=True, progress=False)
    assert "\n" not in str(info.value)


# -- atomic checkpoints --------------------------------------------------------------------------
def test_crash_during_a_checkpoint_write_keeps_the_previous_one(tiny_dataset: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                one_thread) -> None:
    run_dir = tmp_path / "run"
    cfg = make_config("stabilized", "smoke", save_every=1, keep_checkpoints=3)
    train(make_config("stabilized", "smoke", save_every=1, keep_checkpoints=3, max_steps=5),
          tiny_dataset, run_dir, progress=False)
    folder = run_dir / "checkpoints"
    assert [s for s, _ in list_checkpoints(folder)] == [3, 4, 5]  # the newest K=3 are kept
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    real_save = torch.save

    def crash_midway(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 3])  # a third is on disk...
        raise OSError(28, "No space left on device")          # ...then the disk is full

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="No space left"):
        train(cfg, tiny_dataset, run_dir, resume=True, progress=False)
    # overwriting an existing file fails the same way without touching it
    with pytest.raises(OSError):
        atomic_save({"step": 99}, folder / checkpoint_name(5))
    monkeypatch.undo()

    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert after == before  # no step 6, no temp file, the old ones byte for byte
    assert safe_load(folder / checkpoint_name(5))["step"] == 5
    # and the run goes on from there
    summary = train(cfg, tiny_dataset, run_dir, resume=True, progress=False)
    assert summary["step"] == 8
    assert [s for s, _ in list_checkpoints(folder)] == [6, 7, 8]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# -- untrusted files ---------------------------------------------------------------------------
class _Payload:
    """Unpickling this creates a folder: the stand-in for code a malicious file would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_checkpoint_with_a_pickle_payload_is_refused_and_never_run(tmp_path: Path,
                                                                   tiny_dataset: Path) -> None:
    # The payload is live: plain unpickling would run it.
    probe = tmp_path / "probe_marker"
    pickle.loads(pickle.dumps(_Payload(probe)))
    assert probe.is_dir()

    marker = tmp_path / "MARKER"
    cfg = make_config("stabilized", "smoke")
    evil = {"format": "cyclegan_lib/1", "config": cfg.to_dict(), "step": 1,
            "models": {"G_AB": {"model.1.weight": torch.zeros(1)}}, "extra": _Payload(marker)}
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    ckpt = run_dir / "checkpoints" / checkpoint_name(1)
    torch.save(evil, ckpt)
    zoo = tmp_path / "latest_net_G.pth"
    torch.save({"model.1.weight": torch.zeros(1), "x": _Payload(marker)}, zoo)

    for load in (lambda: safe_load(ckpt), lambda: load_generator(run_dir),
                 lambda: load_generator(ckpt, "BtoA"), lambda: load_official_generator(zoo)):
        with pytest.raises(CheckpointError, match="refused to load") as info:
            load()
        assert "\n" not in str(info.value) and "nothing of it was run" in str(info.value)
    res = run("translate", "--checkpoint", run_dir, tiny_dataset / "testA", "--out",
              tmp_path / "out")
    line = res.one_line_error()
    assert res.returncode == 2 and "refused to load" in line
    # resuming from it is refused too (the file is set aside, nothing of it is used)
    with pytest.raises(TrainingError, match="no readable checkpoint.*refused to load"):
        Trainer(cfg, tiny_dataset, run_dir, resume=True, progress=False)
    assert not marker.exists()  # nothing of the payload ran, in this process or the CLI's


# -- numerical trouble -------------------------------------------------------------------------
def test_non_finite_loss_stops_naming_step_and_term(tiny_dataset: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture,
                                                    one_thread) -> None:
    calls = {"n": 0}
    real = cyclegan_mod.cycle_loss

    def nan_at_step_5(reconstructed, original, weight=10.0):
        calls["n"] += 1  # two calls per step: cycle_A then cycle_B
        loss = real(reconstructed, original, weight)
        return loss * float("nan") if calls["n"] == 9 else loss

    monkeypatch.setattr(cyclegan_mod, "cycle_loss", nan_at_step_5)
    run_dir = tmp_path / "run"
    code = main(["train", "--profile", "smoke", "--data", str(tiny_dataset), "--out", str(run_dir),
                 "--save-every", "2", "--set", "log_every=3", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    for words in ("non-finite loss cycle_A=nan", "at step 5", "step_00000004.pt is kept"):
        assert words in err, err
    assert "stopped: non-finite loss cycle_A=nan at step 5" in (run_dir / "log.txt").read_text()
    assert [s for s, _ in list_checkpoints(run_dir / "checkpoints")] == [2, 4]
    state = safe_load(run_dir / "checkpoints" / checkpoint_name(4))
    assert all(torch.isfinite(v).all() for net in state["models"].values() for v in net.values())
    assert torch.isfinite(state["history"]).all() and len(state["history"]) == 4
    assert not (run_dir / "summary.json").exists()


# -- configuration mistakes -----------------------------------------------------------------------
@pytest.mark.parametrize("args,words", [
    (["--preset", "stabilised"], ["unknown preset", "stabilised"]),
    (["--profile", "gpu"], ["unknown profile", "gpu"]),
    (["--set", "max_steps=-3"], ["max_steps", "-3"]),
    (["--set", "n_epochs=-1"], ["n_epochs", "-1"]),
    (["--set", "load_size=30"], ["load_size", "image_size=32", "larger"]),
    (["--set", "image_size=64", "--set", "load_size=48"], ["load_size", "image_size=64"]),
    (["--device", "gpu"], ["device", "gpu"]),
    (["--device", "cuda:1"], ["device", "cuda:1"]),
])
def test_config_mistakes_fail_before_any_data_is_loaded(args: list[str], words: list[str],
                                                        tiny_dataset: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    if "cuda:1" in args and torch.cuda.device_count() > 1:
        pytest.skip("cuda:1 exists on this machine")

    def no_data(*a, **k):
        raise AssertionError("data was loaded before the configuration was checked")

    monkeypatch.setattr("cyclegan_lib.data.scan_folder", no_data)
    monkeypatch.setattr("cyclegan_lib.trainer.load_unpaired", no_data)
    out = tmp_path / "out"
    code = main(["train", "--profile", "smoke", "--data", str(tiny_dataset), "--out", str(out),
                 *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists()


def test_negative_steps_on_the_command_line_fail_in_the_parser(tmp_path: Path) -> None:
    """Through the real console script: argparse's one line, exit 2, no traceback."""
    results = run_many([
        ["train", "--out", tmp_path / "o", "--max-steps", "-5"],
        ["train", "--out", tmp_path / "o", "--save-every", "0"],
        ["train", "--out", tmp_path / "o", "--keep", "two"],
    ])
    for res, words in zip(results, (["--max-steps", "-5"], ["--save-every", "0"],
                                    ["--keep", "two"])):
        line = res.one_line_error()
        assert res.returncode == 2
        for word in words:
            assert word in line, line
    assert not (tmp_path / "o").exists()
