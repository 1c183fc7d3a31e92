"""Channel and N:M masks, global magnitude masks, and physical channel extraction."""

import itertools

import pytest
import torch
from torch import nn

from lib.sparse import (
    attach_mask,
    channel_mask,
    extract_channel_pruned,
    global_magnitude_masks,
    magnitude_mask,
    nm_mask,
    prunable_layers,
)
from lib.sparse.extract import attach_channel_mask


def test_channel_mask_keeps_the_largest_norm_channels_by_brute_force():
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        c = int(torch.randint(1, 7, (1,), generator=g))
        w = torch.randn(c, 3, 2, 2, generator=g)
        s = float(torch.rand(1, generator=g))
        mask = channel_mask(w, s)
        kept = mask.flatten(1).amax(1)
        assert torch.equal(mask, kept.view(-1, 1, 1, 1).expand_as(w)), "whole channels only"
        keep = c - round(s * c)
        assert int(kept.sum()) == keep
        norms = w.flatten(1).norm(dim=1)
        best = max(sum(norms[list(t)] ** 2) for t in itertools.combinations(range(c), keep)) \
            if keep else 0.0
        assert float((norms ** 2 * kept).sum()) == pytest.approx(float(best), rel=1e-6)
    m = channel_mask(torch.randn(4, 6), 0.5, dim=1)  # input channels of a linear weight
    assert torch.equal(m[0], m[3]) and int(m[0].sum()) == 3


def test_nm_mask_keeps_n_of_every_m_along_the_input_dim():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(5, 8, 3, 3, generator=g)
    mask = nm_mask(w, 2, 4)
    groups = mask.movedim(1, -1).reshape(-1, 4)
    assert bool((groups.sum(1) == 2).all())
    vals = w.abs().movedim(1, -1).reshape(-1, 4)
    kept_min = torch.where(groups > 0, vals, torch.inf).amin(1)
    dropped_max = torch.where(groups == 0, vals, -torch.inf).amax(1)
    assert bool((kept_min >= dropped_max).all())
    lin = nm_mask(torch.randn(3, 6, generator=g), 1, 3)
    assert bool((lin.view(3, 2, 3).sum(-1) == 1).all())
    with pytest.raises(ValueError, match="multiple of m"):
        nm_mask(torch.randn(3, 7), 2, 4)
    with pytest.raises(ValueError, match="n <= m"):
        nm_mask(torch.randn(3, 8), 5, 4)


def test_global_magnitude_masks_use_one_threshold_across_layers():
    g = torch.Generator().manual_seed(2)
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    with torch.no_grad():
        model[2].weight.mul_(10)  # the second layer is larger: it should keep more
    masks = global_magnitude_masks(prunable_layers(model), 0.8)
    flat = torch.cat([m.weight.abs().flatten() for _, m in prunable_layers(model)])
    joint = magnitude_mask(flat, 0.8)
    assert torch.equal(torch.cat([m.flatten() for m in masks]), joint)
    assert masks[1].mean() > masks[0].mean()
    masks_t = global_magnitude_masks([torch.randn(5, generator=g),
                                      torch.randn(7, generator=g)], 0.5)
    assert sum(int(m.sum()) for m in masks_t) == 6


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Sequential(nn.Conv2d(8, 12, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Conv2d(12, 6, 3), nn.ReLU(), nn.Flatten(),
        nn.Linear(6 * 2 * 2, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4))
    bn = model[1]
    with torch.no_grad():  # non-trivial running statistics
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return model.eval()


def test_extracted_network_is_smaller_and_computes_the_same_outputs():
    model = _cnn()
    x = torch.randn(5, 3, 8, 8)
    # prune channels: with BN (masked too), a plain conv, a conv before Flatten, a neuron
    attach_channel_mask(model[0], torch.tensor([1, 0, 1, 1, 0, 1, 1, 0]), norm=model[1])
    attach_channel_mask(model[3][0], torch.tensor([1, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1]))
    attach_channel_mask(model[4], torch.tensor([1, 0, 1, 1, 0, 1]))
    attach_channel_mask(model[7], (torch.arange(16) % 3 != 0))
    expected = model(x)
    small = extract_channel_pruned(model, x)
    assert torch.allclose(small(x), expected, atol=1e-5)
    assert [m.weight.shape[0] for m in small if isinstance(m, (nn.Conv2d, nn.Linear))] == \
        [5, 9, 4, 10, 4]
    # nested Sequentials are flattened: conv, bn, relu, conv, relu, pool, conv, relu, ...
    assert small[3].weight.shape[1] == 5 and small[6].weight.shape[1] == 9
    assert small[9].weight.shape[1] == 4 * 2 * 2 and small[12].weight.shape[1] == 10
    n_small = sum(p.numel() for p in small.parameters())
    n_big = sum(p.numel() for p in model.parameters())
    assert n_small < 0.7 * n_big


def test_nonzero_constant_channels_fold_into_linear_or_unpadded_conv_and_fail_otherwise():
    torch.manual_seed(1)
    # weight rows zeroed but bias kept: the channel outputs relu(bias), a constant
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(3 * 2 * 2, 2)).eval()
    with torch.no_grad():
        model[0].bias.copy_(torch.tensor([0.3, 0.5, -0.2, 0.1]))
        model[2].bias.copy_(torch.tensor([0.4, 0.2, 0.7]))
    attach_mask(model[0], channel_mask(model[0].weight, 0.0) * torch.tensor(
        [1.0, 0, 1, 0]).view(-1, 1, 1, 1))
    attach_mask(model[2], torch.tensor([1.0, 0, 1]).view(-1, 1, 1, 1).expand(3, 4, 3, 3).clone())
    x = torch.randn(3, 2, 6, 6)
    small = extract_channel_pruned(model, x)
    assert torch.allclose(small(x), model(x), atol=1e-5)
    assert small[0].weight.shape[0] == 2 and small[2].weight.shape[0] == 2
    padded = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1)).eval()
    with torch.no_grad():
        padded[0].bias.fill_(0.5)
    keep = torch.tensor([1.0, 0, 1, 1]).view(-1, 1, 1, 1)
    attach_mask(padded[0], keep.expand(4, 2, 3, 3).clone())
    with pytest.raises(ValueError, match="attach_channel_mask"):
        extract_channel_pruned(padded, x)
    with pytest.raises(ValueError, match="does not support"):
        extract_channel_pruned(nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)), torch.randn(1, 3))
