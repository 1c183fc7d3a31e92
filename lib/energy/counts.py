"""MAC and memory-access counts of conv and linear layers, dense and effectual.

A convolution ``Conv(C_in -> C_out, k x k, groups g)`` producing an ``H x W`` map does
``C_out (C_in / g) k^2 H W`` multiply-accumulates per example: every weight is used once per
output position. Pruning to ``nnz`` nonzero weights leaves ``nnz H W`` *effectual* MACs (the
products with a nonzero weight; zero-padded inputs are counted as in the dense figure). A
linear layer does ``out * in`` MACs per input row and ``nnz`` effectual ones. A transposed
convolution ``ConvTranspose(C_in -> C_out, k x k, groups g)`` reading an ``H x W`` map does
``C_in (C_out / g) k^2 H W``: every weight is used once per *input* position (its output
positions overlap and are summed). ``layer_costs``
measures the shapes with forward hooks on one batch, so any architecture works.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

COUNTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
           nn.ConvTranspose3d, nn.Linear)


@dataclass
class LayerCost:
    """Counts of one conv/linear layer for the batch it was measured on."""

    name: str
    kind: str
    weights: int
    nnz: int
    macs: int
    effectual_macs: int
    input_elems: int
    output_elems: int

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def layer_costs(model: nn.Module, example_input: torch.Tensor) -> list[LayerCost]:
    """Counts of every conv/linear layer of ``model`` on ``example_input`` (batch included;
    pass one example for per-example figures). Masks and quantizers on the weights are seen
    through their parametrizations."""
    found: list[LayerCost] = []
    hooks = []

    def hook(name: str):
        def record(module: nn.Module, inputs, output) -> None:
            w = module.weight.detach()
            x = inputs[0]
            if isinstance(module, nn.Linear):
                uses = x.numel() // module.in_features  # rows that meet every weight
            elif isinstance(module, nn.modules.conv._ConvTransposeNd):
                uses = x.shape[0] * x[0, 0].numel()  # each weight meets every input position
            else:  # each weight meets every output position of its channel
                uses = output.shape[0] * output[0, 0].numel()
            nnz = int((w != 0).sum())
            found.append(LayerCost(name=name, kind=type(module).__name__, weights=w.numel(),
                                   nnz=nnz, macs=w.numel() * uses, effectual_macs=nnz * uses,
                                   input_elems=x.numel(), output_elems=output.numel()))
        return record

    for name, module in model.named_modules():
        if isinstance(module, COUNTED):
            hooks.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        model(example_input)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return found


def total_macs(costs: list[LayerCost], effectual: bool = False) -> int:
    """Sum of (effectual) MACs over layers."""
    return sum(c.effectual_macs if effectual else c.macs for c in costs)
