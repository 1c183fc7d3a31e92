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
