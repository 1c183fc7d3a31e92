"""Pruning masks attached to a module's weight with ``torch.nn.utils.parametrize``.

``attach_mask(layer, mask)`` makes ``layer.weight`` read as ``original * mask``: the forward
pass, the gradient (zero on pruned entries) and ``state_dict`` all see the mask, and other
parametrizations (a fake quantizer) compose on the same weight. ``bake(model)`` makes
masks permanent and removes the parametrizations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils import parametrize

PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d)


class Mask(nn.Module):
    """Parametrization ``W -> W * mask``; the mask is a buffer (saved in ``state_dict``)."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask.detach().clone().to(torch.float32))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask.to(weight.dtype)


def _find_mask(module: nn.Module, name: str) -> Mask | None:
    if not parametrize.is_parametrized(module, name):
        return None
    for p in module.parametrizations[name]:
        if isinstance(p, Mask):
            return p
    return None


def attach_mask(module: nn.Module, mask: torch.Tensor, name: str = "weight") -> Mask:
    """Mask ``module.<name>`` (or replace its mask in place if it already has one)."""
    original = getattr(module, name)
    if mask.shape != original.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} != {name} shape {tuple(original.shape)}")
    existing = _find_mask(module, name)
    if existing is not None:
        existing.mask.copy_(mask.to(existing.mask.dtype))
        return existing
    mask_module = Mask(mask.to(original.device))
    parametrize.register_parametrization(module, name, mask_module)
    return mask_module


def get_mask(module: nn.Module, name: str = "weight") -> torch.Tensor | None:
    """The mask on ``module.<name>`` (a float 0/1 tensor), or ``None``."""
    found = _find_mask(module, name)
    return None if found is None else found.mask


def bake(model: nn.Module) -> nn.Module:
    """Make every parametrization permanent: weights become plain parameters (in place)."""
    for module in list(model.modules()):
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return model


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep the ``round((1 - sparsity) * n)`` largest ``|w|`` (ties broken by position)."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1], got {sparsity}")
    n = weight.numel()
    keep = n - int(round(sparsity * n))
    mask = torch.zeros(n, dtype=torch.float32, device=weight.device)
    if keep > 0:
        # stable sort: equal magnitudes keep the lower index first, so masks are deterministic
        order = torch.sort(weight.detach().abs().flatten(), descending=True, stable=True).indices
        mask[order[:keep]] = 1.0
    return mask.view_as(weight)


def nested_magnitude_masks(weight: torch.Tensor, sparsities: Sequence[float]) -> list[torch.Tensor]:
    """Masks at several sparsities from one ranking of ``|w|``: a weight pruned at sparsity
    ``s`` is pruned at every ``s' > s``."""
    n = weight.numel()
    order = torch.sort(weight.detach().abs().flatten(), descending=True, stable=True).indices
    masks = []
    for s in sparsities:
        if not 0.0 <= s <= 1.0:
            raise ValueError(f"sparsity must lie in [0, 1], got {s}")
        mask = torch.zeros(n, dtype=torch.float32, device=weight.device)
        mask[order[: n - int(round(s * n))]] = 1.0
        masks.append(mask.view_as(weight))
    return masks


def prunable_layers(model: nn.Module, types: tuple[type[nn.Module], ...] = PRUNABLE_TYPES,
                    ignored_layers: Iterable[str] = ()) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of the layers whose weights are pruned (biases and norms are not)."""
    ignored = set(ignored_layers)
    return [(n, m) for n, m in model.named_modules() if isinstance(m, types) and n not in ignored]


def sparsity_of(model: nn.Module, layers: Sequence[tuple[str, nn.Module]] | None = None) -> float:
    """Fraction of zero weights over the given (default: prunable) layers."""
    layers = prunable_layers(model) if layers is None else layers
    total = sum(m.weight.numel() for _, m in layers)
    zeros = sum(int((m.weight == 0).sum()) for _, m in layers)
    return zeros / total if total else math.nan


def _keep_count(n: int, sparsity: float) -> int:
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1], got {sparsity}")
    return n - int(round(sparsity * n))


def global_magnitude_masks(weights: Sequence[torch.Tensor] | Sequence[tuple[str, nn.Module]],
                           sparsity: float) -> list[torch.Tensor]:
    """Masks that keep the ``round((1 - sparsity) * N)`` largest ``|w|`` over all the given
    weights together (one threshold for the whole model; ties: earlier layer, lower index).

    ``weights`` are tensors or ``(name, module)`` pairs from ``prunable_layers``.
    """
    from .knapsack import greedy_prefix_masks

    tensors = [w[1].weight if isinstance(w, tuple) else w for w in weights]
    if not tensors:
        raise ValueError("global_magnitude_masks needs at least one weight")
    keep = _keep_count(sum(t.numel() for t in tensors), sparsity)
    kept = greedy_prefix_masks([t.detach().abs() for t in tensors], keep)
    return [k.view_as(t).to(torch.float32) for k, t in zip(kept, tensors, strict=True)]


def channel_mask(weight: torch.Tensor, sparsity: float, dim: int = 0) -> torch.Tensor:
    """Structured mask: keep the ``round((1 - sparsity) * C)`` channels along ``dim`` (output
    channels by default) of largest l2 norm; a pruned channel is zero in every entry."""
    if not -weight.dim() <= dim < weight.dim():
        raise ValueError(f"dim {dim} out of range for a {weight.dim()}-d weight")
    dim = dim % weight.dim()
    norms = weight.detach().transpose(0, dim).reshape(weight.shape[dim], -1).norm(dim=1)
    keep = _keep_count(norms.numel(), sparsity)
    kept = torch.zeros(norms.numel(), dtype=torch.float32, device=weight.device)
    if keep > 0:
        kept[torch.sort(norms, descending=True, stable=True).indices[:keep]] = 1.0
    shape = [1] * weight.dim()
    shape[dim] = -1
    return kept.view(shape).expand_as(weight).contiguous()


def nm_mask(weight: torch.Tensor, n: int, m: int, dim: int = 1) -> torch.Tensor:
    """N:M mask: in every group of ``m`` consecutive entries along ``dim`` (input channels by
    default, as in NVIDIA's 2:4 sparse tensor cores) keep the ``n`` of largest ``|w|``."""
    if not (isinstance(n, int) and isinstance(m, int) and 0 <= n <= m and m >= 1):
        raise ValueError(f"need integers 0 <= n <= m, m >= 1; got n={n}, m={m}")
    if not -weight.dim() <= dim < weight.dim():
        raise ValueError(f"dim {dim} out of range for a {weight.dim()}-d weight")
    size = weight.shape[dim]
    if size % m:
        raise ValueError(f"weight size {size} along dim {dim} is not a multiple of m={m}")
    moved = weight.detach().abs().movedim(dim, -1)
    groups = moved.reshape(-1, m)
    mask = torch.zeros_like(groups, dtype=torch.float32)
    if n > 0:
        # stable descending sort: equal magnitudes keep the lower position
        top = torch.sort(groups, dim=1, descending=True, stable=True).indices[:, :n]
        mask.scatter_(1, top, 1.0)
    return mask.reshape(moved.shape).movedim(-1, dim).contiguous()
