"""Physical removal of pruned channels: a masked network becomes a smaller dense one.

Channel masks only zero weights; the network keeps its size and its MACs. Extraction (the
structured-removal step of Torch-Pruning, here for sequential networks) builds a new
``nn.Sequential`` in which every output channel whose weights are all zero is gone, along
with the matching BatchNorm entries and the matching input channels (or flattened input
features) of the next conv/linear layer. The new network computes the same function.

A dead channel still outputs a constant ``c`` (its bias, shifted by BatchNorm, through the
activation). ``c = 0`` is removed outright; ``c != 0`` is folded into the next layer's bias,
which is exact for a linear layer and for a convolution without padding; before a padded
convolution it is an error (mask the bias and the BatchNorm too: ``attach_channel_mask``
does). Supported layers: ``Conv2d`` (groups=1), ``Linear``, ``BatchNorm1d/2d``, element-wise
activations, dropout, pooling, ``Flatten`` and nested ``Sequential``; the function is the
eval-mode one (BatchNorm with running statistics).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .masks import attach_mask

_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid,
                nn.Hardtanh, nn.Hardswish, nn.Identity)
_PASS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d,
         nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.MaxPool1d, nn.AvgPool1d)


def attach_channel_mask(layer: nn.Conv2d | nn.Linear, keep: torch.Tensor,
                        norm: nn.BatchNorm1d | nn.BatchNorm2d | None = None) -> None:
    """Prune output channels of ``layer`` (``keep``: bool per channel) so that they output
    exactly zero: mask the weight rows, the bias and the following BatchNorm's affine
    parameters, all as ``Mask`` parametrizations."""
    keep = torch.as_tensor(keep, dtype=torch.float32, device=layer.weight.device).flatten()
    out = layer.weight.shape[0]
    if keep.numel() != out:
        raise ValueError(f"keep has {keep.numel()} entries for {out} output channels")
    shape = [-1] + [1] * (layer.weight.dim() - 1)
    attach_mask(layer, keep.view(shape).expand_as(layer.weight).contiguous())
    if layer.bias is not None:
        attach_mask(layer, keep.clone(), name="bias")
    if norm is not None:
        if norm.num_features != out:
            raise ValueError(f"norm has {norm.num_features} features, layer {out} channels")
        if norm.affine:
            attach_mask(norm, keep.clone(), name="weight")
            attach_mask(norm, keep.clone(), name="bias")


def _leaves(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _leaves(child)]
    return [module]


def _fold_constant(layer: nn.Module, dead_in: torch.Tensor, const: torch.Tensor,
                   weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor | None:
    """The next layer's bias with the constant input of removed channels folded in."""
    if not bool((const != 0).any()):
        return bias
    if isinstance(layer, nn.Conv2d) and any(p != 0 for p in _pair(layer.padding)):
        raise ValueError(
            f"a removed channel outputs the constant {const[const != 0][0].item():.4g}, "
            f"which cannot be folded into a padded {layer}; mask its bias and BatchNorm too "
            f"(attach_channel_mask)")
    w_dead = weight[:, dead_in]
    shift = (w_dead * const.view([1, -1] + [1] * (weight.dim() - 2))).flatten(1).sum(1)
    return shift if bias is None else bias + shift


def _pair(p) -> tuple:
    return tuple(p) if isinstance(p, (tuple, list)) else (p, p)


@torch.no_grad()
def extract_channel_pruned(model: nn.Module, example_input: torch.Tensor) -> nn.Sequential:
    """A smaller dense ``nn.Sequential`` equal (eval mode) to ``model`` without its zero
    channels. ``example_input`` (one batch) gives the spatial sizes needed at ``Flatten``.

    The last conv/linear layer keeps all its outputs (they are the network's output).
    """
    leaves = _leaves(model)
    weighted = [i for i, m in enumerate(leaves) if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not weighted:
        raise ValueError("the model has no Conv2d or Linear layer to extract")
    was_training = model.training
    model.eval()
    x = example_input
    new_layers: list[nn.Module] = []
    alive: torch.Tensor | None = None  # bool per channel/feature of the current activation
    const: torch.Tensor | None = None  # value of each channel (meaningful where dead)
    for i, layer in enumerate(leaves):
        y = layer(x)
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            if isinstance(layer, nn.Conv2d) and layer.groups != 1:
                raise ValueError(f"grouped convolution {layer} is not supported")
            weight = layer.weight.detach().clone()
            bias = None if layer.bias is None else layer.bias.detach().clone()
            if alive is not None:
                bias = _fold_constant(layer, ~alive, const[~alive], weight, bias)
                weight = weight[:, alive]
            out_alive = weight.flatten(1).ne(0).any(1)
            if i == weighted[-1]:
                out_alive = torch.ones_like(out_alive)
            weight = weight[out_alive]
            if isinstance(layer, nn.Conv2d):
                new = nn.Conv2d(weight.shape[1], weight.shape[0], layer.kernel_size,
                                stride=layer.stride, padding=layer.padding,
                                dilation=layer.dilation, bias=bias is not None,
                                padding_mode=layer.padding_mode)
            else:
                new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
            new.weight.copy_(weight)
            full_bias = torch.zeros(out_alive.numel(), dtype=weight.dtype)
            if bias is not None:
                new.bias.copy_(bias[out_alive])
                full_bias = bias
            new_layers.append(new)
            alive, const = out_alive, torch.where(out_alive, 0.0, full_bias)
        elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if alive is None:
                new_layers.append(copy.deepcopy(layer))
                x = y
                continue
            new = type(layer)(int(alive.sum()), eps=layer.eps, momentum=layer.momentum,
                              affine=layer.affine,
                              track_running_stats=layer.track_running_stats)
            if layer.affine:
                new.weight.copy_(layer.weight[alive])
                new.bias.copy_(layer.bias[alive])
            if layer.track_running_stats:
                new.running_mean.copy_(layer.running_mean[alive])
                new.running_var.copy_(layer.running_var[alive])
                new.num_batches_tracked.copy_(layer.num_batches_tracked)
                mean, var = layer.running_mean, layer.running_var
            else:
                raise ValueError("BatchNorm without running statistics cannot be extracted")
            gamma = layer.weight if layer.affine else torch.ones_like(mean)
            beta = layer.bias if layer.affine else torch.zeros_like(mean)
            const = (const - mean) / torch.sqrt(var + layer.eps) * gamma + beta
            new_layers.append(new)
        elif isinstance(layer, _ELEMENTWISE):
            new_layers.append(copy.deepcopy(layer))
            if const is not None:
                const = layer(const)
        elif isinstance(layer, _PASS):
            pads = getattr(layer, "padding", 0)
            if const is not None and any(p != 0 for p in _pair(pads)) and bool(
                    (const[~alive] != 0).any()):
                raise ValueError(f"a removed channel's nonzero constant cannot pass the padded "
                                 f"{layer}; mask its bias and BatchNorm too")
            new_layers.append(copy.deepcopy(layer))
        elif isinstance(layer, nn.Flatten):
            if layer.start_dim != 1 or layer.end_dim != -1:
                raise ValueError("only Flatten(start_dim=1) is supported")
            if alive is not None:
                per_channel = x[0, 0].numel() if x.dim() > 2 else 1
                alive = alive.repeat_interleave(per_channel)
                const = const.repeat_interleave(per_channel)
            new_layers.append(copy.deepcopy(layer))
        else:
            raise ValueError(f"extract_channel_pruned does not support {type(layer).__name__}; "
                             "supported: Conv2d, Linear, BatchNorm, activations, pooling, "
                             "dropout, Flatten, Sequential")
        x = y
    model.train(was_training)
    out = nn.Sequential(*new_layers)
    out.eval()
    return out
