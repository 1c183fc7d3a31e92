"""Uniform fake quantization with straight-through gradients, as a parametrization.

``fake_quantize(w, bits)`` rounds ``w`` to a uniform grid and returns it in floating point
(the value an integer kernel would compute with). With ``b`` bits:

* symmetric (``b >= 2``): ``q_max = 2^(b-1) - 1``, ``s = max|w| / q_max``,
  ``Q(w) = s * clamp(round(w / s), -q_max, q_max)`` (the narrow range keeps 0 exact and
  the grid symmetric); ``b = 1``: ``Q(w) = alpha * sign(w)`` with ``alpha`` the mean of
  ``|w|`` over the nonzeros, the l2-optimal binary scale (Rastegari et al., 2016);
* asymmetric: the range ``[lo, hi] = [min(w, 0), max(w, 0)]``, ``s = (hi - lo) / (2^b - 1)``,
  zero point ``z = round(-lo / s)``, ``Q(w) = s * (clamp(round(w / s) + z, 0, 2^b - 1) - z)``.

Both map 0 to exactly 0, so pruned weights stay pruned when a ``Mask`` and a
``FakeQuantize`` sit on the same weight. ``per_channel`` takes ``s`` (and ``z``) per output
channel (dim 0). Gradients are straight-through (Bengio et al., 2013): the backward pass
treats ``Q`` as the identity, ``dL/dw = dL/dQ(w)``; the grid is fitted to the range of
``w``, so no weight is clipped and the identity is the STE without clipping.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


def _check_bits(bits: int) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an integer in 1..8, got {bits!r}")
    return bits


def _reduce(w: torch.Tensor, per_channel: bool, fn) -> torch.Tensor:
    """``fn`` (amax/amin/...) over the whole tensor or per output channel, broadcastable."""
    if per_channel and w.dim() > 1:
        return fn(w.reshape(w.shape[0], -1), dim=1).view([-1] + [1] * (w.dim() - 1))
    return fn(w.reshape(-1), dim=0)


def _quantize(w: torch.Tensor, bits: int, symmetric: bool, per_channel: bool) -> torch.Tensor:
    """The quantized values (no gradient bookkeeping)."""
    w = w.detach()
    if symmetric and bits == 1:
        nz = (w != 0).to(w.dtype)
        count = _reduce(nz, per_channel, torch.sum).clamp_min(1.0)
        alpha = _reduce(w.abs(), per_channel, torch.sum) / count
        return alpha * torch.sign(w)
    if symmetric:
        q_max = 2 ** (bits - 1) - 1
        scale = _reduce(w.abs(), per_channel, torch.amax) / q_max
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return torch.clamp(torch.round(w / scale), -q_max, q_max) * scale
    levels = 2 ** bits - 1
    lo = _reduce(w, per_channel, torch.amin).clamp(max=0.0)
    hi = _reduce(w, per_channel, torch.amax).clamp(min=0.0)
    scale = (hi - lo) / levels
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero_point = torch.round(-lo / scale)
    return (torch.clamp(torch.round(w / scale) + zero_point, 0, levels) - zero_point) * scale


def fake_quantize(w: torch.Tensor, bits: int, symmetric: bool = True,
                  per_channel: bool = False) -> torch.Tensor:
    """``Q(w)`` in the forward pass, identity in the backward pass (straight-through)."""
    bits = _check_bits(bits)
    q = _quantize(w, bits, symmetric, per_channel)
    return w + (q - w).detach()


class FakeQuantize(nn.Module):
    """Parametrization ``W -> Q_b(W)``. ``bits`` is a buffer, so it is saved and restored
    with ``state_dict`` (and can be changed in place, e.g. by a bit-width search)."""

    def __init__(self, bits: int, symmetric: bool = True, per_channel: bool = False):
        super().__init__()
        self.register_buffer("bits", torch.tensor(_check_bits(bits), dtype=torch.int64))
        self.symmetric = bool(symmetric)
        self.per_channel = bool(per_channel)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return fake_quantize(weight, int(self.bits), self.symmetric, self.per_channel)

    def extra_repr(self) -> str:
        return (f"bits={int(self.bits)}, symmetric={self.symmetric}, "
                f"per_channel={self.per_channel}")


def attach_fake_quant(module: nn.Module, bits: int, symmetric: bool = True,
                      per_channel: bool = False, name: str = "weight") -> FakeQuantize:
    """Fake-quantize ``module.<name>`` (after any mask already on it); if a ``FakeQuantize``
    is already there, set its bits instead of stacking a second one."""
    existing = get_fake_quant(module, name)
    if existing is not None:
        existing.bits.fill_(_check_bits(bits))
        existing.symmetric, existing.per_channel = bool(symmetric), bool(per_channel)
        return existing
    quantizer = FakeQuantize(bits, symmetric, per_channel).to(getattr(module, name).device)
    parametrize.register_parametrization(module, name, quantizer)
    return quantizer


def get_fake_quant(module: nn.Module, name: str = "weight") -> FakeQuantize | None:
    """The ``FakeQuantize`` on ``module.<name>``, or ``None``."""
    if not parametrize.is_parametrized(module, name):
        return None
    for p in module.parametrizations[name]:
        if isinstance(p, FakeQuantize):
            return p
    return None
