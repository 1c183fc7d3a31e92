"""Projections of a network's weights onto an energy budget of the systolic-array model.

With the input masks fixed, the energy is additive over kept weights (``weight_costs``):
``E(W) = sum_l fixed_l + sum_{i kept} a_i + cached_l min(k_l, s2) + uncached_l max(0, k_l - s2)``.
The projection ``P(W) = argmin |W' - W|^2 s.t. E(W') <= B`` keeps the set of weights that
solves a 0/1 knapsack: profit ``w_i^2`` (the distance saved by keeping ``w_i``), cost the
weight's energy (Yang, Zhu and Liu, 2019, eq. 6). ``energy_projection_masks`` is the
paper's greedy: rank by ``w_i^2 / cost_i``, keep the longest prefix that fits.

The kernel-cache term makes a weight's cost depend on how many weights of its layer are
kept. Two greedy readings, both always within the budget:

* ``marginal=False``: every weight of a layer larger than the kernel cache is charged the
  uncached cost (an upper bound);
* ``marginal=True`` (the official code's): in each layer the ``s2`` weights ranked first by
  ``w^2 / (a_i + cached)`` are charged the cached cost, the rest the uncached one. At most
  ``s2`` kept weights of a layer are charged the cached cost, so the charged total is an
  upper bound of the true energy of any kept set.

``exact_energy_projection`` solves the same problem exactly with ``scipy.optimize.milp``
(one binary a weight and one continuous overflow count a layer) for small cases.

Baselines that meet the same budget: ``magnitude_masks`` (rank by ``|w|``, same costs),
``random_masks`` (random rank) and ``energy_aware_masks`` (energy-aware pruning, Yang et al.
CVPR 2017: prune the layer that costs most energy first, by magnitude, in steps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from lib.sparse.knapsack import greedy_prefix_masks

from .systolic import LayerWeightCosts


def masks_energy(costs: Sequence[LayerWeightCosts], masks: Sequence[torch.Tensor]) -> float:
    """Energy of keeping ``masks`` (bool/0-1 tensors shaped as the weights)."""
    return sum(c.energy(m.flatten().to(torch.bool)) for c, m in zip(costs, masks, strict=True))


def min_energy(costs: Sequence[LayerWeightCosts]) -> float:
    """Energy with every weight pruned: below it no budget can be met."""
    return sum(c.fixed for c in costs)


def _weight_budget(costs, budget: float) -> float:
    spare = budget - min_energy(costs)
    if spare < 0:
        raise ValueError(f"budget {budget:.4g} is below the energy of the input and output "
                         f"traffic alone ({min_energy(costs):.4g}): infeasible")
    return spare


def _item_costs(c: LayerWeightCosts, rank_score: torch.Tensor, marginal: bool
                ) -> torch.Tensor:
    """Per-weight charged cost (float64, flat)."""
    a = c.per_weight.flatten().to(torch.float64)
    n = a.numel()
    if n <= c.cache_entries:
        return a + c.cached
    if not marginal:
        return a + c.uncached
    cost = a + c.uncached
    first = torch.topk(rank_score.flatten().to(torch.float64), c.cache_entries).indices
    cost[first] = a[first] + c.cached
    return cost


def _prefix_masks(ws, costs, budget: float, scores_for) -> list[torch.Tensor]:
    spare = _weight_budget(costs, budget)
    scores, items = [], []
    for w, c in zip(ws, costs, strict=True):
        s, cost = scores_for(w.detach().flatten().to(torch.float64), c)
        scores.append(s)
        items.append(cost)
    keep = greedy_prefix_masks(scores, spare, items)
    return [k.view_as(w) for w, k in zip(ws, keep, strict=True)]


def energy_projection_masks(ws: Sequence[torch.Tensor], costs: Sequence[LayerWeightCosts],
                            budget: float, marginal: bool = True) -> list[torch.Tensor]:
    """The paper's weighted sparse projection: keep weights by ``w^2 / energy cost`` until
    the energy budget is spent. Returns boolean masks; ``masks_energy(...) <= budget``."""
    def scores_for(w2, c):
        w2 = w2 * w2
        cost = _item_costs(c, w2 / (c.per_weight.flatten().to(torch.float64) + c.cached),
                           marginal)
        return w2 / cost, cost
    return _prefix_masks(ws, costs, budget, scores_for)


def magnitude_masks(ws: Sequence[torch.Tensor], costs: Sequence[LayerWeightCosts],
                    budget: float) -> list[torch.Tensor]:
    """Magnitude pruning matched to the energy budget: keep the largest ``|w|`` (globally)
    while the budget lasts (each charged its energy, kernel cache as in the marginal
    projection, ranked by ``|w|``)."""
    def scores_for(w, c):
        w2 = w * w
        return w2, _item_costs(c, w2, True)
    return _prefix_masks(ws, costs, budget, scores_for)


def random_masks(ws: Sequence[torch.Tensor], costs: Sequence[LayerWeightCosts], budget: float,
                 generator: torch.Generator) -> list[torch.Tensor]:
    """A random mask at the same energy: weights in a random order while the budget lasts."""
    def scores_for(w, c):
        s = torch.rand(w.numel(), generator=generator, dtype=torch.float64)
        return s, _item_costs(c, s, True)
    return _prefix_masks(ws, costs, budget, scores_for)


def energy_aware_masks(ws: Sequence[torch.Tensor], costs: Sequence[LayerWeightCosts],
                       budget: float, step_fraction: float = 0.1) -> list[torch.Tensor]:
    """Energy-aware pruning (Yang, Chen and Sze, CVPR 2017) reduced to its allocation rule:
    repeatedly take the layer whose weights cost most energy (its energy minus the input and
    output traffic that no weight pruning removes; ranking by total energy would empty a
    layer whose cost is mostly its feature maps) and remove its smallest-magnitude weights,
    ``step_fraction`` of those left (fewer when fewer suffice to meet the budget), until the
    total energy is within ``budget``. (The original fine-tunes between layers and restores
    accuracy by a least-squares fit; here the fine-tuning is the schedule's, the same for
    every method.)"""
    if not 0 < step_fraction <= 1:
        raise ValueError(f"step_fraction must lie in (0, 1], got {step_fraction}")
    _weight_budget(costs, budget)
    orders, kept, energies = [], [], []
    for w, c in zip(ws, costs, strict=True):
        orders.append(torch.argsort(w.detach().flatten().abs(), stable=True))  # weakest first
        kept.append(0)  # how many of the weakest are removed
        energies.append(c.energy(torch.ones(w.numel(), dtype=torch.bool)))
    total = sum(energies)
    while total > budget:
        live = [i for i, w in enumerate(ws) if kept[i] < w.numel()]
        if not live:
            break
        i = max(live, key=lambda j: energies[j] - costs[j].fixed)
        c, n = costs[i], ws[i].numel()
        left = n - kept[i]
        chunk = max(1, math.ceil(step_fraction * left))
        # savings of removing the next weakest weights one by one
        nxt = orders[i][kept[i]:kept[i] + chunk]
        a = c.per_weight.flatten().to(torch.float64)[nxt]
        counts = torch.arange(left, left - len(nxt), -1, dtype=torch.float64)  # k before
        access = torch.where(counts > c.cache_entries, c.uncached, c.cached).to(torch.float64)
        saved = torch.cumsum(a + access, 0)
        need = total - budget
        enough = torch.nonzero(saved >= need - 1e-9).flatten()
        take = int(enough[0]) + 1 if len(enough) else len(nxt)
        kept[i] += take
        keep = torch.ones(n, dtype=torch.bool)
        keep[orders[i][:kept[i]]] = False
        new = c.energy(keep)
        total += new - energies[i]
        energies[i] = new
    masks = []
    for w, order, k in zip(ws, orders, kept, strict=True):
        keep = torch.ones(w.numel(), dtype=torch.bool)
        keep[order[:k]] = False
        masks.append(keep.view_as(w))
    return masks


def exact_energy_projection(ws: Sequence[torch.Tensor], costs: Sequence[LayerWeightCosts],
                            budget: float) -> list[torch.Tensor]:
    """The optimal kept set (max ``sum w^2`` within the energy budget, kernel-cache term
    exact) by mixed-integer programming (``scipy.optimize.milp``, HiGHS): a binary ``x_i``
    a weight, and a layer's overflow ``t_l >= sum_i x_i - s2, t_l >= 0`` charged
    ``uncached - cached``. For small problems (tests, the chapter's check)."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    spare = _weight_budget(costs, budget)
    n_w = [w.numel() for w in ws]
    n, n_layers = sum(n_w), len(ws)
    profit = np.concatenate([w.detach().flatten().double().numpy() ** 2 for w in ws])
    obj = np.concatenate([-profit, np.zeros(n_layers)])
    budget_row = np.zeros(n + n_layers)
    rows, lbs, ubs = [], [], []
    start = 0
    for li, (c, k) in enumerate(zip(costs, n_w, strict=True)):
        budget_row[start:start + k] = c.per_weight.flatten().double().numpy() + c.cached
        budget_row[n + li] = c.uncached - c.cached
        over = np.zeros(n + n_layers)
        over[start:start + k] = 1.0
        over[n + li] = -1.0
        rows.append(over)          # sum x - t <= s2
        lbs.append(-np.inf)
        ubs.append(float(c.cache_entries))
        start += k
    rows.append(budget_row)
    lbs.append(-np.inf)
    ubs.append(spare)
    integrality = np.concatenate([np.ones(n), np.zeros(n_layers)])
    upper = np.concatenate([np.ones(n), np.full(n_layers, np.inf)])
    res = milp(obj, constraints=LinearConstraint(np.array(rows), lbs, ubs),
               integrality=integrality, bounds=Bounds(np.zeros(n + n_layers), upper),
               options={"time_limit": 60})
    if res.x is None:
        raise RuntimeError(f"milp found no solution: {res.message}")
    x = res.x[:n] > 0.5
    out, start = [], 0
    for w, k in zip(ws, n_w, strict=True):
        out.append(torch.from_numpy(x[start:start + k].copy()).view_as(w))
        start += k
    return out
