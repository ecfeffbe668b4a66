"""The image history buffer: fill, then the 50% swap rule; size 0; exact save/restore."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cyclegan_lib.buffer import ImageHistoryBuffer
from cyclegan_lib.checkpoint import atomic_save, safe_load


def _img(value: float) -> torch.Tensor:
    """One 1x3x4x4 image whose pixels all equal ``value`` (its identity)."""
    return torch.full((1, 3, 4, 4), float(value))


def test_returns_inputs_until_full() -> None:
    buf = ImageHistoryBuffer(size=5, seed=0)
    for i in range(5):
        out = buf.query(_img(i))
        assert torch.equal(out, _img(i))
        assert len(buf) == i + 1
    assert sorted(im[0, 0, 0, 0].item() for im in buf.images) == [0, 1, 2, 3, 4]


def test_batch_fills_then_swaps_within_the_batch() -> None:
    buf = ImageHistoryBuffer(size=3, seed=0)
    batch = torch.cat([_img(i) for i in range(3)])
    assert torch.equal(buf.query(batch), batch)
    out = buf.query(torch.cat([_img(10 + i) for i in range(4)]))
    assert out.shape == (4, 3, 4, 4)
    assert len(buf) == 3


def test_half_the_time_an_older_image() -> None:
    """After filling, each new image is returned with probability 1/2, else a stored one."""
    size, n = 10, 4000
    buf = ImageHistoryBuffer(size=size, seed=123)
    for i in range(size):
        buf.query(_img(i))
    new_returned = 0
    for i in range(size, size + n):
        out = buf.query(_img(i))[0, 0, 0, 0].item()
        stored = {im[0, 0, 0, 0].item() for im in buf.images}
        if out == i:
            new_returned += 1
            assert i not in stored  # returned as is, not stored
        else:
            assert out < i and i in stored  # swapped: the old one out, the new one in
        assert len(buf) == size
    # 4000 fair coin flips: mean 0.5, sd 0.008; 5 sd either side.
    assert abs(new_returned / n - 0.5) < 0.04


def test_old_images_come_from_the_whole_history() -> None:
    buf = ImageHistoryBuffer(size=8, seed=5)
    seen = set()
    for i in range(400):
        out = buf.query(_img(i))[0, 0, 0, 0].item()
        if out != i:
            seen.add(i - out)
    assert max(seen) > 8  # an image can stay longer than `size` queries
    assert len(seen) > 20


def test_size_zero_is_a_passthrough() -> None:
    buf = ImageHistoryBuffer(size=0)
    x = torch.rand(2, 3, 4, 4)
    for _ in range(3):
        assert buf.query(x) is x
    assert len(buf) == 0


def test_negative_size_is_refused() -> None:
    with pytest.raises(ValueError):
        ImageHistoryBuffer(size=-1)


def test_query_does_not_alias_or_track_gradients() -> None:
    buf = ImageHistoryBuffer(size=2)
    x = torch.zeros(1, 3, 4, 4, requires_grad=True)
    out = buf.query(x * 1)
    assert not out.requires_grad
    buf.images[0].fill_(7)
    assert x.abs().sum() == 0


def test_state_dict_round_trip_continues_identically(tmp_path: Path) -> None:
    a = ImageHistoryBuffer(size=6, seed=3)
    for i in range(20):
        a.query(_img(i))
    path = atomic_save(a.state_dict(), tmp_path / "buf.pt")
    b = ImageHistoryBuffer(size=6, seed=999)
    b.load_state_dict(safe_load(path))  # weights_only=True must accept the state
    assert all(torch.equal(x, y) for x, y in zip(a.images, b.images))
    for i in range(20, 80):
        assert torch.equal(a.query(_img(i)), b.query(_img(i)))
    assert all(torch.equal(x, y) for x, y in zip(a.images, b.images))


def test_same_seed_same_choices() -> None:
    a, b = ImageHistoryBuffer(4, seed=1), ImageHistoryBuffer(4, seed=1)
    c = ImageHistoryBuffer(4, seed=2)
    outs = {k: [] for k in "abc"}
    for i in range(60):
        for k, buf in zip("abc", (a, b, c)):
            outs[k].append(buf.query(_img(i))[0, 0, 0, 0].item())
    assert outs["a"] == outs["b"]
    assert outs["a"] != outs["c"]
