"""Projections onto sparsity sets and proximal operators of sparsity penalties.

For a set ``C`` the projection is ``P_C(w) = argmin_{x in C} |x - w|^2``; for a penalty
``g`` the proximal operator is ``prox_g(w) = argmin_x 1/2 |x - w|^2 + g(x)``. Each function
below is one of these in closed form; the tests check them against brute force.

=========================  ==========================================================
``topk_projection``        ``C = {|x|_0 <= k}``: keep the k largest ``|w_i|``
``global_topk_projection`` the same over several tensors at once (one model budget)
``hard_threshold``         ``prox`` of ``lam |x|_0``: keep ``|w_i| > sqrt(2 lam)``
``soft_threshold``         ``prox`` of ``lam |x|_1``: ``sign(w) max(|w| - lam, 0)``
``group_topk_projection``  ``C = {at most k nonzero groups}``: keep the k groups
                           (channels) of largest norm
``group_hard_threshold``   ``prox`` of ``lam #{nonzero groups}``: keep ``|g|^2 > 2 lam``
``group_soft_threshold``   ``prox`` of ``lam sum_g |g|_2`` (group lasso):
                           ``g max(1 - lam / |g|, 0)``
``weighted_sparse_*``      ``C = {sum_i c_i [x_i != 0] <= S}``: a 0/1 knapsack, greedy by
                           ``w_i^2 / c_i`` (Yang et al., 2020)
=========================  ==========================================================

Groups are the slices along ``dim`` (``dim=0``: output channels of a conv or linear
weight).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .knapsack import greedy_prefix_mask, greedy_prefix_masks


def _check_k(k: int, n: int) -> int:
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise ValueError(f"k must be a non-negative integer, got {k!r}")
    return min(k, n)


def _check_lam(lam: float) -> float:
    if not lam >= 0:
        raise ValueError(f"the penalty weight lam must be >= 0, got {lam!r}")
    return float(lam)


def topk_projection(w: torch.Tensor, k: int) -> torch.Tensor:
    """Projection onto ``{|x|_0 <= k}``: zero all but the ``k`` largest ``|w_i|``."""
    k = _check_k(k, w.numel())
    keep = greedy_prefix_mask(w.detach().abs().flatten(), k)
    return w * keep.view_as(w).to(w.dtype)


def global_topk_projection(ws: Sequence[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Projection of the tuple ``(w_1, ..., w_L)`` onto ``{sum_l |x_l|_0 <= k}``."""
    if not ws:
        raise ValueError("global_topk_projection needs at least one tensor")
    k = _check_k(k, sum(w.numel() for w in ws))
    keep = greedy_prefix_masks([w.detach().abs() for w in ws], k)
    return [w * m.view_as(w).to(w.dtype) for w, m in zip(ws, keep, strict=True)]


def hard_threshold(w: torch.Tensor, lam: float) -> torch.Tensor:
    """``prox`` of ``lam |x|_0``: keeping ``w_i`` costs ``lam``, dropping it ``w_i^2 / 2``."""
    lam = _check_lam(lam)
    return torch.where(w * w > 2.0 * lam, w, torch.zeros_like(w))


def soft_threshold(w, lam):
    """``prox`` of ``lam |x|_1``: ``sign(w) max(|w| - lam, 0)``, elementwise.

    The library's one soft threshold, for a torch tensor or a NumPy array ``w``; ``lam`` is a
    number or a tensor/array broadcastable to ``w`` (per-entry thresholds), all ``>= 0``.
    Entries shrunk to zero are ``+0.0`` (never ``-0.0``), so their magnitudes rank cleanly.
    """
    if isinstance(w, np.ndarray):
        lam_a = np.asarray(lam, dtype=w.dtype if w.dtype.kind == "f" else np.float64)
        if np.any(lam_a < 0) or np.any(np.isnan(lam_a)):
            raise ValueError(f"lam must be >= 0, got {lam!r}")
        return np.sign(w) * np.maximum(np.abs(w) - lam_a, 0.0) + 0.0
    if isinstance(lam, torch.Tensor):
        if bool((lam < 0).any()) or bool(torch.isnan(lam).any()):
            raise ValueError("lam must be >= 0 everywhere")
    else:
        lam = _check_lam(lam)
        if torch.is_floating_point(w):  # torch's fused kernel: the same values (and +0.0),
            return torch.nn.functional.softshrink(w, lam)  # one pass over memory
    return torch.sign(w) * torch.clamp(w.abs() - lam, min=0.0) + 0.0


def _group_norms(w: torch.Tensor, dim: int) -> tuple[torch.Tensor, list[int]]:
    if not -w.dim() <= dim < w.dim():
        raise ValueError(f"dim {dim} out of range for a {w.dim()}-d tensor")
    dim = dim % w.dim()
    norms = w.detach().transpose(0, dim).reshape(w.shape[dim], -1).norm(dim=1)
    shape = [1] * w.dim()
    shape[dim] = -1
    return norms, shape


def group_topk_projection(w: torch.Tensor, k: int, dim: int = 0) -> torch.Tensor:
    """Projection onto ``{at most k nonzero groups along dim}``: keep the k largest norms."""
    norms, shape = _group_norms(w, dim)
    k = _check_k(k, norms.numel())
    keep = greedy_prefix_mask(norms, k)
    return w * keep.view(shape).to(w.dtype)


def group_hard_threshold(w: torch.Tensor, lam: float, dim: int = 0) -> torch.Tensor:
    """``prox`` of ``lam * #{nonzero groups}``: keep a group when ``|g|^2 / 2 > lam``."""
    lam = _check_lam(lam)
    norms, shape = _group_norms(w, dim)
    return w * (norms * norms > 2.0 * lam).view(shape).to(w.dtype)


def group_soft_threshold(w: torch.Tensor, lam: float, dim: int = 0) -> torch.Tensor:
    """``prox`` of ``lam sum_g |g|_2`` (group lasso): shrink each group's norm by ``lam``."""
    lam = _check_lam(lam)
    norms, shape = _group_norms(w, dim)
    scale = torch.clamp(1.0 - lam / norms.clamp_min(torch.finfo(norms.dtype).tiny), min=0.0)
    return w * scale.view(shape).to(w.dtype)


def weighted_sparse_masks(ws: Sequence[torch.Tensor],
                          costs: Sequence[float] | Sequence[torch.Tensor],
                          budget: float) -> list[torch.Tensor]:
    """Masks of the weighted sparse projection onto ``{sum_i c_i [x_i != 0] <= budget}``.

    ``costs[l]`` is the cost of one nonzero of ``ws[l]`` (its layer's bit-width), or a
    tensor of per-weight costs. Greedy 0/1 knapsack: rank by ``w_i^2 / c_i``, keep the
    longest prefix that fits (Yang et al., 2020, sparse projection step).
    """
    if not ws:
        raise ValueError("weighted_sparse_masks needs at least one tensor")
    if len(costs) != len(ws):
        raise ValueError(f"got {len(costs)} costs for {len(ws)} weight tensors")
    scores, item_costs = [], []
    for w, c in zip(ws, costs, strict=True):
        c = torch.as_tensor(c, dtype=torch.float64) if not isinstance(c, torch.Tensor) else c
        if c.dim() == 0:
            if not float(c) > 0:
                raise ValueError(f"costs must be positive, got {float(c)}")
            scores.append(w.detach() * w.detach() * (1.0 / float(c)))
            item_costs.append(float(c))
        elif c.shape == w.shape:
            c = c.detach().to(torch.float64)
            if not bool((c > 0).all()):
                raise ValueError("costs must be positive")
            scores.append(w.detach().to(torch.float64) ** 2 / c)
            item_costs.append(c)
        else:
            raise ValueError(f"a cost must be a scalar per tensor or have the tensor's shape "
                             f"{tuple(w.shape)}, got {tuple(c.shape)}")
    keep = greedy_prefix_masks(scores, budget, item_costs)
    return [m.view_as(w).to(torch.float32) for w, m in zip(ws, keep, strict=True)]


def weighted_sparse_projection(ws: Sequence[torch.Tensor],
                               costs: Sequence[float] | Sequence[torch.Tensor],
                               budget: float) -> list[torch.Tensor]:
    """``P(W)`` onto ``{sum_i c_i [x_i != 0] <= budget}`` (see ``weighted_sparse_masks``)."""
    masks = weighted_sparse_masks(ws, costs, budget)
    return [w * m.to(w.dtype) for w, m in zip(ws, masks, strict=True)]
