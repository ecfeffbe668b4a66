"""Published models: fp16 safetensors export, shards, loading, and their use by chapters and CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cyclegan_lib.config import ConfigError, make_config
from cyclegan_lib.pretrained import export_run, is_pretrained, load_network, weight_files
from cyclegan_lib.runs import (find_run, load_checkpoint_config, load_generator, read_history,
                             run_is_complete, run_until)
from cyclegan_lib.trainer import Trainer, ensure_run

from _cli import run as run_cli
from conftest import make_images


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    for split, n in (("train", 8), ("test", 4)):
        make_images(root / f"{split}A", n, seed=1, tint=-40)
        make_images(root / f"{split}B", n, seed=2, tint=40)
    return root


@pytest.fixture(scope="module")
def ema_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Trainer]:
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("ema") / "run"
    trainer = Trainer(make_config("stabilized", "smoke", ema_decay=0.5), tiny_data, run,
                      progress=False)
    trainer.fit()
    return run, trainer


def test_export_writes_fp16_averaged_generators_and_records(ema_run, tmp_path: Path) -> None:
    run, trainer = ema_run
    out = export_run(run, tmp_path / "stabilized", discriminators=True, code_commit="abc123")
    assert is_pretrained(out)
    for name in ("G_AB", "G_BA", "D_A", "D_B"):
        state = load_file(str(out / f"{name}.safetensors"))
        assert all(v.dtype == torch.float16 for v in state.values())
    g = load_network(out, "G_AB")
    for k, v in g.state_dict().items():  # the averaged weights, rounded to fp16
        expected = trainer.model.ema["G_AB"].state_dict()[k]
        assert torch.equal(v, expected.half().float()), k
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == trainer.step and summary["generators"] == "ema"
    assert summary["code_commit"] == "abc123" and summary["precision"] in ("fp32", "bf16")
    assert (out / "history.csv").read_text() == (run / "history.csv").read_text()
    assert json.loads((out / "config.json").read_text())["ema_decay"] == 0.5
    # the trainer's loaders accept a published folder like a run directory
    assert load_checkpoint_config(out)["image_size"] == 32
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(load_generator(out, "BtoA")(x), load_network(out, "G_BA")(x))


def test_large_networks_are_split_into_shards_that_load_as_one(ema_run, tmp_path: Path) -> None:
    run, _ = ema_run
    out = export_run(run, tmp_path / "sharded", max_shard_mb=0.05)
    shards = weight_files(out, "G_AB")
    assert len(shards) > 1 and all(p.stat().st_size < 0.05 * 2**20 + 4096 for p in shards)
    assert all("-of-" in p.name for p in shards)
    whole = export_run(run, tmp_path / "whole")
    a, b = load_network(out, "G_AB"), load_network(whole, "G_AB")
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])


def test_chapters_use_a_published_folder_of_their_profile(ema_run, tmp_path: Path) -> None:
    run, _ = ema_run
    export_run(run, tmp_path / "pretrained" / "stabilized")
    found = ensure_run("blocks9", "smoke", tmp_path / "no-data", tmp_path / "runs",
                       pretrained_dir=tmp_path / "pretrained")
    assert found == tmp_path / "pretrained" / "stabilized"   # no training: there is no data


def test_a_published_folder_of_another_profile_is_found_by_its_config(ema_run, tmp_path: Path
                                                                     ) -> None:
    """pretrained/stabilized may hold a longer profile; pretrained/stabilized_<x> the chapter's."""
    run, _ = ema_run
    longer = export_run(run, tmp_path / "pretrained" / "stabilized")
    cfg = json.loads((longer / "config.json").read_text())
    (longer / "config.json").write_text(json.dumps({**cfg, "profile": "long"}))
    export_run(run, tmp_path / "pretrained" / "stabilized_smoke")
    find = lambda profile: find_run("stabilized", profile, tmp_path / "runs",
                                    pretrained_dir=tmp_path / "pretrained")[0]
    assert find("smoke") == tmp_path / "pretrained" / "stabilized_smoke"
    assert find("long") == longer
    assert find("cpu") == tmp_path / "runs" / "cpu" / "stabilized"   # neither: train it


def test_translate_and_evaluate_from_a_published_folder(ema_run, tmp_path: Path,
                                                         tiny_data: Path) -> None:
    run, _ = ema_run
    out = export_run(run, tmp_path / "stabilized")
    photo = next((tiny_data / "testA").iterdir())
    result = run_cli("translate", "--checkpoint", out, photo, "--out", tmp_path / "tr")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "tr").glob("*_anime.png"))) == 1


def test_a_run_viewed_at_an_earlier_step(ema_run, tmp_path: Path) -> None:
    """run_until: the run as it stood at a checkpoint, for comparisons at equal budgets."""
    run, _ = ema_run
    view = run_until(run, 4, tmp_path / "at4")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    early = load_generator(run / "checkpoints" / "step_00000004.pt", "AtoB")
    assert torch.equal(load_generator(view, "AtoB")(x), early(x))
    assert not torch.equal(load_generator(run, "AtoB")(x), early(x))
    assert read_history(view)["step"][-1] == 4 and read_history(run)["step"][-1] == 8
    assert not run_is_complete(view)
    with pytest.raises(FileNotFoundError, match="step 5"):
        run_until(run, 5, tmp_path / "at5")


def test_export_under_a_profile_checks_that_the_settings_match(ema_run, smoke_run: Path,
                                                              tmp_path: Path) -> None:
    cfg = json.loads((export_run(smoke_run, tmp_path / "a", profile="smoke") / "config.json"
                      ).read_text())
    assert cfg["profile"] == "smoke"
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["profile"] == "smoke"
    with pytest.raises(ConfigError, match="profile 'cpu'.*image_size"):
        export_run(smoke_run, tmp_path / "b", profile="cpu")
    with pytest.raises(ConfigError, match="ema_decay"):   # trained with ema_decay=0.5
        export_run(ema_run[0], tmp_path / "c", profile="smoke")


REPO = Path(__file__).resolve().parent.parent


def test_published_models_fit_their_size_caps_and_load() -> None:
    """pretrained/ holds at most 64 MiB (a 256-px model in stabilized_256/ has its own 48)."""
    root = REPO / "pretrained"
    folders = [p for p in sorted(root.iterdir()) if is_pretrained(p)]
    assert folders, "no published models"
    size = lambda paths: sum(p.stat().st_size for p in paths if p.is_file()
                             and p.name != "metrics.json")   # metrics.json: an ignored cache
    big = root / "stabilized_256"
    assert size(p for p in root.rglob("*") if big not in p.parents) <= 64 * 2**20
    assert size(big.rglob("*")) <= 48 * 2**20
    for folder in folders:
        load_network(folder, "G_AB")
        assert all(v.dtype == torch.float16 for f in weight_files(folder, "G_BA")
                   for v in load_file(str(f)).values())


def test_export_can_keep_one_discriminator_and_fewer_sample_grids(ema_run, tmp_path: Path
                                                                  ) -> None:
    run, _ = ema_run
    out = export_run(run, tmp_path / "slim", discriminators=["D_B"], max_samples=1)
    assert weight_files(out, "D_B") and not weight_files(out, "D_A")
    grids = sorted((run / "samples").glob("step_*.png"))
    assert len(grids) > 1
    assert [p.name for p in (out / "samples").iterdir()] == [grids[-1].name]


def test_a_re_export_replaces_the_previous_sample_grids(ema_run, tmp_path: Path) -> None:
    run, _ = ema_run
    export_run(run, tmp_path / "again")
    out = export_run(run, tmp_path / "again", max_samples=1)
    grids = sorted((run / "samples").glob("step_*.png"))
    assert [p.name for p in (out / "samples").iterdir()] == [grids[-1].name]
