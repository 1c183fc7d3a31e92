r"""Widths of a sequential network as its layers' *input* channels: group norms, the group
l0 proximal operator, and physical removal.

ECC (Yang et al., 2019) and NetAdapt prune a layer's **input** channels: a width ``s_j``
is the number of nonzero input-channel groups of the layer that consumes it (a column
``W[:, c]`` of a linear layer, a slice ``W[:, c, :, :]`` of a convolution, a block of
``h * w`` columns of the first linear layer after ``Flatten``). A channel whose consumer
columns are all zero contributes nothing downstream, so removing it, with the producer's
matching output row, bias, BatchNorm entry and depthwise filter, leaves the function
exactly unchanged (no constant to fold, unlike output-channel removal in ``extract.py``).

``width_boundaries`` finds, in a sequential network (nested ``nn.Sequential`` allowed),
every width between two dense layers (``Conv2d`` with ``groups=1`` or ``Linear``), with the
channel-wise layers in between (BatchNorm, activations, pooling, dropout, ``Flatten``, and
depthwise convolutions, as in MobileNet). ``extract_input_pruned`` builds the smaller dense
network. ``group_l0_prox_keep`` is the exact proximal operator of ECC's W-step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid,
                nn.Hardtanh, nn.Hardswish, nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d,
                nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def _leaves(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _leaves(child)]
    return [module]


def _is_depthwise(m: nn.Module) -> bool:
    return (isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels
            == m.out_channels)


def _is_dense(m: nn.Module) -> bool:
    return isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1)


@dataclass
class WidthBoundary:
    """One compressible width: channels made by ``producer`` and read by ``consumer``."""

    index: int                     # j in the width vector s_0 .. s_L
    producer: int                  # leaf index of the dense layer making the channels
    consumer: int                  # leaf index of the dense layer reading them
    between: list[int] = field(default_factory=list)  # channel-wise leaves in between
    block: int = 1                 # consumer input features per channel (after Flatten)
    width: int = 0


def width_boundaries(model: nn.Module, example_input: torch.Tensor) -> list[WidthBoundary]:
    """The widths ``s_1 .. s_{L-1}`` of a sequential network (``example_input``: one batch,
    for the feature-map size at ``Flatten``)."""
    leaves = _leaves(model)
    boundaries: list[WidthBoundary] = []
    last_dense, between, block = None, [], 1
    x = example_input
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i, leaf in enumerate(leaves):
                if _is_dense(leaf):
                    if last_dense is not None:
                        width = leaves[last_dense].weight.shape[0]
                        boundaries.append(WidthBoundary(len(boundaries) + 1, last_dense, i,
                                                        list(between), block, width))
                    last_dense, between, block = i, [], 1
                elif isinstance(leaf, nn.Flatten):
                    if leaf.start_dim != 1 or leaf.end_dim != -1:
                        raise ValueError("only Flatten(start_dim=1) is supported")
                    block = x[0, 0].numel() if x.dim() > 2 else 1
                elif _is_depthwise(leaf) or isinstance(leaf, _NORMS):
                    between.append(i)
                elif not isinstance(leaf, _ELEMENTWISE):
                    raise ValueError(f"width_boundaries does not support {type(leaf).__name__}; "
                                     "supported: Conv2d (dense or depthwise), Linear, BatchNorm, "
                                     "activations, pooling, dropout, Flatten, Sequential")
                x = leaf(x)
    finally:
        model.train(was_training)
    if last_dense is None:
        raise ValueError("the model has no Conv2d or Linear layer")
    return boundaries


def network_widths(model: nn.Module, example_input: torch.Tensor) -> list[int]:
    """The dense width vector ``u_0 .. u_L``: input channels, each boundary, outputs."""
    leaves = _leaves(model)
    dense = [m for m in leaves if _is_dense(m)]
    first = dense[0].weight.shape[1]
    return [first] + [b.width for b in width_boundaries(model, example_input)] + [
        dense[-1].weight.shape[0]]


def _columns(weight: torch.Tensor, block: int) -> torch.Tensor:
    """The consumer weight as ``(out, channels, rest)``: channel ``c``'s columns at ``[:, c]``."""
    out = weight.shape[0]
    if weight.dim() == 2:
        return weight.reshape(out, weight.shape[1] // block, block)
    return weight.reshape(out, weight.shape[1], -1)


def input_channel_norms(model: nn.Module, boundary: WidthBoundary,
                        include_depthwise: bool = True) -> torch.Tensor:
    """Squared norm of each channel's group: the consumer's columns (plus, by default, the
    depthwise filters between, which are pruned with them)."""
    leaves = _leaves(model)
    w = leaves[boundary.consumer].weight.detach()
    norms = _columns(w, boundary.block).pow(2).sum(dim=(0, 2))
    if include_depthwise:
        for i in boundary.between:
            if _is_depthwise(leaves[i]):
                norms = norms + leaves[i].weight.detach().flatten(1).pow(2).sum(1)
    return norms


def kept_input_widths(model: nn.Module, boundaries: list[WidthBoundary]) -> list[int]:
    """``phi(W_j)``: the number of nonzero input channels at each boundary."""
    leaves = _leaves(model)
    return [int(_columns(leaves[b.consumer].weight.detach(), b.block).ne(0).any(2).any(0).sum())
            for b in boundaries]


@torch.no_grad()
def zero_input_channels(model: nn.Module, boundary: WidthBoundary, keep: torch.Tensor) -> None:
    """Zero the consumer columns (and depthwise filters) of the channels not in ``keep``."""
    leaves = _leaves(model)
    keep = torch.as_tensor(keep, dtype=torch.bool, device=leaves[boundary.consumer].weight.device)
    if keep.numel() != boundary.width:
        raise ValueError(f"keep has {keep.numel()} entries for a width of {boundary.width}")
    w = leaves[boundary.consumer].weight
    cols = _columns(w.data, boundary.block)
    cols[:, ~keep] = 0.0
    for i in boundary.between:
        if _is_depthwise(leaves[i]):
            leaves[i].weight.data[~keep] = 0.0


def strongest_channels(norms_sq: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the ``k`` channels of largest norm (ties: lower index first)."""
    n = norms_sq.numel()
    if not 0 <= k <= n:
        raise ValueError(f"k must lie in [0, {n}], got {k}")
    order = torch.sort(norms_sq.detach().flatten(), descending=True, stable=True).indices
    keep = torch.zeros(n, dtype=torch.bool, device=norms_sq.device)
    keep[order[:k]] = True
    return keep


def group_l0_prox_keep(norms_sq: torch.Tensor, s: float, y: float, rho: float,
                       step: float) -> torch.Tensor:
    r"""Channels kept by the proximal operator of ECC's W-step.

    With ``a_c = |W_c|^2`` (squared group norms) and ``phi`` the number of kept groups,

    .. math::

        \operatorname{prox}(W) = \arg\min_{W'} \frac{1}{2\,\text{step}} |W' - W|^2
            + y\,\phi(W') + \frac{\rho}{2} [\phi(W') - s]_+^2 .

    A kept group is copied unchanged, a dropped one costs ``a_c / (2 step)``; for a given
    count ``k`` the best groups are the ``k`` strongest, and including the one of rank ``r``
    pays off iff ``a_(r) >= 2 step y + rho step ((r - s)_+^2 - (r - 1 - s)_+^2)``. The left
    side falls and the right side grows with ``r``, so the kept set is that prefix.
    """
    if step <= 0 or y < 0 or rho < 0:
        raise ValueError(f"need step > 0, y >= 0, rho >= 0; got {step}, {y}, {rho}")
    a = norms_sq.detach().flatten().to(torch.float64)
    order = torch.sort(a, descending=True, stable=True).indices
    ranks = torch.arange(1, a.numel() + 1, dtype=torch.float64, device=a.device)
    marginal = rho * step * ((ranks - s).clamp(min=0) ** 2 - (ranks - 1 - s).clamp(min=0) ** 2)
    gain = a[order] >= 2 * step * y + marginal
    k = int(torch.cumprod(gain.to(torch.int64), 0).sum())  # the prefix (monotone anyway)
    keep = torch.zeros_like(gain)
    keep[order[:k]] = True
    return keep


def _slice_dense(layer: nn.Module, rows: torch.Tensor | None, cols: torch.Tensor | None,
                 block: int) -> nn.Module:
    w = layer.weight.detach()
    b = None if layer.bias is None else layer.bias.detach()
    if cols is not None:
        if isinstance(layer, nn.Linear):
            w = _columns(w, block)[:, cols].reshape(w.shape[0], -1)
        else:
            w = w[:, cols]
    if rows is not None:
        w = w[rows]
        b = None if b is None else b[rows]
    if isinstance(layer, nn.Linear):
        new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    else:
        new = nn.Conv2d(w.shape[1], w.shape[0], layer.kernel_size, stride=layer.stride,
                        padding=layer.padding, dilation=layer.dilation, bias=b is not None,
                        padding_mode=layer.padding_mode)
    new = new.to(device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None:
            new.bias.copy_(b)
    return new


def _slice_channelwise(layer: nn.Module, keep: torch.Tensor) -> nn.Module:
    n = int(keep.sum())
    if isinstance(layer, _NORMS):
        new = type(layer)(n, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
                          track_running_stats=layer.track_running_stats)
        new = new.to(device=keep.device)
        with torch.no_grad():
            if layer.affine:
                new.weight.copy_(layer.weight[keep])
                new.bias.copy_(layer.bias[keep])
            if layer.track_running_stats:
                new.running_mean.copy_(layer.running_mean[keep])
                new.running_var.copy_(layer.running_var[keep])
                new.num_batches_tracked.copy_(layer.num_batches_tracked)
        return new
    new = nn.Conv2d(n, n, layer.kernel_size, stride=layer.stride, padding=layer.padding,
                    dilation=layer.dilation, groups=n, bias=layer.bias is not None,
                    padding_mode=layer.padding_mode).to(layer.weight.device)
    with torch.no_grad():
        new.weight.copy_(layer.weight[keep])
        if layer.bias is not None:
            new.bias.copy_(layer.bias[keep])
    return new


@torch.no_grad()
def extract_input_pruned(model: nn.Module, example_input: torch.Tensor) -> nn.Sequential:
    """A smaller dense ``nn.Sequential`` equal to ``model`` (eval mode) without the channels
    whose consumer columns are all zero. At least one channel is kept at every width."""
    boundaries = width_boundaries(model, example_input)
    leaves = _leaves(model)
    rows: dict[int, torch.Tensor] = {}
    cols: dict[int, tuple[torch.Tensor, int]] = {}
    channelwise: dict[int, torch.Tensor] = {}
    for b in boundaries:
        alive = _columns(leaves[b.consumer].weight.detach(), b.block).ne(0).any(2).any(0)
        if not bool(alive.any()):  # a zero width would cut the network: keep one channel
            alive[0] = True
        rows[b.producer] = alive
        cols[b.consumer] = (alive, b.block)
        for i in b.between:
            channelwise[i] = alive
    new_leaves = []
    for i, leaf in enumerate(leaves):
        if _is_dense(leaf) and (i in rows or i in cols):
            c, block = cols.get(i, (None, 1))
            new_leaves.append(_slice_dense(leaf, rows.get(i), c, block))
        elif i in channelwise:
            new_leaves.append(_slice_channelwise(leaf, channelwise[i]))
        else:
            new_leaves.append(copy.deepcopy(leaf))
    out = nn.Sequential(*new_leaves)
    out.eval()
    return out
