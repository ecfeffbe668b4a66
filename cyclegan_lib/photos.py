"""Which real photos may be shown on a public page, and the published tests built from them.

``MANIFEST.csv`` marks each photo ``publishable=yes`` or ``no``; photos of unstated copyright
may give numbers but never appear in the book.  :func:`published_tests` builds the
qualitative tests from the publishable pool, as the faces README describes.
"""
from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["manifest_rows", "publishable_files", "is_publishable", "london_pairs",
           "published_tests"]


def manifest_rows(faces_dir: str | Path) -> list[dict[str, str]]:
    """The rows of ``MANIFEST.csv`` (empty when the folder has none)."""
    path = Path(faces_dir) / "MANIFEST.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def publishable_files(faces_dir: str | Path) -> set[str]:
    """Manifest names (``category/file.jpg``) of the photos marked ``publishable=yes``."""
    return {r["file"] for r in manifest_rows(faces_dir)
            if r.get("publishable", "").strip().lower() == "yes"}


def is_publishable(path: str | Path, faces_dir: str | Path) -> bool:
    """True only for a photo the manifest marks ``publishable=yes`` (unknown photos: False)."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}" in publishable_files(faces_dir)


def london_pairs(faces_dir: str | Path, publishable_only: bool = True) -> list[tuple[Path, Path]]:
    """``(neutral, smiling)`` photo pairs of the same London-set person in ``pool/``."""
    ok = publishable_files(faces_dir) if publishable_only else None
    pairs = []
    for neutral in sorted((Path(faces_dir) / "pool").glob("london_*_neutral.jpg")):
        smiling = neutral.with_name(neutral.name.replace("_neutral", "_smiling"))
        names = {f"pool/{neutral.name}", f"pool/{smiling.name}"}
        if smiling.is_file() and (ok is None or names <= ok):
            pairs.append((neutral, smiling))
    return pairs


def published_tests(faces_dir: str | Path, per_test: int = 4) -> dict[str, list[Path]]:
    """The photos of each qualitative test that may appear in the published figures.

    Pairs are flattened (neutral, smiling, ...), one person per row of two; a test without
    publishable photos is absent.
    """
    root = Path(faces_dir)
    ok = publishable_files(root)
    pairs = london_pairs(root)
    tests: dict[str, list[Path]] = {}
    expressive = pairs[:per_test]
    same_person = pairs[per_test:2 * per_test]
    if expressive:
        tests["expressive"] = [p for pair in expressive for p in pair]
    if same_person:
        tests["consistency"] = [p for pair in same_person for p in pair]
    for category in ("facial_hair", "angled", "dark"):
        files = sorted(root / f for f in ok if f.startswith(category + "/") and (root / f).is_file())
        if files:
            tests[category] = files[:per_test]
    return tests
