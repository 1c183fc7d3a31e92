"""MAC counts against closed forms and torch's FLOP counter; the analytic energy model."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from lib.energy import EnergyModel, energy_pj, latency_s, layer_costs, total_macs
from lib.sparse import attach_mask, magnitude_mask


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 3, stride=2),
                         nn.Conv2d(4, 4, 1, groups=2), nn.Flatten(), nn.Linear(4 * 5 * 5, 10))


def test_dense_macs_match_closed_forms_and_torch_flop_counter():
    model, x = _net(), torch.randn(2, 3, 12, 12)
    costs = layer_costs(model, x)
    assert [c.name for c in costs] == ["0", "2", "3", "5"]
    closed = [2 * 8 * 3 * 9 * 12 * 12, 2 * 4 * 8 * 9 * 5 * 5, 2 * 4 * 2 * 1 * 5 * 5, 2 * 10 * 100]
    assert [c.macs for c in costs] == closed
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert 2 * total_macs(costs) == counter.get_total_flops()  # a MAC is two FLOPs
    assert costs[0].input_elems == x.numel() and costs[0].output_elems == 2 * 8 * 12 * 12


def test_transposed_convolution_macs_match_torch_flop_counter():
    torch.manual_seed(0)
    model = nn.Sequential(nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1),
                          nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1, groups=2))
    x = torch.randn(2, 6, 5, 5)
    costs = layer_costs(model, x)
    assert [c.kind for c in costs] == ["ConvTranspose2d", "ConvTranspose2d"]
    # every weight meets every *input* position: C_in (C_out / g) k^2 H_in W_in
    assert [c.macs for c in costs] == [2 * 6 * 4 * 9 * 25, 2 * 4 * 1 * 16 * 100]
    with FlopCounterMode(display=False) as counter:
        model(x)
    assert 2 * total_macs(costs) == counter.get_total_flops()


def test_effectual_macs_count_the_products_with_nonzero_weights():
    model, x = _net(), torch.randn(1, 3, 12, 12)
    attach_mask(model[0], magnitude_mask(model[0].weight, 0.75))
    attach_mask(model[5], magnitude_mask(model[5].weight, 0.9))
    costs = layer_costs(model, x)
    # brute force for the conv: unfold the input and count nonzero-weight products
    cols = nn.functional.unfold(x, 3, padding=1)  # (1, 27, 144)
    w = model[0].weight.flatten(1)
    products = (w != 0).float() @ torch.ones_like(cols[0])
    assert costs[0].effectual_macs == int(products.sum()) == int((w != 0).sum()) * 144
    assert costs[3].effectual_macs == int((model[5].weight != 0).sum())
    assert costs[1].effectual_macs == costs[1].macs  # unpruned layer


def test_energy_and_latency_closed_forms():
    model, x = _net(), torch.randn(1, 3, 12, 12)
    costs = layer_costs(model, x)
    em = EnergyModel(mac_pj=2.0, dram_pj_per_bit=10.0, sram_pj_per_bit=0.5, activation_bits=8,
                     macs_per_s=1e9, dram_bytes_per_s=1e6)
    e = energy_pj(costs, em)
    macs = sum(c.effectual_macs for c in costs)
    weights = sum(c.weights for c in costs)
    acts = sum(c.input_elems + c.output_elems for c in costs)
    assert e["compute_pj"] == 2.0 * macs and e["dram_pj"] == 10.0 * 32 * weights
    assert e["sram_pj"] == 0.5 * 8 * acts
    assert e["total_pj"] == pytest.approx(e["compute_pj"] + e["dram_pj"] + e["sram_pj"])
    small = energy_pj(costs, em, weight_bits=[4 * c.weights for c in costs])
    assert small["dram_pj"] == e["dram_pj"] / 8
    expected = sum(max(c.effectual_macs / 1e9, (32 * c.weights + 8 * (c.input_elems +
                   c.output_elems)) / 8 / 1e6) for c in costs)
    assert latency_s(costs, em) == pytest.approx(expected)
    with pytest.raises(ValueError, match="weight bit counts"):
        energy_pj(costs, em, weight_bits=[1])
    with pytest.raises(ValueError, match="mac_pj"):
        EnergyModel(mac_pj=-1.0)
