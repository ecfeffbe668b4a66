"""Published figures use only photos the manifest marks publishable."""
from __future__ import annotations

import csv

from cyclegan_lib import photos


def _write(root, rows):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "MANIFEST.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "category", "publishable"])
        w.writeheader()
        for r in rows:
            w.writerow(r)
            (root / r["file"]).parent.mkdir(parents=True, exist_ok=True)
            (root / r["file"]).write_bytes(b"x")


def test_published_tests_only_hold_publishable_photos(tmp_path):
    rows = [{"file": f"pool/london_{i:03d}_{k}.jpg", "category": "pool", "publishable": "yes"}
            for i in range(1, 11) for k in ("neutral", "smiling")]
    rows += [{"file": "pool/london_011_neutral.jpg", "category": "pool", "publishable": "yes"},
             {"file": "pool/london_011_smiling.jpg", "category": "pool", "publishable": "no"},
             {"file": "facial_hair/star.jpg", "category": "facial_hair", "publishable": "no"},
             {"file": "facial_hair/london_092_beard.jpg", "category": "facial_hair",
              "publishable": "yes"},
             {"file": "angled/press.jpg", "category": "angled", "publishable": "no"}]
    _write(tmp_path, rows)
    tests = photos.published_tests(tmp_path, per_test=4)
    assert set(tests) == {"expressive", "consistency", "facial_hair"}
    assert len(tests["expressive"]) == 8 and len(tests["consistency"]) == 8
    assert not set(tests["expressive"]) & set(tests["consistency"])
    for files in tests.values():
        assert all(photos.is_publishable(p, tmp_path) for p in files)
    assert all("011" not in p.name for p in tests["expressive"] + tests["consistency"])


def test_real_manifest_if_present(faces_root):
    if not (faces_root / "MANIFEST.csv").is_file():
        return
    tests = photos.published_tests(faces_root)
    for files in tests.values():
        assert all(photos.is_publishable(p, faces_root) for p in files)
    assert "angled" not in tests  # no publishable angled photo exists
