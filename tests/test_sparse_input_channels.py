"""Input-channel widths: the group l0 prox against brute force, and extraction that keeps the
network's function (LeNet-like, MobileNet with depthwise convolutions and BatchNorm, AlexNet)."""

import itertools

import pytest
import torch
from torch import nn

from lib.sparse import (
    extract_input_pruned,
    group_l0_prox_keep,
    input_channel_norms,
    kept_input_widths,
    network_widths,
    strongest_channels,
    width_boundaries,
    zero_input_channels,
)
from lib.vision.models import lenet5_like
from lib.vision.width_models import alexnet_widths, mobilenet_v1


def _objective(a, keep, s, y, rho, step):
    k = sum(keep)
    dropped = sum(v for v, kept in zip(a, keep, strict=True) if not kept)
    return dropped / (2 * step) + y * k + rho / 2 * max(k - s, 0.0) ** 2


@pytest.mark.parametrize("trial", range(40))
def test_group_l0_prox_is_the_brute_force_minimiser(trial):
    g = torch.Generator().manual_seed(trial)
    n = 1 + trial % 7
    a = torch.rand(n, generator=g, dtype=torch.float64) * 4
    s = float(torch.rand(1, generator=g) * (n + 1))
    y = float(torch.rand(1, generator=g) * 3)
    rho = float(torch.rand(1, generator=g) * 20)
    step = float(0.05 + torch.rand(1, generator=g))
    keep = group_l0_prox_keep(a, s, y, rho, step)
    best = min(_objective(a.tolist(), m, s, y, rho, step)
               for m in itertools.product([False, True], repeat=n))
    assert _objective(a.tolist(), keep.tolist(), s, y, rho, step) == pytest.approx(best,
                                                                                 abs=1e-12)
    if keep.any():  # the kept channels are the strongest ones
        assert a[keep].min() >= a[~keep].max() if (~keep).any() else True


def test_prox_keeps_exactly_s_channels_when_the_penalty_binds_beyond_s():
    a = torch.tensor([5.0, 0.1, 3.0, 0.2, 4.0, 1.0], dtype=torch.float64)
    # y = 0 and a steep rho: any channel beyond s = 3 costs more than it saves
    keep = group_l0_prox_keep(a, 3.0, 0.0, 1e6, 0.1)
    assert keep.tolist() == [True, False, True, False, True, False]
    assert group_l0_prox_keep(a, 3.0, 0.0, 0.0, 0.1).all()  # no penalty: keep all
    assert strongest_channels(a, 2).tolist() == [True, False, False, False, True, False]
    with pytest.raises(ValueError):
        group_l0_prox_keep(a, 3.0, -1.0, 1.0, 0.1)


def _zero_random_inputs(model, x, seed, frac=0.4):
    g = torch.Generator().manual_seed(seed)
    for b in width_boundaries(model, x):
        keep = torch.rand(b.width, generator=g) > frac
        keep[0] = True
        zero_input_channels(model, b, keep)


def _randomise_bn(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def test_lenet_boundaries_and_widths():
    net, x = lenet5_like(), torch.randn(2, 1, 28, 28)
    bounds = width_boundaries(net, x)
    assert [b.width for b in bounds] == [16, 48, 128, 96]
    assert [b.block for b in bounds] == [1, 16, 1, 1]  # 48 channels x 4 x 4 into fc1
    assert network_widths(net, x) == [1, 16, 48, 128, 96, 10]
    norms = input_channel_norms(net, bounds[1])
    w = net[7].weight.detach().reshape(128, 48, 16)
    torch.testing.assert_close(norms, w.pow(2).sum(dim=(0, 2)))


@pytest.mark.parametrize("name", ["lenet", "mobilenet", "alexnet"])
def test_extracted_network_equals_the_masked_one(name):
    torch.manual_seed(0)
    if name == "lenet":
        net, x = lenet5_like(), torch.randn(4, 1, 28, 28)
    elif name == "mobilenet":
        net = mobilenet_v1(widths=(8, 8, 16, 16, 16, 16, 24, 24, 24, 24, 24, 24, 32, 32),
                           n_classes=7)
        x = torch.randn(2, 3, 64, 64)
        _randomise_bn(net, 1)
    else:
        net, x = alexnet_widths((8, 12, 16, 12, 12, 32, 24), n_classes=5), torch.randn(2, 3, 224,
                                                                                     224)
    net.eval()
    _zero_random_inputs(net, x, seed=3)
    kept = kept_input_widths(net, width_boundaries(net, x))
    small = extract_input_pruned(net, x)
    with torch.no_grad():
        torch.testing.assert_close(small(x), net(x), rtol=1e-5, atol=1e-5)
    assert network_widths(small, x)[1:-1] == kept
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in net.parameters())
    if name == "mobilenet":  # depthwise convolutions shrink with their channels
        dws = [m for m in small.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
        assert [m.groups for m in dws] == kept[:13]


def test_unsupported_layers_are_named():
    class Odd(nn.Module):
        def forward(self, x):
            return x

    net = nn.Sequential(nn.Linear(4, 4), Odd(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="does not support Odd"):
        width_boundaries(net, torch.zeros(1, 4))
