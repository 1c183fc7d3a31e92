"""0/1 knapsack: greedy prefix vs a plain reference, exact DP vs brute force, LP bound."""

import itertools

import numpy as np
import pytest
import torch

from lib.sparse import greedy_prefix_mask, knapsack_exact, knapsack_greedy


def _brute_force(values, costs, budget):
    best, best_set = 0.0, ()
    n = len(values)
    for r in range(n + 1):
        for subset in itertools.combinations(range(n), r):
            if sum(costs[i] for i in subset) <= budget:
                v = sum(values[i] for i in subset)
                if v > best + 1e-12:
                    best, best_set = v, subset
    return best, best_set


def _reference_prefix(scores, costs, budget):
    """The definition, written plainly: sort by score (ties: index), keep while it fits."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep, spent = [False] * len(scores), 0.0
    for i in order:
        if spent + costs[i] > budget:
            break
        spent += costs[i]
        keep[i] = True
    return keep


def test_exact_dp_equals_brute_force_on_random_small_cases():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 10))
        values = rng.random(n).round(3)
        costs = rng.integers(1, 8, n)
        budget = int(rng.integers(0, costs.sum() + 1))
        keep = knapsack_exact(values, costs, budget).numpy()
        best, _ = _brute_force(values, costs, budget)
        assert costs[keep].sum() <= budget
        assert values[keep].sum() == pytest.approx(best, abs=1e-9)


def test_greedy_is_the_sorted_prefix_and_within_the_lp_bound_of_the_optimum():
    rng = np.random.default_rng(1)
    gaps = []
    for trial in range(400):
        n = int(rng.integers(1, 40))
        # small integer values make many ties, which must break by index
        values = (rng.integers(0, 6, n) if trial % 2 else rng.random(n)).astype(np.float64)
        costs = rng.integers(1, 9, n)
        budget = int(rng.integers(0, costs.sum() + 1))
        keep = knapsack_greedy(torch.tensor(values), torch.tensor(costs), budget).numpy()
        assert list(keep) == _reference_prefix(values / costs, costs, budget)
        opt = values[knapsack_exact(values, costs, budget).numpy()].sum()
        got = values[keep].sum()
        assert costs[keep].sum() <= budget
        assert opt - values.max() - 1e-9 <= got <= opt + 1e-9  # OPT <= LP <= greedy + max v
        gaps.append(opt - got)
    assert max(gaps) > 0, "the greedy should not be exact on every case (test too weak)"


def test_greedy_with_equal_costs_is_exact_top_k():
    rng = np.random.default_rng(2)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        values = rng.random(n)
        cost = int(rng.integers(1, 5))
        budget = int(rng.integers(0, n * cost + 1))
        keep = knapsack_greedy(torch.tensor(values), torch.full((n,), cost), budget).numpy()
        best, _ = _brute_force(values, [cost] * n, budget)
        assert values[keep].sum() == pytest.approx(best)


def test_radix_selection_matches_a_full_sort_on_large_inputs_with_ties():
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(50_000, generator=g).abs()
    scores[::7] = 0.5  # a block of exact ties inside one histogram bin
    scores[::11] = 0.0
    for k in (0, 1, 12_345, 25_000, 49_999, 50_000):
        keep = greedy_prefix_mask(scores, k)
        order = torch.sort(scores, descending=True, stable=True).indices[:k]
        expected = torch.zeros_like(keep)
        expected[order] = True
        assert torch.equal(keep, expected)
    costs = torch.randint(1, 9, (50_000,), generator=g).double()
    for budget in (0.0, 10.0, 7e4, 1e5):
        keep = greedy_prefix_mask(scores.double() / costs, budget, costs)
        order = torch.sort(scores.double() / costs, descending=True, stable=True).indices
        prefix = int((torch.cumsum(costs[order], 0) <= budget).sum())
        expected = torch.zeros_like(keep)
        expected[order[:prefix]] = True
        assert torch.equal(keep, expected)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="non-negative"):
        greedy_prefix_mask(torch.tensor([1.0, -1.0]), 1)
    with pytest.raises(ValueError, match="positive"):
        knapsack_greedy(torch.ones(2), torch.tensor([1.0, 0.0]), 1)
    with pytest.raises(ValueError, match="integer costs"):
        knapsack_exact([1.0], [0.5], 1)
    with pytest.raises(ValueError, match="NaN"):
        greedy_prefix_mask(torch.tensor([float("nan")]), 1)
    with pytest.raises(ValueError, match="items"):
        knapsack_greedy(torch.ones(2), torch.ones(3), 1)
