import itertools

import pytest
import torch
from torch import nn

from lib.sparse import (
    attach_mask,
    bake,
    cubic_sparsity,
    get_mask,
    magnitude_mask,
    nested_magnitude_masks,
    sparsity_of,
)


def test_magnitude_mask_keeps_exactly_the_largest_by_brute_force():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        w = torch.randn(int(torch.randint(1, 12, (1,), generator=g)), generator=g)
        s = float(torch.rand(1, generator=g))
        mask = magnitude_mask(w, s)
        keep = w.numel() - round(s * w.numel())
        assert int(mask.sum()) == keep
        # brute force: no subset of the same size has a larger sum of |w|
        best = max((sum(abs(w[i]) for i in c) for c in itertools.combinations(range(len(w)), keep)),
                   default=0.0)
        assert torch.isclose((w.abs() * mask).sum(), torch.as_tensor(best, dtype=w.dtype))


def test_nested_masks_are_nested_and_match_single_masks():
    w = torch.randn(7, 9, generator=torch.Generator().manual_seed(1))
    levels = [0.0, 0.3, 0.5, 0.7, 0.9, 1.0]
    masks = nested_magnitude_masks(w, levels)
    for lo, hi in zip(masks, masks[1:], strict=False):
        assert bool((hi <= lo).all()), "a weight pruned at s must be pruned at every s' > s"
    for s, m in zip(levels, masks, strict=True):
        assert torch.equal(m, magnitude_mask(w, s))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        magnitude_mask(w, 1.5)


def test_mask_parametrization_forward_gradient_state_dict_and_bake():
    torch.manual_seed(0)
    layer = nn.Linear(6, 4)
    mask = magnitude_mask(layer.weight, 0.5)
    attach_mask(layer, mask)
    x = torch.randn(3, 6)
    expected = x @ (layer.parametrizations.weight.original * mask).T + layer.bias
    assert torch.allclose(layer(x), expected)
    layer(x).sum().backward()
    grad = layer.parametrizations.weight.original.grad
    assert torch.all(grad[mask == 0] == 0), "pruned weights get no gradient"
    # replacing the mask updates in place instead of stacking parametrizations
    attach_mask(layer, magnitude_mask(layer.weight, 0.75))
    assert len(layer.parametrizations.weight) == 1 and int(get_mask(layer).sum()) == 6
    # state_dict round trip into a fresh masked layer
    other = nn.Linear(6, 4)
    attach_mask(other, torch.ones(4, 6))
    other.load_state_dict(layer.state_dict())
    assert torch.equal(other.weight, layer.weight)
    model = nn.Sequential(layer)
    bake(model)
    assert not hasattr(layer, "parametrizations") and sparsity_of(model) == 0.75
    with pytest.raises(ValueError, match="mask shape"):
        attach_mask(nn.Linear(2, 2), torch.ones(3, 3))


def test_cubic_schedule_closed_form():
    assert cubic_sparsity(0, 0.9, 10, 110) == 0.0
    assert cubic_sparsity(110, 0.9, 10, 110) == 0.9
    assert cubic_sparsity(500, 0.9, 10, 110) == 0.9
    # halfway: s_f (1 - (1/2)^3) = 0.9 * 7/8
    assert cubic_sparsity(60, 0.9, 10, 110) == pytest.approx(0.9 * 7 / 8)
    values = [cubic_sparsity(t, 0.9, 10, 110) for t in range(0, 120)]
    assert all(b >= a for a, b in zip(values, values[1:], strict=False))
    with pytest.raises(ValueError, match="end_step"):
        cubic_sparsity(0, 0.5, 10, 10)
