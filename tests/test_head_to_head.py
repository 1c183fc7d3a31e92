"""The capstone: deployable forms compute what the model computes, every method's model
meets its budget, the Pareto front is the brute-force one."""

import itertools
import math

import pytest
import torch
from torch import nn

from lib.core import ArtifactCache, with_knobs
from lib.papers import head_to_head as h2h
from lib.papers.head_to_head import deploy
from lib.sparse import attach_mask, bake, global_magnitude_masks, prunable_layers
from lib.sparse.extract import attach_channel_mask
from lib.vision.models import lenet5_like


def _sparse_net(sparsity=0.9, seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, stride=2), nn.ReLU(),
                        nn.Conv2d(8, 6, 3, padding=(0, 1), dilation=(1, 2)), nn.ReLU(),
                        nn.Flatten(), nn.LazyLinear(5))
    net(torch.randn(1, 3, 12, 12))
    layers = prunable_layers(net)
    for (_, layer), mask in zip(layers, global_magnitude_masks(layers, sparsity), strict=False):
        attach_mask(layer, mask.float())
    return bake(net).eval()


def test_csr_form_gives_the_dense_outputs():
    net = _sparse_net()
    x = torch.randn(4, 3, 12, 12)
    csr = deploy.csr_form(net)
    assert any(isinstance(m, deploy.CSRConv2d) for m in csr.modules())
    assert any(isinstance(m, deploy.CSRLinear) for m in csr.modules())
    with torch.no_grad():
        torch.testing.assert_close(csr(x), net(x), rtol=1e-5, atol=1e-5)
        # batch 1, the timed case
        torch.testing.assert_close(csr(x[:1]), net(x[:1]), rtol=1e-5, atol=1e-5)


def test_csr_stores_only_the_nonzeros():
    net = _sparse_net(0.95)
    csr = deploy.csr_form(net)
    nnz = sum(int((m.weight != 0).sum()) for _, m in prunable_layers(net))
    stored = sum(m.weight_csr.values().numel() for m in csr.modules()
                 if isinstance(m, (deploy.CSRConv2d, deploy.CSRLinear)))
    assert stored == nnz


def test_dense_form_refuses_a_parametrized_model():
    net = lenet5_like()
    attach_mask(net[0], torch.ones_like(net[0].weight))
    with pytest.raises(ValueError, match="bake"):
        deploy.dense_form(net)


def test_extracted_form_is_smaller_and_equal():
    torch.manual_seed(0)
    net = lenet5_like().eval()
    for layer in (net[0], net[3], net[7]):
        keep = torch.rand(layer.weight.shape[0]) < 0.5
        attach_channel_mask(layer, keep)
    bake(net)
    x = torch.randn(3, 1, 28, 28)
    small = deploy.extracted_form(net, x[:2])
    assert h2h.experiment.n_weights(small) < 0.5 * h2h.experiment.n_weights(net)
    with torch.no_grad():
        torch.testing.assert_close(small(x), net(x), rtol=1e-5, atol=1e-5)


def test_onnx_runtime_forms_match_pytorch():
    torch.manual_seed(0)
    net = lenet5_like().eval()
    x = torch.randn(64, 1, 28, 28)
    fp32 = deploy.onnx_form(net, x)
    with torch.no_grad():
        ref = net(x)
        torch.testing.assert_close(fp32(x), ref, rtol=1e-4, atol=1e-5)
        q = deploy.int8_form(net, x)(x)
    # int8: close to float32 but not equal (a no-op "quantizer" would be equal)
    rel = float((q - ref).norm() / ref.norm())
    assert 0 < rel < 0.1


def test_pareto_front_is_the_brute_force_one():
    g = torch.Generator().manual_seed(3)
    pts = [(float(c), float(a)) for c, a in torch.rand(25, 2, generator=g)]
    brute = [i for i, (c, a) in enumerate(pts)
             if not any((c2 <= c and a2 >= a) and (c2, a2) != (c, a) for c2, a2 in pts)]
    assert sorted(h2h.pareto_front(pts)) == sorted(brute)


def test_latencies_time_every_form_interleaved():
    net = _sparse_net()
    stats = deploy.latencies({"dense": net, "csr": deploy.csr_form(net)},
                             torch.randn(1, 3, 12, 12), rounds=3, number=2, warmup=1)
    assert set(stats) == {"dense", "csr"}
    for s in stats.values():
        assert s["median_ms"] > 0 and len(s["blocks_ms"]) == 3 and s["iqr_ms"] >= 0


TINY = with_knobs(h2h.CONFIGS["smoke"], n_train=200, n_dev=20, n_test=50, dense_steps=10,
                  steps=4, ratios=(8.0,), seeds=(0,), calibration=16)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    cache = ArtifactCache(tmp_path_factory.mktemp("cache"))
    return h2h.runs_of(TINY, cache)


def test_every_method_meets_its_budget(tiny_runs):
    n = h2h.experiment.n_weights(lenet5_like())
    by = {r["method"]: r for r in tiny_runs}
    assert set(by) == {"dense", *h2h.METHODS}
    for r in tiny_runs:
        assert h2h.meets_budget(r, n), r["method"]
    budget = math.floor(32 * n / 8.0)
    # the size methods within the size budget, checked from the stored weights
    for method in ("global-magnitude", "joint-admm"):
        net = h2h.experiment.model_of(by[method])
        nnz = [int((m.weight != 0).sum()) for _, m in prunable_layers(net)]
        bits = by[method]["info"]["bits"]
        assert sum(b * k for b, k in zip(bits, nnz, strict=False)) <= budget, method
    assert max(by["joint-admm"]["info"]["bits"]) <= 8  # quantized, not float32
    small = deploy.extracted_form(h2h.experiment.model_of(by["channel-magnitude"]),
                                  torch.randn(2, 1, 28, 28))
    assert 32 * h2h.experiment.n_weights(small) <= budget
    # the energy method: within the energy of magnitude pruning at the same ratio, and
    # actually pruned (a no-op would keep the dense energy)
    e = by["energy-projection"]
    assert e["energy"] <= e["info"]["energy_budget"] * (1 + 1e-9) < by["dense"]["energy"]


def test_bytes_on_disk_follow_the_accounting(tiny_runs):
    for r in tiny_runs:
        # file = packed accounted bits + byte padding + header + biases
        assert 8 * r["file_bytes"] == (r["packed_accounted_bits"] + r["padding_bits"]
                                       + 8 * (r["header_bytes"] + r["extra_bytes"]))
        assert r["packed_accounted_bits"] >= r["paper_bits"]  # the index costs bits
    dense = next(r for r in tiny_runs if r["method"] == "dense")
    assert dense["packed_accounted_bits"] == dense["paper_bits"]  # no index, no codebook


def test_tables_cover_every_method(tiny_runs):
    out = {"runs": tiny_runs, "dense_accuracy": 0.5, "n_weights": 1,
           "latency": {f"{r['method']}|{r['ratio']:g}|{r['seed']}|{f}":
                       {"median_ms": 1.0, "iqr_ms": 0.1, "blocks_ms": [1.0, 1.0]}
                       for r in tiny_runs for f in h2h.FORMS[r["method"]]}}
    out["n_weights"] = h2h.experiment.n_weights(lenet5_like())
    rows = h2h.summary_rows(out)
    assert {r["method"] for r in rows} == {"dense", *h2h.METHODS}
    from lib.papers.head_to_head import figures

    speed = figures.speed_rows(out, rows)
    assert all(not s["buys_speed"] for s in speed)  # equal fake latencies: no speed-up
    assert all(itertools.starmap(lambda a, b: a <= b, [(r["acc_vs_dense_low"],
                                                         r["acc_vs_dense_high"]) for r in rows]))


def test_speed_rows_call_speed_only_what_beats_identical_work(tiny_runs):
    from lib.papers.head_to_head import figures

    lat = {}
    for r in tiny_runs:
        for f in h2h.FORMS[r["method"]]:
            ms = 0.5 if f == "extracted" else 1.0  # only the extracted network is faster
            lat[f"{r['method']}|{r['ratio']:g}|{r['seed']}|{f}"] = {
                "median_ms": ms, "iqr_ms": 0.0, "blocks_ms": [ms, ms]}
    out = {"runs": tiny_runs, "latency": lat, "dense_accuracy": 0.5,
           "n_weights": h2h.experiment.n_weights(lenet5_like())}
    speed = figures.speed_rows(out, h2h.summary_rows(out))
    buys = {s["method"]: s["buys_speed"] for s in speed}
    assert buys == {"global-magnitude": False, "channel-magnitude": True, "joint-admm": False,
                    "energy-projection": False}
    assert figures.pooled_reference(out, "dense") == {"median_ms": 1.0, "relative_iqr": 0.0}
