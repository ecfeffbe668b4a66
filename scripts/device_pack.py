"""Pack what a lent GPU machine needs and cannot reach: the data, made small, and torch-fidelity.

The device tool sends the working tree (at most 64 MiB) and nothing beside it, and that machine
has no package index.  This writes into ``OUT`` (default ``.device/``, ignored by git):

* ``data64/``: trainA/trainB resized to the 64-px profiles' load size (72 px, bicubic, as the
  trainer resizes them) and saved as JPEG quality 95 (about 4 KB each), testA/testB as they are;
* ``data256/``: the first ``--n256`` training images of each domain as they are (the 256-px run
  of ``scripts/gpu_train_256.py``);
* ``lbpcascade_animeface.xml``: the anime-face detector (``--cascade``);
* ``whl/``: the torch-fidelity wheel (``cyclegan_lib.evaluate`` imports it), unless ``--no-wheel``.

It then prints the size of the tree the tool would send.  ``pretrained/`` alone is about 64 MiB,
so move it out of the checkout for the call (``git checkout -- pretrained`` brings it back).

    python scripts/device_pack.py --data $CYCLEGAN_DATA
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

from cyclegan_lib.config import make_config
from cyclegan_lib.data import IMAGE_EXTENSIONS, open_rgb

REPO = Path(__file__).resolve().parents[1]
TREE_LIMIT = 64 * 2**20


def images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def travelling_bytes(repo: Path) -> int:
    """What the device tool sends besides ``carry``: tracked files present, untracked not ignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=repo, capture_output=True, check=True).stdout.split(b"\0")
    return sum((repo / os.fsdecode(name)).stat().st_size for name in listed
               if name and (repo / os.fsdecode(name)).is_file())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.environ.get("CYCLEGAN_DATA"))
    p.add_argument("--out", default=str(REPO / ".device"))
    p.add_argument("--cascade", default=os.environ.get("CYCLEGAN_ANIME_CASCADE"))
    p.add_argument("--n256", type=int, default=300, help="training images per domain at 256 px")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality of the 64-px set")
    p.add_argument("--no-wheel", action="store_true")
    args = p.parse_args(argv)
    if not args.data:
        sys.exit("set --data or CYCLEGAN_DATA to the selfie2anime folder")
    data, out = Path(args.data), Path(args.out)
    load = make_config("stabilized", "long").resolved_load_size
    shutil.rmtree(out / "data64", ignore_errors=True)
    shutil.rmtree(out / "data256", ignore_errors=True)
    for domain in ("A", "B"):
        train = images(data / f"train{domain}")
        small = out / "data64" / f"train{domain}"
        small.mkdir(parents=True)
        for path in train:
            image, _ = open_rgb(path)
            image.resize((load, load), Image.BICUBIC).save(small / f"{path.stem}.jpg",
                                                           quality=args.quality)
        shutil.copytree(data / f"test{domain}", out / "data64" / f"test{domain}")
        (out / "data256" / f"train{domain}").mkdir(parents=True)
        for path in train[:args.n256]:
            shutil.copy2(path, out / "data256" / f"train{domain}" / path.name)
    if args.cascade:
        shutil.copy2(args.cascade, out / "lbpcascade_animeface.xml")
    if not args.no_wheel:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--only-binary=:all:", "torch-fidelity==0.4.0", "-d", str(out / "whl")],
                       check=True)
    size = travelling_bytes(REPO) + sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"packed {out}: 64-px set at {load} px, {args.n256} images per domain at 256 px; "
          f"the tree the device tool sends is {size / 2**20:.1f} MiB (limit 64)")
    if size > TREE_LIMIT:
        print("over the limit: move pretrained/ out of the checkout for the call", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
