"""Physical removal of pruned channels: a masked network becomes a smaller dense one.

Channel masks only zero weights; the network keeps its size and its MACs. Extraction (the
structured-removal step of Torch-Pruning, hand-written here because the networks are small
and the function must stay exactly equal, quantizer parametrizations included) builds a new
``nn.Sequential`` in which every output channel that is constant is gone, along with the
matching normalization entries and the matching input channels (or flattened input features)
of the next conv/linear layer. The new network computes the same function.

A channel is removed when its weight rows are all zero, or when a per-channel layer after
it (a BatchNorm/InstanceNorm with a zero scale, or a module implementing the protocol below)
makes it constant. A dead channel still carries a constant ``c`` (its bias, through the
normalization and the activation). ``c = 0`` is removed outright; ``c != 0`` is folded into
the next layer's bias, which is exact for a linear layer and for a convolution without
padding or with reflection / replication padding; before a zero-padded convolution or a
transposed convolution it is an error (mask the bias and the norm too:
``attach_channel_mask`` does).

**Residual blocks** (:class:`Residual`, ``x + body(x)``): the channels of the stream are
pruned consistently where they add. A stream channel is removed only when it is dead at
every layer that writes into the stream (the layer before the first block and the last
layer of every block's body); otherwise it is kept in all of them.

Supported layers: ``Conv2d`` (groups=1), ``ConvTranspose2d`` (groups=1; its output channel is
weight dim 1), ``Linear``, ``BatchNorm1d/2d``, ``InstanceNorm1d/2d``, element-wise
activations, dropout, pooling, ``ReflectionPad2d`` / ``ReplicationPad2d`` / ``ZeroPad2d``,
``Flatten``, nested ``Sequential`` (flattened; names joined by ``_``) and :class:`Residual`.
Other modules take part through a protocol: an attribute ``elementwise = True`` (applied
per element), or per-channel methods ``extract_channels(keep) -> module``,
``constant_channels() -> bool mask`` (channels whose output is constant whatever the input)
and ``channel_constants(value) -> value`` (the per-channel output for a per-channel constant
input; for the ``constant_channels`` whatever the input). The function is the eval-mode one.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from .masks import attach_mask

_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid,
                nn.Hardtanh, nn.Hardswish, nn.Identity)
_PASS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.MaxPool2d, nn.AvgPool2d,
         nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.MaxPool1d, nn.AvgPool1d)
_CONST_PADS = (nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReplicationPad1d,
               nn.ReplicationPad2d)   # a constant channel stays the same constant
_ZERO_PADS = (nn.ZeroPad2d, nn.ConstantPad1d, nn.ConstantPad2d)
_WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm1d, nn.InstanceNorm2d)


class Residual(nn.Module):
    """``x + body(x)``: a residual block whose channels extraction prunes consistently."""

    def __init__(self, body: nn.Sequential):
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _out_dim(layer: nn.Module) -> int:
    """The weight dimension of the output channels (1 for a transposed convolution)."""
    return 1 if isinstance(layer, nn.ConvTranspose2d) else 0


def attach_channel_mask(layer: nn.Conv2d | nn.ConvTranspose2d | nn.Linear, keep: torch.Tensor,
                        norm: nn.Module | None = None) -> None:
    """Prune output channels of ``layer`` (``keep``: bool per channel) so that they output
    exactly zero: mask the weight rows (dim 1 of a ``ConvTranspose2d``), the bias and the
    following norm's affine parameters, all as ``Mask`` parametrizations."""
    keep = torch.as_tensor(keep, dtype=torch.float32, device=layer.weight.device).flatten()
    dim = _out_dim(layer)
    out = layer.weight.shape[dim]
    if isinstance(layer, nn.ConvTranspose2d) and layer.groups != 1:
        raise ValueError(f"grouped transposed convolution {layer} is not supported")
    if keep.numel() != out:
        raise ValueError(f"keep has {keep.numel()} entries for {out} output channels")
    shape = [1] * layer.weight.dim()
    shape[dim] = -1
    attach_mask(layer, keep.view(shape).expand_as(layer.weight).contiguous())
    if layer.bias is not None:
        attach_mask(layer, keep.clone(), name="bias")
    if norm is not None:
        if norm.num_features != out:
            raise ValueError(f"norm has {norm.num_features} features, layer {out} channels")
        if norm.affine:
            attach_mask(norm, keep.clone(), name="weight")
            attach_mask(norm, keep.clone(), name="bias")


def _items(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The leaves of nested Sequentials (a :class:`Residual` is one leaf), named by path."""
    if isinstance(module, nn.Sequential):
        return [leaf for name, child in module.named_children()
                for leaf in _items(child, f"{prefix}_{name}" if prefix else name)]
    return [(prefix or "0", module)]


def _pair(p) -> tuple:
    return tuple(p) if isinstance(p, (tuple, list)) else (p, p)


def _is_channelwise(m: nn.Module) -> bool:
    return isinstance(m, _NORMS) or hasattr(m, "extract_channels")


def _is_elementwise(m: nn.Module) -> bool:
    return isinstance(m, _ELEMENTWISE) or getattr(m, "elementwise", False) is True


def _norm_stats(m: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    if m.track_running_stats and m.running_mean is not None:
        return m.running_mean, m.running_var
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        raise ValueError("BatchNorm without running statistics cannot be extracted")
    return None


def _constant_channels(m: nn.Module) -> torch.Tensor:
    if hasattr(m, "constant_channels"):
        return m.constant_channels().detach().bool()
    if m.affine:
        return m.weight.detach() == 0
    return torch.zeros(m.num_features, dtype=torch.bool)


def _channel_constants(m: nn.Module, value: torch.Tensor) -> torch.Tensor:
    if hasattr(m, "channel_constants"):
        return m.channel_constants(value).detach()
    stats = _norm_stats(m)
    if stats is None:  # instance statistics: a constant channel normalises to zero
        value = torch.zeros_like(value)
    else:
        value = (value - stats[0]) / torch.sqrt(stats[1] + m.eps)
    if m.affine:
        value = value * m.weight.detach() + m.bias.detach()
    return value


def _subset_norm(m: nn.Module, keep: torch.Tensor) -> nn.Module:
    if hasattr(m, "extract_channels"):
        return m.extract_channels(keep)
    p = m.weight if m.affine else m.running_mean
    new = type(m)(int(keep.sum()), eps=m.eps, momentum=m.momentum, affine=m.affine,
                  track_running_stats=m.track_running_stats)
    new = new.to(device=p.device if p is not None else None)
    if m.affine:
        new.weight.copy_(m.weight[keep])
        new.bias.copy_(m.bias[keep])
    if m.track_running_stats and m.running_mean is not None:
        new.running_mean.copy_(m.running_mean[keep])
        new.running_var.copy_(m.running_var[keep])
        new.num_batches_tracked.copy_(m.num_batches_tracked)
    return new


class _Analysis:
    """Pass 1: which output channels of each weighted layer are dead, and which layers
    write into the same residual stream (tied: they keep the union of their channels)."""

    def __init__(self):
        self.parent: dict[int, int] = {}
        self.dead: dict[int, torch.Tensor] = {}
        self.full: set[int] = set()     # roots whose set keeps every channel
        self.order: list[int] = []

    def find(self, k: int) -> int:
        while self.parent[k] != k:
            k = self.parent[k]
        return k

    def close(self, producer: int | None, const: torch.Tensor | None) -> None:
        if producer is not None and const is not None:
            self.dead[producer] = self.dead[producer] & const

    def tie(self, a: int | None, b: int | None) -> None:
        if b is None:
            return
        if a is None:   # a block on the network's input: the stream is the input
            self.full.add(self.find(b))
            return
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
            if rb in self.full:
                self.full.add(ra)

    def alive(self, layer: nn.Module) -> torch.Tensor:
        k = id(layer)
        root = self.find(k)
        members = [m for m in self.parent if self.find(m) == root]
        n = self.dead[k].numel()
        if root in self.full or self.order[-1] in members:
            return torch.ones(n, dtype=torch.bool)
        alive = torch.zeros(n, dtype=torch.bool)
        for m in members:
            alive |= ~self.dead[m]
        if not alive.any():  # a layer of width 0 cannot be built: keep one (dead) channel
            alive[0] = True
        return alive


def _analyse(items, producer, const, A: _Analysis):
    for _, m in items:
        if isinstance(m, Residual):
            A.close(producer, const)
            p_body, c_body = _analyse(_items(m.body), producer, const, A)
            A.close(p_body, c_body)
            A.tie(producer, p_body if p_body is not producer else None)
            const = None if producer is None else torch.ones_like(A.dead[producer])
        elif isinstance(m, _WEIGHTED):
            A.close(producer, const)
            w = m.weight.detach()
            dim = _out_dim(m)
            rows_zero = ~w.transpose(0, dim).flatten(1).ne(0).any(1).cpu()
            k = id(m)
            A.parent.setdefault(k, k)
            A.dead[k] = torch.ones_like(rows_zero)
            A.order.append(k)
            producer, const = k, rows_zero
        elif _is_channelwise(m):
            if const is not None:
                const = const | _constant_channels(m).cpu()
        elif isinstance(m, nn.Flatten):
            A.close(producer, const)
            producer, const = None, None
    return producer, const


def _fold(layer: nn.Module, dead_in: torch.Tensor, value: torch.Tensor,
          weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor | None:
    """The layer's bias with the constant input of removed channels folded in."""
    const = value[dead_in]
    if not bool((const != 0).any()):
        return bias
    first = f"{const[const != 0][0].item():.4g}"
    if isinstance(layer, nn.ConvTranspose2d):
        raise ValueError(f"a removed channel outputs the constant {first}, which cannot be "
                         f"folded into the transposed {layer}; mask its bias and norm too "
                         f"(attach_channel_mask)")
    if (isinstance(layer, nn.Conv2d) and any(p != 0 for p in _pair(layer.padding))
            and layer.padding_mode == "zeros"):
        raise ValueError(f"a removed channel outputs the constant {first}, which cannot be "
                         f"folded into a zero-padded {layer}; mask its bias and norm too "
                         f"(attach_channel_mask)")
    w_dead = weight[:, dead_in]
    shift = (w_dead * const.view([1, -1] + [1] * (weight.dim() - 2))).flatten(1).sum(1)
    return shift if bias is None else bias + shift


def _new_weighted(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None):
    kw = {"bias": bias is not None, "device": weight.device, "dtype": weight.dtype}
    if isinstance(layer, nn.ConvTranspose2d):
        new = nn.ConvTranspose2d(weight.shape[0], weight.shape[1], layer.kernel_size,
                                 stride=layer.stride, padding=layer.padding,
                                 output_padding=layer.output_padding,
                                 dilation=layer.dilation, **kw)
    elif isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(weight.shape[1], weight.shape[0], layer.kernel_size,
                        stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                        padding_mode=layer.padding_mode, **kw)
    else:
        new = nn.Linear(weight.shape[1], weight.shape[0], **kw)
    new.weight.copy_(weight)
    if bias is not None:
        new.bias.copy_(bias)
    return new


def _build(items, x, state, A: _Analysis):
    """Pass 2: the new layers. ``state``: (alive, known, value) per channel of the current
    activation (``None`` at the input): kept channels, channels known to be constant, and
    their constants."""
    new_items: list[tuple[str, nn.Module]] = []
    for name, layer in items:
        y = layer(x)
        alive, known, value = state if state is not None else (None, None, None)
        if isinstance(layer, Residual):
            if alive is None:
                c = x.shape[1]
                alive = torch.ones(c, dtype=torch.bool)
                known = torch.zeros(c, dtype=torch.bool)
                value = torch.zeros(c, dtype=x.dtype, device=x.device)
            body_items, (alive_b, known_b, value_b) = _build(
                _items(layer.body), x, (alive, known, value), A)
            if not torch.equal(alive_b, alive):
                raise ValueError(f"residual block {name}: its body changes the stream's "
                                 "channels (it must end on the stream's width)")
            new = copy.deepcopy(layer)
            new.body = nn.Sequential(OrderedDict(body_items))
            new_items.append((name, new))
            state = (alive, known & known_b, value + value_b)
        elif isinstance(layer, _WEIGHTED):
            if getattr(layer, "groups", 1) != 1:
                raise ValueError(f"grouped convolution {layer} is not supported")
            dim = _out_dim(layer)
            weight = layer.weight.detach().clone()
            bias = None if layer.bias is None else layer.bias.detach().clone()
            rows_zero = ~weight.transpose(0, dim).flatten(1).ne(0).any(1)
            if alive is not None:
                dead_in = ~alive.to(weight.device)
                if bool((dead_in & ~known.to(weight.device)).any()):
                    raise ValueError(f"{name}: a removed input channel is not constant")
                if dead_in.any():
                    if isinstance(layer, nn.ConvTranspose2d):
                        bias = _fold(layer, dead_in, value, weight.transpose(0, 1), bias)
                    else:
                        bias = _fold(layer, dead_in, value, weight, bias)
                keep_in = ~dead_in
                weight = weight[keep_in] if dim == 1 else weight[:, keep_in]
            out_alive = A.alive(layer).to(weight.device)
            weight = weight[:, out_alive] if dim == 1 else weight[out_alive]
            full_bias = (torch.zeros(out_alive.numel(), dtype=weight.dtype, device=weight.device)
                         if bias is None else bias)
            new_items.append((name, _new_weighted(
                layer, weight, None if bias is None else bias[out_alive])))
            state = (out_alive, rows_zero, full_bias)
        elif _is_channelwise(layer):
            if alive is None:
                new_items.append((name, copy.deepcopy(layer)))
            else:
                new_items.append((name, _subset_norm(layer, alive.to(value.device))))
                const = _constant_channels(layer).to(known.device)
                state = (alive, known | const, _channel_constants(layer, value))
        elif _is_elementwise(layer):
            new_items.append((name, copy.deepcopy(layer)))
            if alive is not None:
                state = (alive, known, layer(value))
        elif isinstance(layer, _PASS + _CONST_PADS + _ZERO_PADS):
            pads = getattr(layer, "padding", 0)
            padded = isinstance(layer, _ZERO_PADS) or (
                isinstance(layer, _PASS) and any(p != 0 for p in _pair(pads)))
            if alive is not None and padded and bool((value[~alive] != 0).any()):
                raise ValueError(f"a removed channel's nonzero constant cannot pass the padded "
                                 f"{layer}; mask its bias and norm too")
            new_items.append((name, copy.deepcopy(layer)))
        elif isinstance(layer, nn.Flatten):
            if layer.start_dim != 1 or layer.end_dim != -1:
                raise ValueError("only Flatten(start_dim=1) is supported")
            if alive is not None:
                per_channel = x[0, 0].numel() if x.dim() > 2 else 1
                state = tuple(t.repeat_interleave(per_channel) for t in (alive, known, value))
            new_items.append((name, copy.deepcopy(layer)))
        else:
            raise ValueError(f"extract_channel_pruned does not support {type(layer).__name__}; "
                             "supported: Conv2d, ConvTranspose2d, Linear, BatchNorm, "
                             "InstanceNorm, activations, pooling, dropout, padding, Flatten, "
                             "Sequential, Residual and modules with extract_channels")
        x = y
    if state is None:
        state = (None, None, None)
    return new_items, state


@torch.no_grad()
def extract_channel_pruned(model: nn.Module, example_input: torch.Tensor) -> nn.Sequential:
    """A smaller dense ``nn.Sequential`` equal (eval mode) to ``model`` without its dead
    channels. ``example_input`` (one batch) gives the spatial sizes needed at ``Flatten``.

    ``model``: an ``nn.Sequential`` (nested ones are flattened, names joined by ``_``;
    :class:`Residual` blocks keep their class with a new body). The last conv/linear layer
    keeps all its outputs (they are the network's output).
    """
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"extract_channel_pruned takes an nn.Sequential, not "
                         f"{type(model).__name__}")
    items = _items(model)
    A = _Analysis()
    _analyse(items, None, None, A)
    if not A.order:
        raise ValueError("the model has no Conv2d, ConvTranspose2d or Linear layer to extract")
    was_training = model.training
    model.eval()
    new_items, _ = _build(items, example_input, None, A)
    model.train(was_training)
    out = nn.Sequential(OrderedDict(new_items))
    out.eval()
    return out
