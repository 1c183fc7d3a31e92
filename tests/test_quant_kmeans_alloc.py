"""k-means with a zero centre vs brute force; bit allocation (MCKP) vs enumeration;
model size in bits vs a plain encoder."""

import itertools

import numpy as np
import pytest
import torch

from lib.quant import (
    allocate_bits,
    assign_to_codebook,
    convex_hull_options,
    kmeans_1d_multi,
    kmeans_quantize,
    model_size_bits,
    multiple_choice_knapsack,
    multiple_choice_knapsack_exact,
    zero_kmeans_1d_exact,
    zero_kmeans_1d_multi,
)


def _brute_kmeans(x: np.ndarray, k: int) -> float:
    """Every assignment of the points to {zero, centre 1..k}; free centres at their means."""
    best = np.inf
    for labels in itertools.product(range(k + 1), repeat=x.size):
        labels = np.array(labels)
        cost = float((x[labels == 0] ** 2).sum())
        for c in range(1, k + 1):
            pts = x[labels == c]
            if pts.size:
                cost += float(((pts - pts.mean()) ** 2).sum())
        best = min(best, cost)
    return best


def test_exact_zero_kmeans_equals_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(1, 7))
        k = int(rng.integers(1, 4))
        x = rng.normal(size=n) * rng.choice([0.1, 1.0, 3.0])
        codebook, dist = zero_kmeans_1d_exact(torch.tensor(x), k)
        assert dist == pytest.approx(_brute_kmeans(x, k), abs=1e-10)
        assert 0.0 in codebook.tolist() and codebook.numel() == k + 1
        # the returned codebook attains the distortion by nearest assignment
        q = assign_to_codebook(torch.tensor(x), codebook)
        assert float(((q - torch.tensor(x)) ** 2).sum()) == pytest.approx(dist, abs=1e-10)


def test_fast_zero_kmeans_is_exact_for_every_k_at_once():
    rng = np.random.default_rng(1)
    for trial in range(120):
        n = int(rng.integers(1, 70))
        x = rng.laplace(size=n) if trial % 2 else rng.normal(size=n) + rng.choice([0.0, 2.0])
        if trial % 5 == 0:
            x = np.abs(x)  # one-sided layers
        ks = [1, 2, 4, 8]
        fits = zero_kmeans_1d_multi(torch.tensor(x), ks)
        for k, (codebook, dist) in zip(ks, fits, strict=True):
            _, opt = zero_kmeans_1d_exact(torch.tensor(x), k)
            assert dist == pytest.approx(opt, rel=1e-9, abs=1e-10), (trial, k)
            q = assign_to_codebook(torch.tensor(x), codebook).numpy()
            assert float(((q - x) ** 2).sum()) == pytest.approx(dist, rel=1e-9, abs=1e-10)
            assert codebook.numel() == k + 1 and 0.0 in codebook.tolist()


def test_plain_kmeans_equals_brute_force_and_the_two_row_solvers_agree():
    from lib.quant.kmeans import _bins, _dc_row, _dense_row, _sse_matrix

    rng = np.random.default_rng(5)
    for _ in range(60):
        x = rng.normal(size=int(rng.integers(1, 7)))
        for k, (codebook, dist) in zip((1, 2, 3), kmeans_1d_multi(torch.tensor(x), [1, 2, 3]),
                                       strict=True):
            best = np.inf
            for labels in itertools.product(range(k), repeat=x.size):
                labels = np.array(labels)
                best = min(best, sum(float(((x[labels == c] - x[labels == c].mean()) ** 2).sum())
                                     for c in range(k) if (labels == c).any()))
            assert dist == pytest.approx(best, abs=1e-10)
            assert codebook.numel() == k
    for _ in range(20):  # divide and conquer = brute-force minimum, row by row
        w, s, q = _bins(np.sort(rng.laplace(size=int(rng.integers(2, 300))))[::-1], 10_000)
        prev = np.where(np.arange(w.size) == 0, 0.0, np.inf)
        sse = _sse_matrix(w, s, q)
        for _ in range(4):
            fast, _ = _dc_row(prev, w, s, q)
            slow, _ = _dense_row(prev, sse)
            assert np.allclose(fast[1:], slow[1:], rtol=1e-9, atol=1e-12)
            prev = np.minimum(prev, fast)


def test_binned_zero_kmeans_is_never_below_the_optimum_and_close_to_it():
    rng = np.random.default_rng(2)
    ks = [2, 4, 8, 16]
    for trial in range(6):
        x = torch.tensor(rng.laplace(size=3000) if trial % 2 else rng.normal(size=3000))
        optimal = zero_kmeans_1d_multi(x, ks, max_bins=3000)  # exact (tested above)
        binned = zero_kmeans_1d_multi(x, ks, max_bins=128)
        for (_, opt), (codebook, dist) in zip(optimal, binned, strict=True):
            assert opt - 1e-9 <= dist <= 1.01 * opt
            q = assign_to_codebook(x, codebook)
            assert float(((q - x) ** 2).sum()) == pytest.approx(dist, rel=1e-9)


def test_kmeans_quantize_keeps_zeros_and_uses_at_most_2_to_the_b_nonzero_values():
    g = torch.Generator().manual_seed(2)
    w = torch.randn(64, 32, generator=g)
    w[w.abs() < 0.8] = 0.0
    for bits in (1, 2, 3, 4):
        r = kmeans_quantize(w, bits)
        assert bool((r.weight[w == 0] == 0).all())
        nonzero_values = torch.unique(r.weight[r.weight != 0])
        assert nonzero_values.numel() <= 2 ** bits
        assert r.distortion == pytest.approx(float(((w - r.weight).double() ** 2).sum()))
        r0 = kmeans_quantize(w, bits, zero_counts=True)
        assert torch.unique(r0.weight).numel() <= 2 ** bits
    dists = [kmeans_quantize(w, b).distortion for b in range(1, 7)]
    assert all(b < a for a, b in zip(dists, dists[1:], strict=False))
    with pytest.raises(ValueError, match="bits"):
        kmeans_quantize(w, 0)


def _brute_mckp(costs, dists, budget):
    best, arg = np.inf, None
    for choice in itertools.product(*[range(len(c)) for c in costs]):
        c = sum(costs[j][i] for j, i in enumerate(choice))
        d = sum(dists[j][i] for j, i in enumerate(choice))
        if c <= budget and (d < best - 1e-12):
            best, arg = d, choice
    return best, arg


def test_mckp_exact_equals_enumeration_and_greedy_is_within_one_hull_step():
    rng = np.random.default_rng(3)
    gaps = []
    for trial in range(300):
        groups = int(rng.integers(1, 5))
        options = int(rng.integers(1, 5))
        costs = [rng.integers(1, 10, options).tolist() for _ in range(groups)]
        if trial % 2:  # bit-allocation shaped: cost b * n, distortion ~ 4^-b
            n = rng.integers(1, 20, groups)
            costs = [[b * int(nj) for b in range(1, options + 1)] for nj in n]
            dists = [[float(s * 4.0 ** -b * (1 + 0.3 * rng.random())) for b in
                      range(1, options + 1)] for s in rng.random(groups) * 10]
        else:
            dists = [rng.random(options).round(2).tolist() for _ in range(groups)]
        lo = sum(min(c) for c in costs)
        budget = float(rng.integers(lo, sum(max(c) for c in costs) + 1))
        best, _ = _brute_mckp(costs, dists, budget)
        exact = multiple_choice_knapsack_exact(costs, dists, budget)
        greedy = multiple_choice_knapsack(costs, dists, budget)
        for choice in (exact, greedy):
            assert sum(costs[j][i] for j, i in enumerate(choice)) <= budget
        d_exact = sum(dists[j][i] for j, i in enumerate(exact))
        d_greedy = sum(dists[j][i] for j, i in enumerate(greedy))
        assert d_exact == pytest.approx(best)
        max_step = max(max(d) - min(d) for d in dists)
        assert best - 1e-9 <= d_greedy <= best + max_step + 1e-9
        gaps.append(d_greedy - best)
    assert np.mean(np.array(gaps) < 1e-9) > 0.6


def test_convex_hull_drops_dominated_and_non_convex_options():
    cost = np.array([1.0, 2.0, 3.0, 4.0, 2.0])
    dist = np.array([10.0, 9.5, 2.0, 1.5, 12.0])  # (2, 9.5) is above the chord 1 -> 3
    assert convex_hull_options(cost, dist) == [0, 2, 3]


def test_allocate_bits_picks_the_exact_bits_on_small_layers():
    g = torch.Generator().manual_seed(4)
    nnz = [30, 50, 20]
    layers = [torch.randn(n, generator=g) * s for n, s in zip(nnz, (0.1, 1.0, 3.0), strict=True)]
    bits = list(range(1, 9))
    dist = torch.tensor([[kmeans_quantize(w, b).distortion for b in bits] for w in layers])
    for budget in (100, 150, 200, 300, 400):
        chosen = allocate_bits(dist, nnz, bits, budget, solver="exact")
        best, arg = _brute_mckp([[b * n for b in bits] for n in nnz], dist.tolist(), budget)
        assert chosen == [bits[i] for i in arg]
        greedy = allocate_bits(dist, nnz, bits, budget)
        assert sum(b * n for b, n in zip(greedy, nnz, strict=True)) <= budget
    with pytest.raises(ValueError, match="infeasible"):
        allocate_bits(dist, nnz, bits, 50)
    with pytest.raises(ValueError, match="solver"):
        allocate_bits(dist, nnz, bits, 500, solver="magic")
    with pytest.raises(ValueError, match="shape"):
        allocate_bits(dist[:2], nnz, bits, 500)


def _encode_relative(w: torch.Tensor, index_bits: int) -> int:
    """Deep Compression's relative index, written as an encoder: entries stored."""
    span, entries, last = 2 ** index_bits, 0, -1
    for pos in torch.nonzero(w.flatten()).flatten().tolist():
        gap = pos - last
        while gap > span:  # a filler zero jumps span positions ahead
            entries += 1
            gap -= span
        entries += 1
        last = pos
    return entries


def test_model_size_in_bits_with_and_without_index_overhead():
    g = torch.Generator().manual_seed(5)
    a = torch.randn(20, 30, generator=g)
    a[a.abs() < 1.5] = 0
    b = torch.randn(100, generator=g)
    rep = model_size_bits([a, b], [3, 8])
    nnz_a = int((a != 0).sum())
    assert rep.total_bits == 3 * nnz_a + 8 * 100
    assert rep.dense_bits == 32 * 700 and rep.ratio == pytest.approx(32 * 700 / rep.total_bits)
    bm = model_size_bits([a, b], [3, 8], index="bitmask", codebook=True)
    assert bm.total_bits == rep.total_bits + 700 + (2 ** 3 + 2 ** 8) * 32
    for r in (1, 2, 3, 5):
        rel = model_size_bits([a], 4, index="relative", index_bits=r)
        entries = _encode_relative(a, r)
        assert rel.total_bits == entries * (4 + r)
    with pytest.raises(ValueError, match="index must be"):
        model_size_bits([a], 4, index="csr")
    with pytest.raises(ValueError, match="bit-widths"):
        model_size_bits([a, b], [3])
