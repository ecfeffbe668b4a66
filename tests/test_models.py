"""The networks: official parameter counts, shapes, the paper's naive variants, init, zoo loading."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cyclegan_lib.checkpoint import CheckpointError
from cyclegan_lib.models import (PatchDiscriminator, ResidualBlock, ResnetGenerator,
                                 convert_official_state_dict, count_parameters, init_weights,
                                 load_official_generator, random_patches)


# -- parameter counts (the official networks.py, ngf = ndf = 64) ---------------------------
def test_generator_9_blocks_matches_official_count() -> None:
    assert count_parameters(ResnetGenerator(ngf=64, n_blocks=9)) == 11_378_179


def test_discriminator_matches_official_count() -> None:
    assert count_parameters(PatchDiscriminator(ndf=64)) == 2_764_737


def test_block_counts_3_and_6() -> None:
    p3, p6, p9 = (count_parameters(ResnetGenerator(ngf=64, n_blocks=n)) for n in (3, 6, 9))
    assert round(100 * p3 / p9) == 38  # the paper's "38% of the parameters"
    assert p3 < p6 < p9
    # Each residual block is two 3x3 convs 256 -> 256 with biases.
    block = 2 * (256 * 256 * 9 + 256)
    assert p6 - p3 == p9 - p6 == 3 * block


def test_naive_variant_has_the_same_parameters() -> None:
    assert count_parameters(ResnetGenerator(ngf=16, n_blocks=3, variant="naive")) == \
        count_parameters(ResnetGenerator(ngf=16, n_blocks=3))


# -- shapes -------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_generator_keeps_the_image_size(size: int) -> None:
    g = ResnetGenerator(ngf=4 if size > 64 else 8, n_blocks=2)
    with torch.no_grad():
        y = g(torch.rand(2, 3, size, size) * 2 - 1)
    assert y.shape == (2, 3, size, size)
    assert y.abs().max() <= 1  # tanh output


@pytest.mark.parametrize("size,cells", [(32, 2), (64, 6), (70, 6), (128, 14), (256, 30)])
def test_patchgan_map_size(size: int, cells: int) -> None:
    d = PatchDiscriminator(ndf=4)
    with torch.no_grad():
        y = d(torch.zeros(1, 3, size, size))
    assert y.shape == (1, 1, cells, cells)


def test_patchgan_receptive_field_is_70() -> None:
    """Each output cell depends on exactly a 70x70 window of the input.

    Instance norm mixes in image-wide statistics, so it is taken out to see the
    convolutions' own receptive field.
    """
    d = init_weights(PatchDiscriminator(ndf=4))
    d.model = nn.Sequential(*(nn.Identity() if isinstance(m, nn.InstanceNorm2d) else m
                              for m in d.model))
    x = torch.zeros(1, 3, 128, 128, requires_grad=True)
    d(x)[0, 0, 6, 6].backward()
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70


def test_single_head_gives_one_value_per_70px_input() -> None:
    d = PatchDiscriminator(ndf=8, head="single", patch_size=70)
    with torch.no_grad():
        y = d(torch.rand(3, 3, 70, 70))
        p = d.probability(torch.rand(3, 3, 70, 70))
    assert y.shape == (3, 1, 1, 1)
    assert ((p > 0) & (p < 1)).all()


def test_single_head_for_32px_patches() -> None:
    d = PatchDiscriminator(ndf=8, head="single", patch_size=32)
    assert d(torch.rand(2, 3, 32, 32)).shape == (2, 1, 1, 1)


def test_bad_model_options_raise() -> None:
    with pytest.raises(ValueError, match="variant"):
        ResnetGenerator(variant="fancy")
    with pytest.raises(ValueError, match="head"):
        PatchDiscriminator(head="pool")
    with pytest.raises(ValueError, match="too small"):
        PatchDiscriminator(head="single", patch_size=8)


# -- the paper's naive generator -----------------------------------------------------------
def test_naive_generator_output_is_relu() -> None:
    torch.manual_seed(0)
    g = init_weights(ResnetGenerator(ngf=8, n_blocks=2, variant="naive"))
    with torch.no_grad():
        y = g(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert isinstance(g.model[-1], nn.ReLU)
    assert y.min() >= 0
    assert (y == 0).any()  # negative pre-activations are clipped, not squashed by tanh


def test_official_block_adds_after_the_block() -> None:
    torch.manual_seed(0)
    block = init_weights(ResidualBlock(8))
    x = torch.randn(1, 8, 16, 16)
    with torch.no_grad():
        assert torch.allclose(block(x), x + block.conv_block(x))
        assert (block(x) < 0).any()  # no activation after the addition


def test_naive_block_adds_before_the_activation() -> None:
    torch.manual_seed(0)
    block = init_weights(ResidualBlock(8, naive=True))
    x = torch.randn(1, 8, 16, 16)
    with torch.no_grad():
        assert torch.allclose(block(x), torch.relu(x + block.conv_block(x)))


# -- patches ----------------------------------------------------------------------------
def test_random_patches_are_windows_of_each_image() -> None:
    x = torch.arange(2 * 3 * 64 * 64, dtype=torch.float32).reshape(2, 3, 64, 64)
    g = torch.Generator().manual_seed(1)
    p = random_patches(x, 32, generator=g)
    assert p.shape == (2, 3, 32, 32)
    for i in range(2):
        y0 = int((p[i, 0, 0, 0] - x[i, 0, 0, 0]).item()) // 64
        c0 = int((p[i, 0, 0, 0] - x[i, 0, 0, 0]).item()) % 64
        assert torch.equal(p[i], x[i, :, y0:y0 + 32, c0:c0 + 32])
    # reproducible from the generator, and not always the same window
    again = random_patches(x, 32, generator=torch.Generator().manual_seed(1))
    assert torch.equal(p, again)
    corners = {tuple(random_patches(x, 32)[0, 0, 0, :1].tolist()) for _ in range(20)}
    assert len(corners) > 1


def test_random_patches_passthrough() -> None:
    x = torch.rand(1, 3, 32, 32)
    assert random_patches(x, None) is x
    assert random_patches(x, 32) is x
    assert random_patches(x, 70) is x


# -- init -------------------------------------------------------------------------------
def test_init_weights_statistics() -> None:
    torch.manual_seed(0)
    g = init_weights(ResnetGenerator(ngf=32, n_blocks=3))
    convs = [m for m in g.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    w = torch.cat([m.weight.flatten() for m in convs])
    assert abs(w.mean().item()) < 1e-3
    assert w.std().item() == pytest.approx(0.02, rel=0.02)
    assert all(torch.count_nonzero(m.bias) == 0 for m in convs)
    bn = init_weights(nn.Sequential(nn.Conv2d(3, 4096, 1), nn.BatchNorm2d(4096)))[1]
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=2e-3)
    assert bn.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert torch.count_nonzero(bn.bias) == 0


def test_instance_norm_has_no_affine_parameters() -> None:
    norms = [m for m in ResnetGenerator(ngf=8, n_blocks=1).modules()
             if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(m.weight is None and not m.track_running_stats for m in norms)


# -- official model-zoo state dicts ----------------------------------------------------------
def _official_style_state(net: ResnetGenerator) -> dict[str, torch.Tensor]:
    """What an old official ``latest_net_G.pth`` looks like: DataParallel prefix and the
    InstanceNorm running statistics that PyTorch < 0.4 saved."""
    state = {f"module.{k}": v.clone() for k, v in net.state_dict().items()}
    for name, m in net.named_modules():
        if isinstance(m, nn.InstanceNorm2d):
            c = m.num_features
            state[f"module.{name}.running_mean"] = torch.zeros(c)
            state[f"module.{name}.running_var"] = torch.ones(c)
            state[f"module.{name}.num_batches_tracked"] = torch.tensor(0)
    return state


def test_convert_official_state_dict_keys() -> None:
    net = ResnetGenerator(ngf=8, n_blocks=2)
    state = _official_style_state(net)
    assert any("running_mean" in k for k in state)
    converted = convert_official_state_dict(state)
    assert set(converted) == set(net.state_dict())


def test_load_official_generator_from_file(tmp_path: Path) -> None:
    torch.manual_seed(0)
    src = init_weights(ResnetGenerator(ngf=8, n_blocks=3)).eval()
    path = tmp_path / "latest_net_G.pth"
    torch.save(_official_style_state(src), path)
    net = load_official_generator(path, n_blocks=3, ngf=8)
    assert not net.training
    for k, v in src.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(net(x), src(x))


def test_load_official_generator_infers_size(tmp_path: Path) -> None:
    src = ResnetGenerator(ngf=8, n_blocks=4)
    path = tmp_path / "g.pth"
    torch.save(_official_style_state(src), path)
    net = load_official_generator(path, n_blocks=None, ngf=None)
    assert count_parameters(net) == count_parameters(src)


def test_load_official_generator_wrong_shape_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "g.pth"
    torch.save(ResnetGenerator(ngf=8, n_blocks=2).state_dict(), path)
    with pytest.raises(CheckpointError, match=r"g\.pth.*n_blocks=9"):
        load_official_generator(path, n_blocks=9, ngf=8)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"g\.pth"):
        load_official_generator(path)
