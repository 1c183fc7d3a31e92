"""Per-layer bit allocation as a multiple-choice knapsack.

Layer ``j`` with ``n_j`` nonzeros quantized to ``b`` bits costs ``b n_j`` bits and
distorts its weights by ``D_j(b)``. Choosing one bit-width per layer under a size budget
``S`` is the multiple-choice knapsack problem (MCKP)

    min_{b_1..b_L}  sum_j D_j(b_j)   s.t.  sum_j b_j n_j <= S .

``multiple_choice_knapsack`` is the greedy of Yang et al. (2020): drop dominated options,
keep each layer's lower convex hull of (cost, distortion), start every layer at its
cheapest option and take hull upgrades in order of distortion saved per bit while they
fit. It solves the LP relaxation except for one fractional upgrade, so its distortion is at
most the optimum plus the largest single hull step. ``multiple_choice_knapsack_exact``
(dynamic programming over Pareto-optimal partial choices) is exact, for tests and small
problems.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch


def _as_groups(costs, distortions) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if len(costs) != len(distortions):
        raise ValueError(f"{len(costs)} cost groups but {len(distortions)} distortion groups")
    if len(costs) == 0:
        raise ValueError("need at least one group")
    cs, ds = [], []
    for j, (c, d) in enumerate(zip(costs, distortions, strict=True)):
        c = np.asarray(torch.as_tensor(c).detach().cpu(), dtype=np.float64).ravel()
        d = np.asarray(torch.as_tensor(d).detach().cpu(), dtype=np.float64).ravel()
        if c.size == 0 or c.size != d.size:
            raise ValueError(f"group {j}: {c.size} costs and {d.size} distortions "
                             "(need equal numbers, > 0)")
        if np.isnan(c).any() or np.isnan(d).any():
            raise ValueError(f"group {j} contains NaN")
        cs.append(c)
        ds.append(d)
    return cs, ds


def convex_hull_options(cost: np.ndarray, distortion: np.ndarray) -> list[int]:
    """Indices of the options on the lower convex hull of ``(cost, distortion)``, by
    increasing cost and strictly decreasing distortion (dominated options dropped)."""
    order = sorted(range(cost.size), key=lambda i: (cost[i], distortion[i], i))
    frontier: list[int] = []
    for i in order:  # Pareto: strictly lower distortion than every cheaper option
        if not frontier or (distortion[i] < distortion[frontier[-1]]
                            and cost[i] > cost[frontier[-1]]):
            frontier.append(i)
    hull: list[int] = []
    for i in frontier:
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b is above the chord a -> i (or on it): not a hull vertex
            lhs = (distortion[b] - distortion[a]) * (cost[i] - cost[a])
            rhs = (distortion[i] - distortion[a]) * (cost[b] - cost[a])
            if lhs >= rhs:
                hull.pop()
            else:
                break
        hull.append(i)
    return hull


def multiple_choice_knapsack(costs: Sequence[Sequence[float]],
                             distortions: Sequence[Sequence[float]],
                             budget: float) -> list[int]:
    """Greedy MCKP on the convex hulls: one option index per group, total cost <= budget.

    Raises ``ValueError`` when even the cheapest option of every group exceeds the budget.
    """
    cs, ds = _as_groups(costs, distortions)
    hulls = [convex_hull_options(c, d) for c, d in zip(cs, ds, strict=True)]
    position = [0] * len(hulls)  # where each group stands on its hull
    spent = sum(c[h[0]] for c, h in zip(cs, hulls, strict=True))
    if spent > budget:
        raise ValueError(f"infeasible: the cheapest options cost {spent:g} > budget {budget:g}")
    steps = []  # (efficiency, group, step) for every hull upgrade
    for j, (c, d, h) in enumerate(zip(cs, ds, hulls, strict=True)):
        for s in range(1, len(h)):
            gain = d[h[s - 1]] - d[h[s]]
            steps.append((gain / (c[h[s]] - c[h[s - 1]]), j, s))
    steps.sort(key=lambda t: (-t[0], t[1], t[2]))
    finished = set()
    for _, j, s in steps:
        if j in finished or s != position[j] + 1:
            continue
        extra = cs[j][hulls[j][s]] - cs[j][hulls[j][s - 1]]
        if spent + extra <= budget:
            spent += extra
            position[j] = s
        else:  # later upgrades of this group would need this one first
            finished.add(j)
    return [h[p] for h, p in zip(hulls, position, strict=True)]


def multiple_choice_knapsack_exact(costs: Sequence[Sequence[float]],
                                   distortions: Sequence[Sequence[float]],
                                   budget: float) -> list[int]:
    """Optimal MCKP: extend the Pareto front of (cost, distortion) over partial choices one
    group at a time, dropping dominated and over-budget states. Exponential in the worst
    case; fast for the few layers and 8 bit-widths of the tests."""
    cs, ds = _as_groups(costs, distortions)
    front = [(0.0, 0.0, ())]
    for c, d in zip(cs, ds, strict=True):
        states = [(fc + c[i], fd + d[i], ch + (i,)) for (fc, fd, ch), i in
                  itertools.product(front, range(c.size)) if fc + c[i] <= budget]
        if not states:
            raise ValueError(f"infeasible: no choice fits the budget {budget:g}")
        states.sort(key=lambda s: (s[0], s[1]))
        front = []
        for s in states:
            if not front or s[1] < front[-1][1]:
                front.append(s)
    return list(min(front, key=lambda s: (s[1], s[0]))[2])


def allocate_bits(distortion: torch.Tensor | np.ndarray, nnz: Sequence[int],
                  candidate_bits: Sequence[int], budget: float,
                  solver: str = "greedy") -> list[int]:
    """Bits per layer minimising ``sum_j D_j(b_j)`` s.t. ``sum_j b_j nnz_j <= budget``.

    ``distortion[j, i]`` is layer ``j``'s distortion at ``candidate_bits[i]``; ``solver`` is
    ``"greedy"`` (the paper's convex-hull greedy) or ``"exact"``.
    """
    dist = np.asarray(torch.as_tensor(distortion).detach().cpu(), dtype=np.float64)
    bits = [int(b) for b in candidate_bits]
    if dist.shape != (len(nnz), len(bits)):
        raise ValueError(f"distortion has shape {dist.shape}, expected "
                         f"(layers={len(nnz)}, candidate bits={len(bits)})")
    costs = [[b * int(n) for b in bits] for n in nnz]
    if solver == "greedy":
        choice = multiple_choice_knapsack(costs, dist, budget)
    elif solver == "exact":
        choice = multiple_choice_knapsack_exact(costs, dist, budget)
    else:
        raise ValueError(f"solver must be 'greedy' or 'exact', got {solver!r}")
    return [bits[i] for i in choice]
