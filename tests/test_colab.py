"""The Colab set-up cell's paths, with stand-ins for Google Drive, kagglehub and the network.

``google.colab.drive.mount`` becomes a function that creates ``MyDrive`` (or raises, as
Colab does when the reader declines); ``kagglehub.dataset_download`` unpacks a local zip of
a tiny selfie2anime; a ``file://`` URL stands in for a download link.  A run interrupted on
"Drive" (a disconnect) is resumed by the chapter's own call when it runs again.
"""
from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import pytest
import torch

from cyclegan_lib import book, colab
from cyclegan_lib.config import make_config
from cyclegan_lib.runs import run_is_complete
from cyclegan_lib.trainer import train

ENV = ("CYCLEGAN_DATA", "CYCLEGAN_RUNS", "CYCLEGAN_PROFILE", "CYCLEGAN_DATA_URL",
       "CYCLEGAN_ANIME_CASCADE")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cache = tmp_path / "home" / ".cache" / "cyclegan_lib"
    cache.mkdir(parents=True)
    (cache / "lbpcascade_animeface.xml").write_text("<opencv_storage/>")  # no network needed
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return monkeypatch


def _zip_dataset(tiny_dataset: Path, where: Path) -> Path:
    """selfie2anime as archives ship it: the four splits one folder down."""
    staging = where / "staging" / "selfie2anime"
    shutil.copytree(tiny_dataset, staging)
    return Path(shutil.make_archive(str(where / "selfie2anime"), "zip", where / "staging"))


def _fake_drive(calls: list, decline: bool = False):
    def mount(mountpoint: str) -> None:
        calls.append(mountpoint)
        if decline:
            raise ValueError("mount failed")  # what Colab raises when access is refused
        (Path(mountpoint) / "MyDrive").mkdir(parents=True)
    return mount


def test_drive_mounted_runs_live_there(clean_env, tmp_path, tiny_dataset):
    clean_env.setenv("CYCLEGAN_DATA", str(tiny_dataset))
    calls: list = []
    res = colab.setup(target=tmp_path / "content", mountpoint=tmp_path / "drive",
                      mount=_fake_drive(calls), use_kaggle=False)
    assert calls == [str(tmp_path / "drive")] and res.drive
    assert res.runs_dir == tmp_path / "drive" / "MyDrive" / "cyclegan-anime" / "runs"
    assert res.runs_dir.is_dir()
    import os
    assert os.environ["CYCLEGAN_RUNS"] == str(res.runs_dir)
    assert res.data_dir == tiny_dataset and res.data_source == "CYCLEGAN_DATA"
    # A second call in the same runtime (the next chapter) does not mount again.
    calls.clear()
    clean_env.delenv("CYCLEGAN_RUNS")
    res = colab.setup(target=tmp_path / "content", mountpoint=tmp_path / "drive",
                      mount=_fake_drive(calls), use_kaggle=False)
    assert calls == [] and res.drive


@pytest.mark.parametrize("drive,decline", [(True, True), (False, False)])
def test_declined_or_skipped_drive_keeps_runs_local(clean_env, tmp_path, tiny_dataset, drive,
                                                    decline):
    import os
    clean_env.setenv("CYCLEGAN_DATA", str(tiny_dataset))
    calls: list = []
    res = colab.setup(target=tmp_path / "content", mountpoint=tmp_path / "drive", drive=drive,
                      mount=_fake_drive(calls, decline=decline), use_kaggle=False)
    assert not res.drive and res.runs_dir is None and "CYCLEGAN_RUNS" not in os.environ
    assert calls == ([str(tmp_path / "drive")] if drive else [])
    assert any("disconnect loses them" in m for m in res.messages)


def test_data_from_kaggle_stand_in(clean_env, tmp_path, tiny_dataset):
    """No CYCLEGAN_DATA: kagglehub's download (a local archive unpacked) supplies the data."""
    import os
    archive = _zip_dataset(tiny_dataset, tmp_path / "kaggle-src")
    asked = []

    def dataset_download(name: str) -> str:
        asked.append(name)
        out = tmp_path / "kagglehub" / "datasets" / name / "versions" / "1"
        shutil.unpack_archive(archive, out)
        return str(out)

    res = colab.setup(target=tmp_path / "content", drive=False, kaggle=dataset_download,
                      fetch_cascade=False)
    assert asked == ["arnaud58/selfie2anime"]
    assert res.data_dir == tmp_path / "kagglehub" / "datasets" / "arnaud58" / "selfie2anime" / \
        "versions" / "1" / "selfie2anime"
    assert os.environ["CYCLEGAN_DATA"] == str(res.data_dir)
    assert res.data_source == "kaggle:arnaud58/selfie2anime"
    assert sorted(p.name for p in res.data_dir.iterdir()) == ["testA", "testB", "trainA", "trainB"]


def test_kagglehub_missing_or_failing_falls_back_to_the_message(clean_env, tmp_path, capsys):
    def failing(name: str) -> str:
        raise ConnectionError("no network")

    res = colab.setup(target=tmp_path / "content", drive=False, kaggle=failing,
                      fetch_cascade=False)
    assert res.data_dir is None and res.messages[-1] == colab.SELFIE2ANIME_HELP
    assert "selfie2anime" in capsys.readouterr().out
    clean_env.setitem(sys.modules, "kagglehub", None)  # not installed: import fails
    assert colab.fetch_kaggle() is None


def test_data_url_archive_and_reuse(clean_env, tmp_path, tiny_dataset):
    """An archive URL (file:// here) is unpacked under target; the next call reuses it."""
    archive = _zip_dataset(tiny_dataset, tmp_path / "src")
    target = tmp_path / "content"
    res = colab.setup(data_url=archive.as_uri(), target=target, drive=False, use_kaggle=False,
                      fetch_cascade=False)
    assert res.data_dir == target / "selfie2anime" / "selfie2anime"
    assert (res.data_dir / "trainA").is_dir() and not (target / archive.name).exists()
    clean_env.delenv("CYCLEGAN_DATA")
    again = colab.setup(target=target, drive=False, use_kaggle=False, fetch_cascade=False,
                        kaggle=lambda name: pytest.fail("downloaded again"))
    assert again.data_dir == res.data_dir and again.data_source == "already unpacked"


@pytest.mark.parametrize("cuda,gib,expected", [(True, 15, "colab"), (True, 80, "full"),
                                               (False, 0, None)])
def test_gpu_runtime_sets_the_profile(clean_env, tmp_path, tiny_dataset, cuda, gib, expected):
    import os
    clean_env.setenv("CYCLEGAN_DATA", str(tiny_dataset))
    clean_env.setattr(torch.cuda, "is_available", lambda: cuda)
    clean_env.setattr(torch.cuda, "get_device_properties",
                      lambda i: types.SimpleNamespace(total_memory=gib * 2 ** 30))
    res = colab.setup(target=tmp_path, drive=False, use_kaggle=False, fetch_cascade=False)
    assert res.profile == expected and os.environ.get("CYCLEGAN_PROFILE") == expected
    # The reader's own choice wins.
    clean_env.setenv("CYCLEGAN_PROFILE", "cpu")
    assert colab.setup(target=tmp_path, drive=False, use_kaggle=False,
                       fetch_cascade=False).profile is None
    assert os.environ["CYCLEGAN_PROFILE"] == "cpu"


def test_book_colab_setup_on_a_colab_stand_in(clean_env, tmp_path, tiny_dataset):
    """book.colab_setup (what the chapters call) with google.colab and kagglehub faked."""
    import os
    archive = _zip_dataset(tiny_dataset, tmp_path / "src")
    google = types.ModuleType("google")
    google_colab = types.ModuleType("google.colab")
    drive_mod = types.ModuleType("google.colab.drive")
    mounted: list = []
    drive_mod.mount = _fake_drive(mounted)
    google_colab.drive = drive_mod
    google.colab = google_colab
    kaggle = types.ModuleType("kagglehub")
    kaggle.dataset_download = lambda name: (shutil.unpack_archive(archive, tmp_path / "kh"),
                                            str(tmp_path / "kh"))[1]
    for name, mod in (("google", google), ("google.colab", google_colab),
                      ("google.colab.drive", drive_mod), ("kagglehub", kaggle)):
        clean_env.setitem(sys.modules, name, mod)
    assert book.on_colab()
    # The default mount point is Colab's; stand it in under tmp_path.
    clean_env.setattr(colab, "mount_drive",
                      lambda mountpoint, mount=None, _orig=colab.mount_drive:
                      _orig(tmp_path / "drive", mount))
    data = book.colab_setup(target=tmp_path / "content")
    assert data == tmp_path / "kh" / "selfie2anime" and mounted
    assert os.environ["CYCLEGAN_RUNS"] == str(tmp_path / "drive" / "MyDrive" / "cyclegan-anime"
                                               / "runs")
    assert os.environ["CYCLEGAN_ANIME_CASCADE"].endswith("lbpcascade_animeface.xml")


def test_chapter_rerun_after_disconnect_resumes_the_run_on_drive(clean_env, tmp_path,
                                                                  tiny_dataset, one_thread):
    """A run cut off on Drive (the runtime disconnected after step 4) is resumed, not
    restarted, when the chapter runs again in a new runtime."""
    runs = tmp_path / "drive" / "MyDrive" / "cyclegan-anime" / "runs"
    clean_env.setenv("CYCLEGAN_RUNS", str(runs))
    clean_env.setenv("CYCLEGAN_DATA", str(tiny_dataset))
    run_dir = runs / "smoke" / "stabilized"
    train(make_config("stabilized", "smoke", max_steps=4), tiny_dataset, run_dir, progress=False)
    assert not run_is_complete(run_dir)
    ctx = book.chapter_setup(profile="smoke", quiet=True)
    assert ctx.runs_dir == runs.resolve()
    assert book.ensure_run(ctx, "stabilized") == run_dir.resolve()
    assert run_is_complete(run_dir)
    log = (run_dir / "log.txt").read_text()
    assert "resuming from step_00000004.pt at step 4" in log
