"""Projections and proximal operators against brute force on small random cases."""

import itertools

import numpy as np
import pytest
import torch

from lib.sparse import (
    global_topk_projection,
    group_hard_threshold,
    group_soft_threshold,
    group_topk_projection,
    hard_threshold,
    knapsack_exact,
    soft_threshold,
    topk_projection,
    weighted_sparse_masks,
    weighted_sparse_projection,
)


def _best_support(w: np.ndarray, feasible) -> float:
    """min |x - w|^2 over x = w on a support S, S ranging over feasible subsets."""
    n = w.size
    best = np.inf
    for r in range(n + 1):
        for s in itertools.combinations(range(n), r):
            if feasible(s):
                best = min(best, float((w ** 2).sum() - (w[list(s)] ** 2).sum()))
    return best


def test_topk_and_global_topk_are_projections_by_brute_force():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        n = int(torch.randint(1, 10, (1,), generator=g))
        w = torch.randn(n, generator=g, dtype=torch.float64)
        k = int(torch.randint(0, n + 2, (1,), generator=g))
        p = topk_projection(w, k)
        assert int((p != 0).sum()) <= k
        assert float(((p - w) ** 2).sum()) == pytest.approx(
            _best_support(w.numpy(), lambda s, k=k: len(s) <= k), abs=1e-12)
        # global: split w into two tensors, one shared budget
        cut = int(torch.randint(0, n + 1, (1,), generator=g))
        parts = global_topk_projection([w[:cut], w[cut:]], k)
        assert torch.equal(torch.cat(parts), p), "global top-k = top-k of the concatenation"


def test_hard_and_soft_thresholds_are_the_proxes_by_grid_search():
    g = torch.Generator().manual_seed(1)
    grid = torch.cat([torch.linspace(-6, 6, 12001, dtype=torch.float64),  # step 1e-3
                      torch.zeros(1, dtype=torch.float64)])
    w = (torch.randn(200, 1, generator=g, dtype=torch.float64) * 2).clamp(-5, 5)
    lam = torch.rand(200, 1, generator=g, dtype=torch.float64)
    soft = 0.5 * (grid - w) ** 2 + lam * grid.abs()
    hard = 0.5 * (grid - w) ** 2 + lam * (grid != 0)
    for i in range(len(w)):
        wi, li = w[i], float(lam[i])
        assert float(soft_threshold(wi, li)) == pytest.approx(float(grid[soft[i].argmin()]),
                                                              abs=2e-3)
        # the l0 prox is discontinuous: compare objective values, not minimisers
        x = float(hard_threshold(wi, li))
        obj = 0.5 * (x - float(wi)) ** 2 + li * (x != 0)
        assert float(hard[i].min()) - 1e-12 <= obj + 1e-6 and obj <= float(hard[i].min()) + 1e-12


def test_group_projections_by_brute_force_over_channel_subsets():
    g = torch.Generator().manual_seed(2)
    for _ in range(150):
        c = int(torch.randint(1, 7, (1,), generator=g))
        w = torch.randn(c, 3, 2, generator=g, dtype=torch.float64)
        sq = (w ** 2).flatten(1).sum(1).numpy()
        k = int(torch.randint(0, c + 1, (1,), generator=g))
        lam = float(torch.rand(1, generator=g) * 4)
        subsets = [s for r in range(c + 1) for s in itertools.combinations(range(c), r)]
        # group-l0 ball: keep the best k channels
        p = group_topk_projection(w, k, dim=0)
        best = min(sq.sum() - sq[list(s)].sum() for s in subsets if len(s) <= k)
        assert float(((p - w) ** 2).sum()) == pytest.approx(best)
        kept = (p.flatten(1) != 0).any(1)
        assert torch.equal(p[kept], w[kept]) and int(kept.sum()) <= k
        # group-l0 prox: 1/2 |x - w|^2 + lam * (#groups kept)
        q = group_hard_threshold(w, lam, dim=0)
        nq = int((q.flatten(1) != 0).any(1).sum())
        obj = 0.5 * float(((q - w) ** 2).sum()) + lam * nq
        best = min(0.5 * (sq.sum() - sq[list(s)].sum()) + lam * len(s) for s in subsets)
        assert obj == pytest.approx(best)
    # the dim argument selects input channels too
    w = torch.randn(4, 5, generator=g)
    assert torch.equal(group_topk_projection(w, 2, dim=1),
                       group_topk_projection(w.T, 2, dim=0).T)


def test_group_soft_threshold_meets_the_prox_optimality_conditions():
    g = torch.Generator().manual_seed(3)
    for _ in range(100):
        w = torch.randn(5, 4, generator=g, dtype=torch.float64)
        lam = float(torch.rand(1, generator=g) * 3)
        x = group_soft_threshold(w, lam, dim=0)
        for wg, xg in zip(w, x, strict=True):
            if xg.norm() == 0:  # 0 in w - x + lam * ball  <=>  |w_g| <= lam
                assert float(wg.norm()) <= lam + 1e-12
            else:  # w_g - x_g = lam x_g / |x_g|
                assert torch.allclose(wg - xg, lam * xg / xg.norm(), atol=1e-10)


def test_weighted_sparse_projection_is_the_greedy_knapsack_and_near_the_exact_one():
    rng = np.random.default_rng(4)
    gaps = []
    for _ in range(300):
        sizes = rng.integers(1, 5, int(rng.integers(1, 4)))
        ws = [torch.tensor(rng.normal(size=s)) for s in sizes]
        bits = [int(b) for b in rng.integers(1, 9, len(ws))]
        costs = np.concatenate([[b] * len(w) for b, w in zip(bits, ws, strict=True)])
        values = np.concatenate([w.numpy() ** 2 for w in ws])
        budget = int(rng.integers(0, costs.sum() + 1))
        masks = weighted_sparse_masks(ws, bits, budget)
        keep = np.concatenate([m.numpy().astype(bool) for m in masks])
        assert costs[keep].sum() <= budget
        # brute force over supports: the exact projection keeps max sum w^2 within budget
        best = values[knapsack_exact(values, costs, budget).numpy()].sum()
        assert values[keep].sum() <= best + 1e-12
        assert values[keep].sum() >= best - values.max() - 1e-12
        gaps.append(best - values[keep].sum())
        proj = weighted_sparse_projection(ws, bits, budget)
        assert all(torch.equal(p, w * m.double()) for p, w, m in zip(proj, ws, masks, strict=True))
    assert np.mean(np.array(gaps) < 1e-12) > 0.5, "greedy should usually be optimal here"


def test_weighted_projection_accepts_per_weight_costs_and_rejects_bad_ones():
    w = torch.tensor([3.0, 2.0, 1.0])
    # per-weight costs: w^2/c = 9/9, 4/1, 1/1 -> keep index 1 then 0 (cost 10) in budget 10
    masks = weighted_sparse_masks([w], [torch.tensor([9.0, 1.0, 1.0])], 10)
    assert masks[0].tolist() == [1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="costs"):
        weighted_sparse_masks([w], [1, 2], 3)
    with pytest.raises(ValueError, match="shape"):
        weighted_sparse_masks([w], [torch.ones(2)], 3)
    with pytest.raises(ValueError, match="positive"):
        weighted_sparse_masks([w], [0], 3)
    with pytest.raises(ValueError, match="k must be"):
        topk_projection(w, -1)
    with pytest.raises(ValueError, match="lam"):
        soft_threshold(w, -0.1)


def test_soft_threshold_fused_path_equals_the_formula_bitwise():
    """A scalar threshold on a float tensor goes through torch's softshrink: same values as
    sign(w) max(|w| - lam, 0), no -0.0, same gradient, in float32 and float64."""
    for dtype in (torch.float32, torch.float64):
        w = torch.randn(500, 40, dtype=dtype, generator=torch.Generator().manual_seed(0)) * 2
        w[0, :3] = torch.tensor([0.5, -0.5, -0.0], dtype=dtype)      # at the kink, signed 0
        for lam in (0.0, 0.5, 1.3):
            want = torch.sign(w) * torch.clamp(w.abs() - lam, min=0.0) + 0.0
            got = soft_threshold(w, lam)
            assert torch.equal(got, want) and not torch.signbit(got[got == 0]).any()
        x = w.clone().requires_grad_(True)
        soft_threshold(x, 0.7).sum().backward()
        assert torch.equal(x.grad, (w.abs() > 0.7).to(dtype))
