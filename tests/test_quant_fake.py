"""Uniform fake quantization: values against closed forms, STE gradients, composition with
masks, state_dict round trips."""

import pytest
import torch
from torch import nn

from lib.quant import FakeQuantize, attach_fake_quant, fake_quantize, get_fake_quant
from lib.sparse import attach_mask, bake, get_mask, magnitude_mask


def test_symmetric_values_match_the_closed_form():
    w = torch.tensor([-1.0, -0.34, 0.0, 0.1, 0.5, 0.76])
    # 3 bits: q_max = 3, s = 1/3; round(w * 3) = -3, -1, 0, 0, 2 (1.5 -> 2, half to even), 2
    assert torch.allclose(fake_quantize(w, 3), torch.tensor([-3, -1, 0, 0, 2, 2]) / 3.0)
    # 1 bit: alpha = mean |w| over nonzeros; sign keeps the zero
    alpha = w.abs().sum() / 5
    assert torch.allclose(fake_quantize(w, 1), alpha * torch.sign(w))
    g = torch.Generator().manual_seed(0)
    for bits in range(2, 9):
        x = torch.randn(50, generator=g)
        q = fake_quantize(x, bits)
        s = x.abs().max() / (2 ** (bits - 1) - 1)
        levels = q / s
        assert torch.allclose(levels, levels.round(), atol=1e-4)
        assert len(torch.unique(levels.round())) <= 2 ** bits - 1
        assert float((q - x).abs().max()) <= float(s) / 2 + 1e-6


def test_asymmetric_and_per_channel_values_match_the_closed_form():
    w = torch.tensor([0.2, 0.5, 1.7, 3.0])  # all positive: range [0, 3]
    # 2 bits: s = 1, z = 0 -> round(w) = 0, 0 (0.5 -> 0, half to even), 2, 3
    assert torch.allclose(fake_quantize(w, 2, symmetric=False), torch.tensor([0.0, 0, 2, 3]))
    w = torch.tensor([[-2.0, 0.0, 1.0, 2.0], [0.1, -0.3, 0.2, 0.0]])
    q = fake_quantize(w, 2, per_channel=True)  # q_max = 1, s = max|row|; 1/2 rounds to 0
    assert torch.allclose(q, torch.tensor([[-2.0, 0, 0, 2], [0, -0.3, 0.3, 0]]))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 20, generator=g)
    for bits in (2, 4, 8):
        q = fake_quantize(x, bits, symmetric=False, per_channel=True)
        lo = x.amin(1, keepdim=True).clamp(max=0)
        hi = x.amax(1, keepdim=True).clamp(min=0)
        s = (hi - lo) / (2 ** bits - 1)
        assert bool(((q - x).abs() <= s / 2 + 1e-6).all())
        assert all(len(torch.unique(r)) <= 2 ** bits for r in q)


def test_zero_stays_zero_so_masks_and_quantizers_compose():
    g = torch.Generator().manual_seed(2)
    for symmetric in (True, False):
        for bits in (1, 2, 4, 8):
            layer = nn.Linear(16, 8)
            mask = magnitude_mask(layer.weight, 0.6)
            attach_mask(layer, mask)
            attach_fake_quant(layer, bits, symmetric=symmetric)
            assert len(layer.parametrizations.weight) == 2
            w = layer.weight
            assert bool((w[mask == 0] == 0).all()), "pruned weights must stay exactly zero"
            expected = fake_quantize(layer.parametrizations.weight.original * mask, bits,
                                     symmetric=symmetric)
            assert torch.equal(w, expected)
    x = torch.randn(4, 16, generator=g)
    layer(x).sum().backward()
    grad = layer.parametrizations.weight.original.grad
    assert bool((grad[get_mask(layer) == 0] == 0).all())


def test_straight_through_gradient_is_the_identity():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(5, 7, generator=g, requires_grad=True)
    upstream = torch.randn(5, 7, generator=g)
    (fake_quantize(w, 3, per_channel=True) * upstream).sum().backward()
    assert torch.equal(w.grad, upstream)
    layer = nn.Linear(7, 5)
    attach_fake_quant(layer, 4)
    x = torch.randn(3, 7, generator=g)
    out = layer(x)
    out.sum().backward()
    # d/dW of sum(x W^T) is sum_rows(x) for every output row, whatever Q does
    expected = x.sum(0).expand(5, 7)
    assert torch.allclose(layer.parametrizations.weight.original.grad, expected, atol=1e-6)


def test_quantizer_and_mask_survive_state_dict_save_and_load(tmp_path):
    torch.manual_seed(4)
    src = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    attach_mask(src[0], magnitude_mask(src[0].weight, 0.5))
    attach_fake_quant(src[0], 3, per_channel=True)
    attach_fake_quant(src[2], 5)
    torch.save(src.state_dict(), tmp_path / "m.pt")
    dst = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    attach_mask(dst[0], torch.ones(4, 6))
    attach_fake_quant(dst[0], 8, per_channel=True)
    attach_fake_quant(dst[2], 8)
    dst.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    assert int(get_fake_quant(dst[0]).bits) == 3 and int(get_fake_quant(dst[2]).bits) == 5
    assert torch.equal(get_mask(dst[0]), get_mask(src[0]))
    x = torch.randn(3, 6)
    assert torch.equal(dst(x), src(x))
    bake(dst)  # quantized, masked values become plain parameters
    assert torch.equal(dst(x), src(x)) and not hasattr(dst[0], "parametrizations")


def test_attach_twice_updates_bits_and_bad_bits_are_rejected():
    layer = nn.Linear(3, 3)
    attach_fake_quant(layer, 4)
    attach_fake_quant(layer, 2)
    assert len(layer.parametrizations.weight) == 1 and int(get_fake_quant(layer).bits) == 2
    for bad in (0, 9, 2.5, True):
        with pytest.raises(ValueError, match="1..8"):
            FakeQuantize(bad)
    assert get_fake_quant(nn.Linear(2, 2)) is None
