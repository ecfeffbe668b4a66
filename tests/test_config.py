"""Presets, profiles and validation: every mistake is a one-line ConfigError."""
from __future__ import annotations

import json

import pytest
import torch

from cyclegan_lib.config import (PRESETS, PROFILES, ConfigError, TrainConfig, describe_presets,
                                 make_config, resolve_profile)


def test_paper_presets_exist() -> None:
    assert {"naive", "stabilized", "patch32", "blocks3", "blocks6", "blocks9"} <= set(PRESETS)
    assert {"smoke", "cpu", "full"} <= set(PROFILES)


def test_full_profile_is_the_paper() -> None:
    cfg = make_config("stabilized", "full")
    assert (cfg.image_size, cfg.ngf, cfg.ndf, cfg.batch_size) == (256, 64, 64, 1)
    assert (cfg.n_epochs, cfg.n_epochs_decay) == (100, 100)
    assert (cfg.lr, cfg.beta1, cfg.beta2) == (2e-4, 0.5, 0.999)
    assert (cfg.lambda_cycle, cfg.lambda_identity, cfg.pool_size) == (10.0, 0.5, 50)
    assert cfg.resolved_load_size == 287


def test_presets_set_their_experiment() -> None:
    naive = make_config("naive", "full")
    assert (naive.generator_variant, naive.d_head, naive.gan_loss, naive.pool_size,
            naive.d_patch) == ("naive", "single", "nll", 0, 70)
    stab = make_config("stabilized", "full")
    assert (stab.generator_variant, stab.d_head, stab.gan_loss, stab.d_patch) == \
        ("official", "patchmap", "lsgan", None)
    assert make_config("patch32", "full").d_patch == 32
    assert [make_config(f"blocks{n}", "smoke").n_blocks for n in (3, 6, 9)] == [3, 6, 9]
    b9, st = make_config("blocks9", "cpu").to_dict(), make_config("stabilized", "cpu").to_dict()
    b9.pop("preset"), st.pop("preset")
    assert b9 == st


def test_smoke_profile_is_small() -> None:
    cfg = make_config("stabilized", "smoke")
    assert cfg.image_size == 32 and cfg.ngf == 8 and cfg.device == "cpu"
    assert cfg.total_epochs * cfg.epoch_size == 8


def test_patch_never_exceeds_the_image() -> None:
    cfg = make_config("naive", "smoke")  # 70 px patches on 32 px images
    assert cfg.d_patch == 32


def test_overrides_apply_and_none_is_ignored() -> None:
    cfg = make_config("blocks3", "smoke", seed=7, max_steps=None, save_every=3)
    assert (cfg.seed, cfg.max_steps, cfg.save_every, cfg.n_blocks) == (7, None, 3, 3)


@pytest.mark.parametrize("cuda,gib,expected", [
    (True, 80, "full"), (True, 40, "full"),                       # H100, A100 40 GB
    (True, 15, "colab"), (True, 16, "colab"), (True, 24, "colab"),  # T4, V100, L4
    (False, 0, "cpu")])
def test_auto_profile(monkeypatch: pytest.MonkeyPatch, cuda: bool, gib: int, expected: str) -> None:
    """auto: colab on GPUs under ~40 GB (a free Colab T4), full only on big GPUs, cpu without."""
    import types

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda i: types.SimpleNamespace(total_memory=gib * 2 ** 30 - 2 ** 20))
    assert resolve_profile("auto") == expected
    assert make_config("stabilized", "auto").profile == expected
    assert resolve_profile("smoke") == "smoke"


def test_json_round_trip() -> None:
    cfg = make_config("patch32", "cpu", seed=3)
    again = TrainConfig.from_dict(json.loads(cfg.to_json()))
    assert again == cfg
    with pytest.raises(ConfigError, match="bogus"):
        TrainConfig.from_dict({**cfg.to_dict(), "bogus": 1})


@pytest.mark.parametrize("kwargs,words", [
    (dict(preset="nope"), ["nope", "stabilized"]),
    (dict(profile="huge"), ["huge", "smoke"]),
    (dict(max_steps=-5), ["max_steps", "-5"]),
    (dict(max_steps=0), ["max_steps"]),
    (dict(max_minutes=0.0), ["max_minutes"]),
    (dict(max_minutes=float("inf")), ["max_minutes"]),
    (dict(n_epochs=-1), ["n_epochs"]),
    (dict(n_epochs=0, n_epochs_decay=0), ["n_epochs"]),
    (dict(save_every=0), ["save_every"]),
    (dict(keep_checkpoints=0), ["keep_checkpoints"]),
    (dict(pool_size=-1), ["pool_size"]),
    (dict(image_size=64, load_size=60), ["load_size", "larger"]),
    (dict(image_size=30), ["image_size"]),
    (dict(image_size=16), ["image_size"]),
    (dict(device="tpu"), ["device", "tpu"]),
    (dict(device="cuda:x"), ["device"]),
    (dict(lr=0.0), ["lr"]),
    (dict(lr=float("nan")), ["lr"]),
    (dict(beta1=1.5), ["beta1"]),
    (dict(lambda_cycle=-1.0), ["lambda_cycle"]),
    (dict(lambda_identity=-0.5), ["lambda_identity"]),
    (dict(gan_loss="hinge"), ["gan_loss"]),
    (dict(d_head="avg"), ["d_head"]),
    (dict(generator_variant="unet"), ["generator_variant"]),
    (dict(d_patch=16), ["d_patch"]),
    (dict(d_layers=0), ["d_layers"]),
    (dict(d_layers=1, d_patch=6), ["d_patch", "8"]),
    (dict(batch_size="two"), ["batch_size"]),
    (dict(bogus=1), ["bogus"]),
])
def test_mistakes_are_one_line_config_errors(kwargs: dict, words: list[str]) -> None:
    preset = kwargs.pop("preset", "stabilized")
    profile = kwargs.pop("profile", "smoke")
    with pytest.raises(ConfigError) as info:
        make_config(preset, profile, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_the_paper_proportions_at_64_px() -> None:
    """scaled70/scaled32: the paper's 70x70 field and 32x32 patch as shares of a 64-px face."""
    s70, s32 = make_config("scaled70", "book"), make_config("scaled32", "book")
    assert (s70.d_layers, s70.d_patch, s32.d_layers, s32.d_patch) == (1, None, 1, 8)
    assert s32.d_patch / s32.image_size == 32 / 256


def test_validate_catches_direct_construction() -> None:
    with pytest.raises(ConfigError, match="device"):
        TrainConfig(device="gpu").validate()
    assert TrainConfig().validate() is not None


def test_devices_accepted() -> None:
    for device in ("auto", "cpu", "cuda", "cuda:1"):
        assert make_config("stabilized", "smoke", device=device).device == device


def test_describe_presets_lists_everything() -> None:
    text = describe_presets()
    for name in [*PRESETS, *PROFILES, "auto"]:
        assert name in text


def test_preset_patch_is_clamped_after_overrides() -> None:
    """naive's 70 px patch follows an overridden image size (clamped to it, never stale)."""
    assert make_config("naive", "smoke", image_size=64).d_patch == 64
    assert make_config("naive", "cpu", image_size=128).d_patch == 70
    assert make_config("patch32", "smoke", image_size=64, d_patch=48).d_patch == 48
    with pytest.raises(ConfigError, match="d_patch.*image_size=32"):
        make_config("stabilized", "smoke", d_patch=70)  # an explicit patch is never cut silently


def test_colab_profile_and_its_t4_estimate() -> None:
    """The colab profile: the paper's widths at 128 px, about an hour on a T4 by the FLOP
    estimate (which also puts `full` at the two days a T4 is reported to need)."""
    from cyclegan_lib.config import estimate_t4_minutes

    cfg = make_config("stabilized", "colab")
    assert (cfg.image_size, cfg.ngf, cfg.ndf, cfg.n_blocks) == (128, 64, 64, 9)
    assert cfg.total_epochs * cfg.epoch_size == 30_000 and cfg.ema_decay > 0
    assert 30 <= estimate_t4_minutes("colab") <= 60
    assert estimate_t4_minutes("colab", n_blocks=3) < estimate_t4_minutes("colab")
    assert 36 <= estimate_t4_minutes("full") / 60 <= 60  # hours
    text = describe_presets()
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("colab"))
    assert f"about {round(estimate_t4_minutes('colab'))} min" in line and "T4" in line
