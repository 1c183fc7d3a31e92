"""The packed weight format: bit-exact round trips, and file sizes equal to the accounting."""

import numpy as np
import pytest
import torch

from lib.quant import kmeans_quantize, model_size_bits
from lib.quant.pack import (
    PackSpec,
    accounted_bits,
    best_spec,
    pack_codes,
    read_packed,
    relative_entries,
    unpack_codes,
    write_packed,
)


def _sparse(shape, keep, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    return w * (torch.rand(shape, generator=g) < keep)


@pytest.mark.parametrize("bits", [1, 3, 7, 32])
def test_codes_round_trip(bits):
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 2 ** bits, size=37, dtype=np.uint64)
    data = pack_codes(codes, bits)
    assert len(data) == (37 * bits + 7) // 8
    assert np.array_equal(unpack_codes(data, bits, 37), codes)


def test_codes_are_msb_first():
    # 3-bit codes 5 (101) and 2 (010): bits 101010, padded: 0b10101000
    assert pack_codes(np.array([5, 2]), 3) == bytes([0b10101000])


def test_relative_entries_match_the_accounting_and_a_hand_count():
    flat = torch.zeros(40)
    flat[[0, 3, 39]] = torch.tensor([1.0, 2.0, 3.0])
    fields, values = relative_entries(flat, 3)  # span 8: gaps 1, 3, 36 -> 1 + 1 + 5 entries
    assert fields.tolist() == [0, 2, 7, 7, 7, 7, 3]
    assert values.tolist() == [1.0, 2.0, 0, 0, 0, 0, 3.0]
    assert accounted_bits(flat, PackSpec(32, "relative", 3)) == 7 * (32 + 3)


def _model_weights():
    w1 = _sparse((16, 1, 5, 5), 0.3, 1)
    w2 = _sparse((32, 16, 3, 3), 0.05, 2)
    q = kmeans_quantize(_sparse((10, 64), 0.2, 3), 3).weight  # 8 nonzero centres
    dense = torch.randn(10, 8)
    return {"c1": w1, "c2": w2, "fc": q, "out": dense}


@pytest.mark.parametrize("index", ["bitmask", "relative"])
def test_file_round_trips_bit_exactly_and_its_size_is_the_accounting(tmp_path, index):
    weights = _model_weights()
    specs = {"c1": PackSpec(32, index, 4), "c2": PackSpec(32, index, 5),
             "fc": PackSpec(3, "bitmask"), "out": PackSpec(32, "none")}
    extras = {"c1.bias": torch.randn(16), "fc.bias": torch.randn(10)}
    rep = write_packed(tmp_path / "m.pack", weights, specs, extras)
    back = read_packed(tmp_path / "m.pack")
    for name, w in {**weights, **extras}.items():
        assert back[name].dtype == torch.float32
        # bit for bit; a zero is stored without its sign (-0.0 reads back as +0.0)
        assert torch.equal(back[name].view(torch.int32), (w + 0.0).view(torch.int32)), name
    # the accounting, layer by layer, by lib.quant.size
    expected = sum(model_size_bits([weights[n]], s.bits, index=s.index,
                                   index_bits=s.index_bits, codebook=s.codebook).total_bits
                   for n, s in specs.items())
    assert rep.accounted_bits == expected
    # the file = accounted bits + at most 7 padding bits per stream + header + extras
    assert rep.file_bytes == (tmp_path / "m.pack").stat().st_size
    assert 8 * rep.file_bytes == (expected + rep.padding_bits
                                  + 8 * (rep.header_bytes + rep.extra_bytes))
    assert 0 <= rep.padding_bits <= 3 * 7 * len(specs)
    assert rep.extra_bytes == 4 * (16 + 10)


def test_a_quantized_layer_is_stored_in_b_bits(tmp_path):
    q = kmeans_quantize(torch.randn(64, 64), 2).weight  # 4 nonzero centres (and some 0s)
    nnz = int((q != 0).sum())
    rep = write_packed(tmp_path / "q.pack", {"w": q}, {"w": PackSpec(2, "bitmask")})
    assert rep.layers[0]["values_bytes"] == (nnz * 2 + 7) // 8
    assert rep.layers[0]["index_bytes"] == 64 * 64 // 8
    assert rep.layers[0]["codebook"] == 4 * 4
    assert torch.equal(read_packed(tmp_path / "q.pack")["w"], q)


def test_relative_fillers_need_a_zero_code():
    flat = torch.zeros(100)
    flat[[0, 90]] = torch.tensor([1.0, 2.0])  # a gap of 90 > 16: fillers
    with pytest.raises(ValueError, match="codebook"):
        write_packed("/dev/null", {"w": flat}, {"w": PackSpec(1, "relative", 4)})
    # best_spec falls back to the bitmask, which needs no filler
    assert best_spec(flat, 1).index == "bitmask"


def test_dense_format_refuses_zeros():
    with pytest.raises(ValueError, match="zeros"):
        write_packed("/dev/null", {"w": torch.zeros(4)}, {"w": PackSpec(32, "none")})


def test_best_spec_picks_the_smaller_index():
    very_sparse = _sparse((4096,), 0.01, 5)
    half = _sparse((4096,), 0.5, 6)
    assert best_spec(very_sparse, 32, index_bits=8).index == "relative"
    assert best_spec(half, 32).index == "bitmask"
    assert best_spec(torch.randn(10), 32).index == "none"
