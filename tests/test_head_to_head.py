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


def test_size_cost_model_is_the_exact_weight_count():
    """ECC's bilinear cost, as the capstone sets it, equals the weights of lenet5_like
    built at the widths (brute force), relative to the dense count."""
    from lib.energy.bilinear import CostModel  # noqa: F401  (the type under test)

    net = lenet5_like()
    cost = h2h.experiment.size_cost_model(net, torch.zeros(2, 1, 28, 28))
    n = h2h.experiment.n_weights(net)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        w = [int(torch.randint(1, u + 1, (1,), generator=g)) for u in (16, 48, 128, 96)]
        small = lenet5_like(widths=(w[0], w[1]), hidden=(w[2], w[3]))
        exact = h2h.experiment.n_weights(small) / n
        assert cost.predict([1, *w, 10])[0] == pytest.approx(exact, rel=1e-12)


def test_channel_scales_fold_exactly_and_the_cut_meets_its_budget():
    from lib.papers.head_to_head import slimming

    torch.manual_seed(0)
    net = lenet5_like().eval()
    gated, scales = slimming.with_scales(net)
    assert len(scales) == 4
    with torch.no_grad():
        for s in scales:
            s.gamma.uniform_(-1, 1)
            s.gamma[:2] = 0
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        ref = gated(x)
        for (_, layer), s in zip(prunable_layers(net), scales, strict=False):
            layer.weight.mul_(s.gamma.view([-1] + [1] * (layer.weight.dim() - 1)))
            layer.bias.mul_(s.gamma)
        torch.testing.assert_close(net(x), ref, rtol=1e-5, atol=1e-5)
    gates = [s.gamma.detach() for s in scales]
    budget = 20000
    keep = slimming.cut_to_budget(gates, net, budget)
    assert slimming.slim_weights(net, keep) <= budget
    assert all(not bool(k[:2].any()) for k in keep)  # zero gates are dropped first
    for k, g in zip(keep, gates, strict=True):  # what is kept has the largest gates
        if bool((~k).any()) and bool(k.any()):
            assert float(g.abs()[k].min()) >= float(g.abs()[~k].max())


def test_gs_prox_zeroes_gates_only_with_rho():
    from lib.papers.head_to_head import slimming

    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28)
    kw = dict(steps=30, finetune_steps=2, batch_size=16, lr_w=1e-4, lr_gamma=0.05,
              beta=1.0, bits=8, max_weights=10 ** 6, seed=0)
    teacher = lenet5_like().eval()
    on = slimming.gs_classifier(lenet5_like(), teacher, x, rho=2.0, **kw)
    off = slimming.gs_classifier(lenet5_like(), teacher, x, rho=0.0, **kw)
    assert on["gamma_zero"] > 0.5 and off["gamma_zero"] == 0.0


def test_latencies_time_every_form_interleaved():
    net = _sparse_net()
    stats = deploy.latencies({"dense": net, "csr": deploy.csr_form(net)},
                             torch.randn(1, 3, 12, 12), rounds=3, number=2, warmup=1)
    assert set(stats) == {"dense", "csr"}
    for s in stats.values():
        assert s["median_ms"] > 0 and len(s["blocks_ms"]) == 3 and s["iqr_ms"] >= 0


TINY = with_knobs(h2h.CONFIGS["smoke"], n_train=200, n_dev=20, n_test=50, dense_steps=10,
                  steps=4, ratios=(8.0,), seeds=(0,), calibration=16, n_pgd=20,
                  methods=tuple(m for m in h2h.METHODS if m != "ecc"))
#: ECC's widths shrink at most ``s_lr`` channels a step: it reaches 1/8 of the weights after
#: a few hundred steps (about 550 at this size), so it gets its own, longer tiny run.
TINY_ECC = with_knobs(TINY, steps=700)


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    cache = ArtifactCache(tmp_path_factory.mktemp("cache"))
    return h2h.runs_of(TINY, cache) + [h2h.compress(TINY_ECC, "ecc", 8.0, 0, cache)]


def test_every_method_meets_its_budget(tiny_runs):
    n = h2h.experiment.n_weights(lenet5_like())
    by = {r["method"]: r for r in tiny_runs}
    assert set(by) == {"dense", *h2h.METHODS}
    for r in tiny_runs:
        assert h2h.meets_budget(r, n), r["method"]
    budget = math.floor(32 * n / 8.0)
    # ATMC: the l0 budget over its factors at 8 bits, each factor a <= 2^8-value codebook
    factors = by["atmc"]["info"]["factors"]
    assert 8 * sum(int((t != 0).sum()) for t in factors.values()) <= budget
    assert all(torch.unique(t).numel() <= 256 for t in factors.values())
    assert by["atmc"]["paper_bits"] == 8 * sum(int((t != 0).sum()) for t in factors.values())
    # GS: the extracted network, 8-bit values (at most 255 levels per layer), in budget
    gs = deploy.extracted_form(h2h.experiment.model_of(by["gs-slimming"]),
                               torch.randn(2, 1, 28, 28))
    assert 8 * h2h.experiment.n_weights(gs) <= budget
    assert all(torch.unique(m.weight).numel() <= 255 for _, m in prunable_layers(gs))
    # ECC: the input-pruned network, 32-bit values, in budget
    ecc = h2h.experiment.deployable_of(h2h.experiment.model_of(by["ecc"]), "ecc",
                                       torch.randn(2, 1, 28, 28))
    assert 32 * h2h.experiment.n_weights(ecc) <= budget
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
                    "energy-projection": False, "atmc": False, "ecc": True,
                    "gs-slimming": True}
    assert figures.pooled_reference(out, "dense") == {"median_ms": 1.0, "relative_iqr": 0.0}
