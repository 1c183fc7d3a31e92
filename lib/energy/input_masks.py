"""Layer input masks (Yang, Zhu and Liu, 2019, section 3.3): a trainable mask ``M`` on each
layer's input positions, ``layer(x * M)``, the same for every example. Its zeros remove
input traffic and MACs from the systolic model (``lib.energy.systolic`` reads the
``input_mask`` parameter of the layer). Training it: a gradient step, clamp to ``[0, 1]``,
an l0 projection keeping a (shrinking) fraction of all mask entries, and finally a rounding
to ``{0, 1}`` (the official code's ``clamp_model_weights``, ``l0proj``, ``round_model_weights``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lib.sparse.knapsack import greedy_prefix_masks

from .systolic import LayerGeometry


def _apply_mask(module: nn.Module, inputs):
    return (inputs[0] * module.input_mask,) + tuple(inputs[1:])


def add_input_masks(model: nn.Module, geometries: Sequence[LayerGeometry],
                    kinds: tuple[str, ...] = ("conv",)) -> list[nn.Parameter]:
    """Give each layer of ``kinds`` an all-ones ``input_mask`` parameter applied to its input
    by a forward pre-hook (the official code masks conv inputs only). Returns the masks."""
    modules = dict(model.named_modules())
    masks = []
    for g in geometries:
        if g.kind not in kinds:
            continue
        mod = modules[g.name]
        if hasattr(mod, "input_mask"):
            raise ValueError(f"{g.name} already has an input mask")
        ref = mod.weight
        mod.register_parameter("input_mask", nn.Parameter(
            torch.ones(g.input_shape, dtype=ref.dtype, device=ref.device)))
        mod.register_forward_pre_hook(_apply_mask)
        masks.append(mod.input_mask)
    return masks


def input_masks(model: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in model.named_parameters() if n.endswith("input_mask")]


@torch.no_grad()
def clamp_masks(masks: Sequence[torch.Tensor]) -> None:
    """Projection onto the box ``[0, 1]``."""
    for m in masks:
        m.clamp_(0.0, 1.0)


@torch.no_grad()
def l0_project_masks(masks: Sequence[torch.Tensor], keep_fraction: float) -> None:
    """Keep the ``floor(keep_fraction * total)`` largest mask entries over all masks
    together; zero the rest (the official ``l0proj``, global)."""
    if not 0 <= keep_fraction <= 1:
        raise ValueError(f"keep_fraction must lie in [0, 1], got {keep_fraction}")
    total = sum(m.numel() for m in masks)
    keep = greedy_prefix_masks([m.detach().abs() for m in masks], int(keep_fraction * total))
    for m, k in zip(masks, keep, strict=True):
        m.mul_(k.view_as(m).to(m.dtype))


@torch.no_grad()
def round_masks(masks: Sequence[torch.Tensor]) -> None:
    """Round to ``{0, 1}`` (values in ``[0, 1]``; 0.5 rounds to 0, as ``torch.round``)."""
    for m in masks:
        m.round_()
