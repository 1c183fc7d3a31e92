"""0/1 knapsack: keep the items of largest value per unit cost until a budget is spent.

A sparse projection under a *linear* budget is a 0/1 knapsack. With weights ``w_i`` that
cost ``c_i`` bits each (the bit-width of their layer) and a model-size budget ``S``, the
projection of ``W`` onto ``{sum_i c_i [w_i != 0] <= S}`` keeps the set ``K`` that solves

    max_K  sum_{i in K} w_i^2   s.t.  sum_{i in K} c_i <= S

(keeping ``w_i`` removes ``w_i^2`` from the distance ``|W - P(W)|^2``). ``knapsack_greedy``
is the greedy of Yang et al. (2020): sort by ``value / cost`` and keep the longest prefix
that fits. With equal costs it is exact (it is top-k); in general its value is within the
largest single item value of the optimum (the LP bound), which ``knapsack_exact`` (dynamic
programming over integer costs) lets the tests check.

``greedy_prefix_mask`` is the fast kernel. Sorting 10 M floats takes seconds on a laptop
CPU, so it selects by a radix histogram instead: the bit pattern of a non-negative float32
is monotone in its value, so a weighted ``bincount`` over the top 16 bits finds the bin
where the budget runs out, and only that bin's few members are sorted exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

_BIN_SHIFT = 16  # bins = float32 bit pattern >> 16: sign, 8 exponent and 7 mantissa bits


def _as_flat(x: torch.Tensor | Sequence[float], name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not torch.is_floating_point(t):
        t = t.to(torch.float64)
    t = t.detach().flatten()
    if torch.isnan(t).any():
        raise ValueError(f"{name} contains NaN")
    return t


def _segment_cost(cost, n: int, device) -> float | torch.Tensor | None:
    """``None`` (unit), a float (one cost for the whole segment) or per-item float64."""
    if cost is None:
        return None
    c = torch.as_tensor(cost)
    if c.dim() == 0:
        value = float(c)
        if not value > 0:
            raise ValueError(f"costs must be positive, got {value}")
        return value
    c = c.detach().flatten().to(device=device, dtype=torch.float64)
    if c.numel() != n:
        raise ValueError(f"costs has {c.numel()} items, scores has {n}")
    if not bool((c > 0).all()):
        raise ValueError("costs must be positive (and not NaN)")
    return c


def greedy_prefix_masks(scores: Sequence[torch.Tensor], budget: float,
                        costs: Sequence | None = None) -> list[torch.Tensor]:
    """``greedy_prefix_mask`` over several segments (layers) ranked together, without
    concatenating them: ``costs[l]`` is ``None`` (unit), one number for the whole segment
    (its bit-width) or a tensor of per-item costs. Ties break by segment, then position."""
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    costs = [None] * len(scores) if costs is None else list(costs)
    if len(costs) != len(scores):
        raise ValueError(f"got {len(costs)} costs for {len(scores)} score tensors")
    flat = [torch.as_tensor(s).detach().flatten() for s in scores]
    flat = [s if torch.is_floating_point(s) else s.to(torch.float64) for s in flat]
    segs = [_segment_cost(c, s.numel(), s.device) for s, c in zip(flat, costs, strict=True)]
    bins, hist = [], None
    for s, c in zip(flat, segs, strict=True):
        key = s.to(torch.float32)
        if key.numel() and not float(key.min()) >= 0:  # also catches NaN
            raise ValueError("scores must be non-negative and not NaN (use |w| or w^2 / cost)")
        key = key.abs()  # -0.0 (what a soft threshold leaves) has the sign bit set: make it +0
        # coarse, monotone bins from the float32 bit pattern (float32 rounding is monotone)
        b = key.view(torch.int32) >> _BIN_SHIFT
        bins.append(b)
        if isinstance(c, torch.Tensor):
            h = torch.bincount(b, weights=c, minlength=1 << 15)
        else:
            h = torch.bincount(b, minlength=1 << 15).to(torch.float64) * (1.0 if c is None else c)
        hist = h if hist is None else hist + h
    if hist is None:
        return []
    if float(hist.sum()) <= budget:
        return [torch.ones(s.numel(), dtype=torch.bool, device=s.device) for s in flat]
    from_top = torch.flip(torch.cumsum(torch.flip(hist, [0]), 0), [0])  # cost of bins >= b
    boundary = int(torch.nonzero(from_top > budget).flatten().max())  # where it overflows
    remaining = budget - float(from_top[boundary] - hist[boundary])
    keep = [b > boundary for b in bins]
    # the boundary bin's members, in segment-then-position order, ranked exactly
    member_idx = [torch.nonzero(b == boundary).flatten() for b in bins]
    member_seg = torch.cat([torch.full((len(m),), i, dtype=torch.long)
                            for i, m in enumerate(member_idx)])
    member_pos = torch.cat([m.cpu() for m in member_idx])
    member_score = torch.cat([s[m].to(torch.float64).cpu() for s, m in
                              zip(flat, member_idx, strict=True)])
    member_cost = torch.cat([
        (c[m].cpu() if isinstance(c, torch.Tensor) else
         torch.full((len(m),), 1.0 if c is None else c, dtype=torch.float64))
        for c, m in zip(segs, member_idx, strict=True)])
    order = torch.sort(member_score, descending=True, stable=True).indices
    fits = order[torch.cumsum(member_cost[order], 0) <= remaining]  # exact for integer costs
    for i in range(len(flat)):
        chosen = member_pos[fits[member_seg[fits] == i]]
        keep[i][chosen.to(keep[i].device)] = True
    return keep


def greedy_prefix_mask(scores: torch.Tensor, budget: float,
                       costs: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean mask of the longest prefix of items in descending ``scores`` order (ties: lower
    index first) whose total cost is ``<= budget``. ``costs=None`` means unit costs, so
    ``budget`` is a count (this is top-k).

    Scores must be non-negative; costs positive. Runs in O(n) plus a sort of one histogram
    bin, not O(n log n).
    """
    scores = _as_flat(scores, "scores")
    return greedy_prefix_masks([scores], budget, None if costs is None else [costs])[0]


def knapsack_greedy(values: torch.Tensor, costs: torch.Tensor, budget: float) -> torch.Tensor:
    """Greedy 0/1 knapsack: keep the longest prefix by ``value / cost`` that fits ``budget``.

    Returns a boolean mask. ``sum(values[mask]) >= OPT - max(values)`` (LP bound).
    """
    values = _as_flat(values, "values")
    costs = _as_flat(costs, "costs")
    if values.numel() != costs.numel():
        raise ValueError(f"values has {values.numel()} items, costs has {costs.numel()}")
    if (values < 0).any():
        raise ValueError("values must be non-negative")
    if not bool((costs > 0).all()):
        raise ValueError("costs must be positive")
    return greedy_prefix_mask(values / costs.to(values.dtype), budget, costs)


def knapsack_exact(values: Sequence[float] | torch.Tensor, costs: Sequence[int] | torch.Tensor,
                   budget: int) -> torch.Tensor:
    """Optimal 0/1 knapsack by dynamic programming over integer costs, O(n * budget).

    ``best[i][b]`` = max value of items ``< i`` within cost ``b``; the chosen set is read
    back from the table. For tests and small problems.
    """
    v = np.asarray(torch.as_tensor(values).detach().cpu(), dtype=np.float64).ravel()
    c = np.asarray(torch.as_tensor(costs).detach().cpu()).ravel()
    if v.shape != c.shape:
        raise ValueError(f"values has {v.size} items, costs has {c.size}")
    if not np.all(np.equal(np.round(c), c)) or np.any(c <= 0):
        raise ValueError("knapsack_exact needs positive integer costs")
    budget = int(budget)
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    c = c.astype(np.int64)
    n = v.size
    best = np.zeros((n + 1, budget + 1))
    for i in range(n):
        best[i + 1] = best[i]
        if c[i] <= budget:
            with_i = best[i, : budget + 1 - c[i]] + v[i]
            best[i + 1, c[i]:] = np.maximum(best[i, c[i]:], with_i)
    keep = np.zeros(n, dtype=bool)
    b = budget
    for i in range(n, 0, -1):
        if best[i, b] != best[i - 1, b]:
            keep[i - 1] = True
            b -= c[i - 1]
    return torch.from_numpy(keep)
