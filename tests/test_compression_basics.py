"""The Foundations compression chapter's module: pruning rules, quantizers and size rows."""

import pytest
import torch

from lib.papers import compression_basics as cb


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return cb.make_model(cb.CONFIGS["smoke"])


def test_pruning_rules_reach_their_sparsity_and_keep_the_output_layer(model):
    layers = cb.prunable_layers(model)
    n = sum(m.weight.numel() for _, m in layers)
    for method in cb.PRUNING_METHODS:
        pruned = cb.prune(model, method, 0.75)
        zeros = sum(int((m.weight == 0).sum()) for _, m in cb.prunable_layers(pruned))
        if method == "channel (structured)":
            out = cb.prunable_layers(pruned)[-1][1]
            assert bool((out.weight != 0).all()), "the class layer keeps its outputs"
            assert 0.5 < zeros / n < 0.8
        else:
            assert zeros == round(0.75 * n) or method == "layer-wise magnitude"
            assert abs(zeros / n - 0.75) < 0.01
    assert all(not hasattr(m, "parametrizations") for _, m in layers), "prune copies"
    with pytest.raises(ValueError, match="valid"):
        cb.prune(model, "random", 0.5)


def test_quantizers_limit_the_distinct_values_per_layer(model):
    """b bits on a dense layer: at most 2^b levels (not 2^b centres plus a free zero)."""
    for bits in (1, 3):
        for method, levels in (("uniform", max(2, 2 ** bits - 1)), ("k-means", 2 ** bits)):
            q = cb.quantize(model, method, bits)
            for _, m in cb.prunable_layers(q):
                # w + (q - w).detach() leaves float rounding of ~1e-9 in the STE output
                per_row = [torch.unique(r.round(decimals=6)).numel()
                           for r in m.weight.detach().flatten(1)]
                total = torch.unique(m.weight.detach()).numel()
                assert (max(per_row) if method == "uniform" else total) <= levels
                if method == "k-means":
                    assert total == levels, "a dense layer uses all its 2^b codes"


def test_one_bit_kmeans_of_a_dense_layer_is_the_two_means_split():
    """Closed form: 1-bit k-means of {-3, -1, 1, 3, 5} (no free zero) is the best split into
    two runs: {-3, -1} -> -2 and {1, 3, 5} -> 3, distortion 2 + 8 = 10."""
    model = torch.nn.Sequential(torch.nn.Linear(5, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[-3.0, -1.0, 1.0, 3.0, 5.0]]))
    q = cb.quantize(model, "k-means", 1)[0].weight.detach()
    assert torch.equal(q, torch.tensor([[-2.0, -2.0, 3.0, 3.0, 3.0]]))


def test_size_rows_follow_the_closed_forms(model):
    rows = {r["storage"]: r for r in cb.size_examples(model)}
    n = sum(m.weight.numel() for _, m in cb.prunable_layers(model))
    assert rows["dense float32"]["total_bits"] == 32 * n
    assert rows["dense 1-bit (binary)"]["ratio_vs_float32"] == pytest.approx(32)
    paper = rows["90 % pruned, 4-bit values, no index (paper accounting)"]
    assert paper["total_bits"] == 4 * paper["nonzeros"]
    bitmask = rows["90 % pruned, 4-bit values + bitmask index"]
    assert bitmask["total_bits"] == 4 * bitmask["nonzeros"] + n
    shared = rows["90 % pruned, 4-bit k-means values (15 centres + 0) + relative index + "
                  "codebook"]
    entries = sum(cb.relative_index_entries(w * cb.magnitude_mask(w, 0.9), 4)
                  for w in (m.weight.detach() for _, m in cb.prunable_layers(model)))
    layers = len(cb.prunable_layers(model))
    assert shared["total_bits"] == entries * (4 + 4) + layers * 16 * 32
    assert shared["nonzeros"] <= paper["nonzeros"], "k-means may round a small value to 0"


def test_relative_index_fillers_need_a_zero_code_in_the_codebook():
    """A relative index stores filler zeros: 16 nonzero centres leave no 4-bit code for 0."""
    w = torch.zeros(100)
    w[[0, 40, 80]] = torch.tensor([1.0, 2.0, 3.0])  # gaps of 40 > 2^4: fillers
    assert cb.relative_index_entries(w, 4) == 1 + 3 + 3
    ok = cb.model_size_bits([w], 2, index="relative", index_bits=4, codebook=True)
    assert ok.total_bits == 7 * (2 + 4) + 4 * 32  # 3 values + 0 fit in 2^2 codes
    with pytest.raises(ValueError, match="codes"):
        cb.model_size_bits([w], 1, index="relative", index_bits=4, codebook=True)
    dense = torch.arange(1.0, 5.0)  # no fillers: the 2^2 codes hold 4 nonzero values
    assert cb.model_size_bits([dense], 2, index="relative", index_bits=4,
                              codebook=True).total_bits == 4 * 6 + 4 * 32
