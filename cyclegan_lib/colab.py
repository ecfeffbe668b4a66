"""Google Colab set-up: runs on Google Drive, data in one call, a profile for the GPU.

:func:`setup` fetches the anime-face cascade, mounts Drive for the runs (so a disconnected
reader resumes from the last checkpoint), finds selfie2anime (env, unpacked copy, URL or
Kaggle) and picks the GPU's profile.  Colab-only pieces come in as arguments, for the tests.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse
from urllib.request import urlretrieve

import torch

from . import paths
from .config import resolve_profile

__all__ = ["ColabSetup", "KAGGLE_DATASET", "DRIVE_FOLDER", "ANIME_CASCADE_URL", "SELFIE2ANIME_HELP",
           "setup", "mount_drive", "find_data", "fetch_kaggle", "fetch_archive", "dataset_root"]

#: The public Kaggle copy of U-GAT-IT's selfie2anime (trainA/trainB/testA/testB).
KAGGLE_DATASET = "arnaud58/selfie2anime"
#: The folder under ``MyDrive`` that holds the runs.
DRIVE_FOLDER = "cyclegan-anime"

ANIME_CASCADE_URL = ("https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/master/"
                     "lbpcascade_animeface.xml")
SELFIE2ANIME_HELP = (
    "selfie2anime (U-GAT-IT, Kim et al. 2020) is not bundled: download it (for example the "
    "Kaggle copy 'arnaud58/selfie2anime' or the link in the U-GAT-IT repository), unpack it so "
    "that trainA/trainB/testA/testB are in one folder, and set data_dir (or CYCLEGAN_DATA) to it.")


@dataclass
class ColabSetup:
    """What :func:`setup` found and set (also printed, one line each)."""

    data_dir: Path | None = None
    data_source: str = ""
    runs_dir: Path | None = None
    drive: bool = False
    profile: str | None = None
    messages: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.messages.append(text)
        print(text)


def dataset_root(folder: Path) -> Path | None:
    """The folder at or below ``folder`` holding ``trainA`` and ``trainB`` (archives often wrap
    them in extra folders), or None.
    """
    folder = Path(folder)
    if (folder / "trainA").is_dir() and (folder / "trainB").is_dir():
        return folder
    for inner in sorted(folder.rglob("trainA")):
        if inner.is_dir() and (inner.parent / "trainB").is_dir():
            return inner.parent
    return None


def mount_drive(mountpoint: str | Path = "/content/drive",
                mount: Callable[[str], None] | None = None) -> Path | None:
    """Mount Google Drive and return ``MyDrive``, or None when the reader declines.

    ``mount`` is ``google.colab.drive.mount`` (a stand-in in the tests).
    """
    mountpoint = Path(mountpoint)
    if mount is None:
        try:
            from google.colab import drive  # type: ignore[import-not-found]
        except ImportError:
            return None
        mount = drive.mount
    my_drive = mountpoint / "MyDrive"
    if not my_drive.is_dir():
        try:
            mount(str(mountpoint))
        except Exception:  # noqa: BLE001  declined, timed out, or no Drive for this account
            return None
    return my_drive if my_drive.is_dir() else None


def fetch_archive(url: str, target: Path) -> Path | None:
    """Download (any ``urllib`` URL, ``file://`` included) and unpack a zip/tar under ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    name = Path(urlparse(url).path).name or "selfie2anime.zip"
    archive = target / name
    if not archive.is_file():
        tmp = archive.with_name(archive.name + ".part")
        urlretrieve(url, tmp)
        os.replace(tmp, archive)
    unpacked = target / "selfie2anime"
    shutil.unpack_archive(str(archive), str(unpacked))
    archive.unlink(missing_ok=True)  # the images are unpacked; the runtime's disk is small
    return dataset_root(unpacked)


def fetch_kaggle(download: Callable[[str], str] | None = None) -> Path | None:
    """``kagglehub.dataset_download(KAGGLE_DATASET)`` and the selfie2anime folder inside it.

    None when kagglehub is missing or the download fails; the caller then prints the manual way.
    """
    if download is None:
        try:
            import kagglehub  # type: ignore[import-not-found]
        except ImportError:
            return None
        download = kagglehub.dataset_download
    try:
        path = Path(download(KAGGLE_DATASET))
    except Exception:  # noqa: BLE001  network, authentication, a renamed dataset...
        return None
    return dataset_root(path)


def find_data(result: ColabSetup, target: Path, data_url: str | None,
              kaggle: Callable[[str], str] | None = None, use_kaggle: bool = True) -> Path | None:
    """Step 3 of :func:`setup`: the first of env, unpacked copy, URL, Kaggle that works."""
    env = paths.env_path("CYCLEGAN_DATA")
    if env and dataset_root(env) is not None:
        result.data_source = "CYCLEGAN_DATA"
        return env
    local = dataset_root(target / "selfie2anime") if (target / "selfie2anime").is_dir() else None
    if local is not None:
        result.data_source = "already unpacked"
        return local
    data_url = data_url or paths.data_url()
    if data_url:
        try:
            found = fetch_archive(data_url, target)
        except (OSError, ValueError, shutil.ReadError) as exc:
            result.say(f"could not fetch {data_url}: {exc}")
            found = None
        if found is not None:
            result.data_source = data_url
            return found
    if use_kaggle:
        found = fetch_kaggle(download=kaggle)
        if found is not None:
            result.data_source = f"kaggle:{KAGGLE_DATASET}"
            return found
    return None


def _gpu_profile() -> str | None:
    return resolve_profile("auto") if torch.cuda.is_available() else None


def setup(data_url: str | None = None, target: str | Path = "/content", drive: bool = True,
          mountpoint: str | Path = "/content/drive", profile: str | None = "auto",
          mount: Callable[[str], None] | None = None,
          kaggle: Callable[[str], str] | None = None, use_kaggle: bool = True,
          fetch_cascade: bool = True) -> ColabSetup:
    """Prepare a Colab runtime for the chapters (see the module docstring); returns what it did.

    ``drive=False`` keeps runs on the runtime's disk; ``profile=None`` leaves the chapters' own;
    ``mount`` and ``kaggle`` stand in for Colab's Drive and kagglehub (tests).
    """
    result = ColabSetup()
    target = Path(target)
    if fetch_cascade:
        cache = Path.home() / ".cache" / "cyclegan_lib"
        cache.mkdir(parents=True, exist_ok=True)
        cascade = cache / "lbpcascade_animeface.xml"
        if not cascade.is_file():
            try:
                urlretrieve(ANIME_CASCADE_URL, cascade)
            except OSError as exc:
                result.say(f"anime-face cascade not fetched ({exc}); detector rates will be skipped")
        if cascade.is_file():
            paths.set_default("CYCLEGAN_ANIME_CASCADE", cascade)

    # Runs: on Drive when the reader allows it, so a disconnect loses nothing.
    if paths.env_path("CYCLEGAN_RUNS"):
        result.runs_dir = paths.env_path("CYCLEGAN_RUNS")
        result.say(f"runs: {result.runs_dir} (CYCLEGAN_RUNS)")
    elif drive:
        my_drive = mount_drive(mountpoint, mount)
        if my_drive is not None:
            result.drive = True
            result.runs_dir = my_drive / DRIVE_FOLDER / "runs"
            result.runs_dir.mkdir(parents=True, exist_ok=True)
            paths.export("CYCLEGAN_RUNS", result.runs_dir)
            result.say(f"runs: {result.runs_dir} on Google Drive: after a disconnect, run the "
                       f"chapter again and unfinished runs resume from their last checkpoint")
        else:
            result.say("runs: on this runtime's disk (Drive not mounted): a disconnect loses them")
    else:
        result.say("runs: on this runtime's disk (drive=False): a disconnect loses them")

    data = find_data(result, target, data_url, kaggle=kaggle, use_kaggle=use_kaggle)
    if data is not None:
        result.data_dir = data
        paths.export("CYCLEGAN_DATA", data)
        result.say(f"data: {data} ({result.data_source})")
    else:
        result.say(SELFIE2ANIME_HELP)

    if profile is not None and not paths.forced_profile():
        chosen = _gpu_profile() if profile == "auto" else resolve_profile(profile)
        if chosen is not None:
            paths.export("CYCLEGAN_PROFILE", chosen)
            result.profile = chosen
            result.say(f"profile: {chosen} for every chapter (CYCLEGAN_PROFILE; "
                       f"`cyclegan-anime presets` lists the others)")
    return result
