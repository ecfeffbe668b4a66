"""The ``cyclegan-anime`` command line, run as a subprocess exactly as a user types it."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from PIL import Image

from _cli import run, run_many
from cyclegan_lib.checkpoint import safe_load
from cyclegan_lib.cli import build_parser, main
from cyclegan_lib.config import PRESETS, PROFILES


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """The issue's smoke command on the real data (one CPU thread: the cores are shared)."""
    out = tmp_path_factory.mktemp("cli") / "run"
    res = run("train", "--preset", "stabilized", "--profile", "smoke", "--data", data_root,
              "--out", out, "--threads", "1", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "step 8/8" in res.stdout
    return out


def test_train_writes_checkpoint_and_history(cli_run: Path) -> None:
    ckpts = sorted(p.name for p in (cli_run / "checkpoints").iterdir())
    assert ckpts == ["step_00000004.pt", "step_00000008.pt"]
    state = safe_load(cli_run / "checkpoints" / ckpts[-1])
    assert state["step"] == 8 and state["config"]["image_size"] == 32
    with open(cli_run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and all(float(r["cycle_A"]) > 0 for r in rows)
    report = (cli_run / "data_report.txt").read_text()
    assert "trainA: 12 images used" in report and "trainB: 12 images used" in report


def test_translate_from_the_run(cli_run: Path, data_root: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture) -> None:
    inputs = sorted((data_root / "testA").iterdir())[:2]
    res = run("translate", "--checkpoint", cli_run, *inputs, "--out", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert "wrote 2 image(s)" in res.stdout
    for src in inputs:
        out = tmp_path / "out" / f"{src.stem}_anime.png"
        with Image.open(out) as im:
            assert im.size == (32, 32) and im.mode == "RGB"
    # A checkpoint file, the other direction, a folder with a stray file, another size
    # (in-process: the console script itself is covered above).
    ckpt = cli_run / "checkpoints" / "step_00000008.pt"
    folder = tmp_path / "in"
    folder.mkdir()
    for src in sorted((data_root / "testB").iterdir())[:2]:
        (folder / src.name).symlink_to(src)
    (folder / "notes.txt").write_text("not an image")
    assert main(["translate", "--checkpoint", str(ckpt), "--direction", "BtoA", str(folder),
                 "--out", str(tmp_path / "back"), "--size", "64"]) == 0
    assert "wrote 2 image(s)" in capsys.readouterr().out
    outs = sorted((tmp_path / "back").glob("*_human.png"))
    assert len(outs) == 2
    with Image.open(outs[0]) as im:
        assert im.size == (64, 64)


def test_presets_lists_presets_and_profiles() -> None:
    res = run("presets")
    assert res.returncode == 0
    for name in [*PRESETS, *PROFILES, "auto"]:
        assert name in res.stdout
    assert "n_blocks=3" in res.stdout and "image_size=32" in res.stdout


def test_user_mistakes_give_one_line(tmp_path: Path, tiny_dataset: Path) -> None:
    """Through the console script: one line on stderr, exit 2, no traceback, nothing started."""
    out = tmp_path / "never"
    base = ["train", "--profile", "smoke", "--out", out, "--data", tiny_dataset]
    cases = [
        (["train", "--profile", "smoke", "--out", out, "--data", tmp_path / "missing"],
         ["data folder not found", str(tmp_path / "missing")]),
        ([*base, "--preset", "superb"], ["unknown preset", "superb"]),
        ([*base, "--max-steps", "ten"], ["--max-steps", "ten"]),
        ([*base, "--device", "tpu"], ["device", "tpu"]),
    ]
    results = run_many([c for c, _ in cases])
    for (args, words), res in zip(cases, results):
        line = res.one_line_error()
        assert res.returncode == 2
        for word in words:
            assert word in line, (args, line)
    assert not out.exists()


@pytest.mark.parametrize("argv,words", [
    (["translate", "--checkpoint", "{tmp}/nothing", "{data}/testA", "--out", "{tmp}/t"],
     ["checkpoint not found", "nothing"]),
    (["translate", "--checkpoint", "{tmp}", "{tmp}/no-such.jpg", "--out", "{tmp}/t"],
     ["input not found", "no-such.jpg"]),
    (["train", "--profile", "smoke", "--out", "{tmp}/r", "--device", "cuda"],
     ["CUDA is not available"]),
    (["train", "--profile", "smoke", "--out", "{tmp}/r", "--seed", "-1"], ["--seed", "-1"]),
])
def test_more_mistakes_in_process(argv: list[str], words: list[str], tmp_path: Path,
                                  tiny_dataset: Path, capsys: pytest.CaptureFixture) -> None:
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    argv = [a.format(tmp=tmp_path, data=tiny_dataset) for a in argv]
    try:
        code = main([*argv, *(["--data", str(tiny_dataset)] if argv[0] == "train" else [])])
    except SystemExit as exc:  # argparse's own one-line errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    assert not (tmp_path / "r").exists()


def test_set_overrides_reach_the_config(tmp_path: Path, tiny_dataset: Path, monkeypatch) -> None:
    """``--set`` is parsed by type and applied (in-process: the training itself is mocked)."""
    seen = {}

    def fake_train(cfg, data, out, resume=False, progress=True):
        seen["cfg"] = cfg
        return {"step": 0, "total_steps": 1, "train_seconds": 0.0}

    monkeypatch.setattr("cyclegan_lib.trainer.train", fake_train)
    assert main(["train", "--profile", "smoke", "--data", str(tiny_dataset), "--out",
                 str(tmp_path / "r"), "--set", "pool_size=0", "--set", "lr=1e-3",
                 "--set", "fast=false", "--set", "epoch_size=none", "--seed", "4"]) == 0
    cfg = seen["cfg"]
    assert (cfg.pool_size, cfg.lr, cfg.fast, cfg.epoch_size, cfg.seed) == (0, 1e-3, False, None, 4)


@pytest.mark.parametrize("setting,words", [
    ("pool_size=many", ["pool_size", "int"]),
    ("colour=red", ["colour"]),
    ("preset=naive", ["--preset"]),
    ("lr", ["KEY=VALUE"]),
    ("image_size=30", ["image_size"]),
])
def test_bad_set_is_one_line(setting: str, words: list[str], tmp_path: Path, tiny_dataset: Path,
                             capsys: pytest.CaptureFixture) -> None:
    code = main(["train", "--profile", "smoke", "--data", str(tiny_dataset), "--out",
                 str(tmp_path / "r"), "--set", setting])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    for word in words:
        assert word in err
    assert not (tmp_path / "r").exists()


def test_parser_knows_the_commands() -> None:
    parser = build_parser()
    args = parser.parse_args(["train", "--out", "x", "--max-steps", "5", "--resume"])
    assert (args.command, args.max_steps, args.resume, args.preset) == ("train", 5, True,
                                                                       "stabilized")
    for bad in (["train", "--out", "x", "--save-every", "0"],
                ["translate", "--checkpoint", "r", "in.jpg", "--out", "o", "--size", "30"],
                ["translate", "--checkpoint", "r", "in.jpg", "--out", "o", "--size", "2"]):
        with pytest.raises(SystemExit) as info:
            parser.parse_args(bad)
        assert info.value.code == 2
    assert parser.parse_args(["translate", "--checkpoint", "r", "x", "--out", "o",
                              "--size", "256"]).size == 256


def test_disk_full_during_training_is_one_line(tiny_dataset: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    """An OSError while writing the run (full disk, read-only --out) is a message, not a trace."""
    def full_disk(obj, f, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    before = torch.get_num_threads()
    try:
        code = main(["train", "--profile", "smoke", "--data", str(tiny_dataset), "--out",
                     str(tmp_path / "run"), "--no-progress", "--threads", "1"])
    finally:
        torch.set_num_threads(before)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "No space left on device" in err, err
    assert list((tmp_path / "run" / "checkpoints").iterdir()) == []
