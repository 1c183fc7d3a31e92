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
    for method, levels in (("uniform", 2 ** 3 - 1), ("k-means", 2 ** 3 + 1)):
        q = cb.quantize(model, method, 3)
        for _, m in cb.prunable_layers(q):
            per_row = [torch.unique(r).numel() for r in m.weight.detach().flatten(1)]
            total = torch.unique(m.weight.detach()).numel()
            assert (max(per_row) if method == "uniform" else total) <= levels


def test_size_rows_follow_the_closed_forms(model):
    rows = {r["storage"]: r for r in cb.size_examples(model)}
    n = sum(m.weight.numel() for _, m in cb.prunable_layers(model))
    assert rows["dense float32"]["total_bits"] == 32 * n
    assert rows["dense 1-bit (binary)"]["ratio_vs_float32"] == pytest.approx(32)
    paper = rows["90 % pruned, 4-bit values, no index (paper accounting)"]
    assert paper["total_bits"] == 4 * paper["nonzeros"]
    bitmask = rows["90 % pruned, 4-bit values + bitmask index"]
    assert bitmask["total_bits"] == 4 * bitmask["nonzeros"] + n
