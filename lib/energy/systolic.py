"""The energy model of a systolic array (Eyeriss-like) used by Yang, Zhu and Liu (ICLR 2019).

Energies are in units of one register-file access (``rf_energy = 1``), as in the paper:
a DRAM access costs 200, an on-chip cache (global buffer) access 6, a MAC 3 (the MAC and its
register reads and write). The array has ``pe_rows x pe_cols = 12 x 14`` processing
elements, an input cache of 51,200 entries and a kernel cache of 4,096 entries (Eyeriss:
100 kB and 8 kB of 16-bit values). This module follows the official code
(``sa_energy_model.py`` of hyang1990/model_based_energy_constrained_compression, function
``energy_eval2``) term by term; each function below says which term it is.

For a layer with weight support ``W`` (nonzero weights) and input support ``X`` (the
nonzeros of the layer's *input mask*: a static mask on the input positions, the same for
every example; activation sparsity that varies with the data is not modelled):

Conv ``d x c x r x r`` (stride ``xi``, padding ``p``, groups ``g``), input ``c x h x w``,
``L = h' w'`` output positions, ``U`` = nonzeros of the unfolded input (patch entries):

====================  ===============================================================
computation           ``e_mac * #{(weight, input) pairs with both nonzero}``
input cache           ``U * ceil((d / g) / n) * e_cache``
input register file   ``U * (d / g) * e_rf``
input DRAM            ``(|X| + refetched) * e_mem``: each input once, plus the rows read
                      again when the input does not fit the input cache
output DRAM           ``L * d * e_mem`` (each output written once)
weight cache          ``ceil(L / m) * |W| * e_cache``
weight register file  ``L * |W| * e_rf``
weight DRAM           ``(min(|W|, s2) + ceil(L / m) * max(0, |W| - s2)) * e_mem``: weights
                      beyond the kernel cache are fetched again for every pass
====================  ===============================================================

Linear ``d x c``, input support ``X`` on the ``c`` inputs:

====================  ===============================================================
computation           ``e_mac * #{nonzero weights on a nonzero input}``
input cache           ``ceil(d / n) * |X| * e_cache``
input register file   ``d * |X| * e_rf``
input DRAM            ``(min(|X|, s1) + ceil(d / n) * max(0, |X| - s1)) * e_mem``
output DRAM           ``d * e_mem``
weights               ``(e_mem + e_cache + e_rf) * |W|``
====================  ===============================================================

One deviation: the official code counts a linear layer's MACs as ``|W|`` (its linear layers
carry no input mask); here a weight whose input is masked does no effectual MAC, the same
rule as for convolutions.

Written from the paper and its code, not from a library: no maintained package models this
array (Timeloop/Accelergy are external C++ tools with their own architecture files).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class SystolicArray:
    """Hardware parameters; energies in register-file-access units (the paper's)."""

    pe_rows: int = 12                      # m: output positions processed in parallel
    pe_cols: int = 14                      # n: output channels processed in parallel
    input_cache_entries: int = 51200       # s1 (100 kB of 16-bit values)
    kernel_cache_entries: int = 4096       # s2 (8 kB of 16-bit values)
    dram_energy_per_access: float = 200.0  # e_mem
    cache_energy_per_access: float = 6.0   # e_cache
    rf_energy_per_access: float = 1.0      # e_rf
    mac_energy_per_op: float = 3.0         # e_mac (the MAC with its register reads/write)

    def __post_init__(self):
        for name in ("pe_rows", "pe_cols", "input_cache_entries", "kernel_cache_entries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("dram_energy_per_access", "cache_energy_per_access",
                     "rf_energy_per_access", "mac_energy_per_op"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


EYERISS = SystolicArray()


@dataclass(frozen=True)
class LayerGeometry:
    """What the energy model needs of one conv/linear layer (one example's input)."""

    name: str
    kind: str                  # "conv" | "linear"
    in_channels: int           # c (inputs of a linear layer)
    out_channels: int          # d (outputs of a linear layer)
    in_height: int = 1
    in_width: int = 1
    kernel_size: int = 1
    stride: int = 1
    padding: int = 0
    groups: int = 1

    @property
    def out_height(self) -> int:
        return (self.in_height + 2 * self.padding - self.kernel_size) // self.stride + 1

    @property
    def out_width(self) -> int:
        return (self.in_width + 2 * self.padding - self.kernel_size) // self.stride + 1

    @property
    def out_positions(self) -> int:
        """L = h' w' (1 for a linear layer)."""
        return self.out_height * self.out_width if self.kind == "conv" else 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of the input mask: ``(c, h, w)`` or ``(c,)``."""
        if self.kind == "conv":
            return (self.in_channels, self.in_height, self.in_width)
        return (self.in_channels,)


@dataclass
class LayerEnergy:
    """Every term of one layer's energy (register-file-access units) and its counts."""

    name: str
    kind: str
    weight_nnz: int
    input_nnz: int
    effectual_macs: int
    computation: float
    input_cache: float
    input_rf: float
    input_dram: float
    output_dram: float
    weight_cache: float
    weight_rf: float
    weight_dram: float
    refetched_input_entries: int = 0
    total: float = field(init=False)

    def __post_init__(self):
        self.total = (self.computation + self.input_cache + self.input_rf + self.input_dram
                      + self.output_dram + self.weight_cache + self.weight_rf
                      + self.weight_dram)

    @property
    def input_energy(self) -> float:
        """Data access of inputs and outputs (fixed while the input mask is fixed)."""
        return self.input_cache + self.input_rf + self.input_dram + self.output_dram

    @property
    def weight_energy(self) -> float:
        return self.weight_cache + self.weight_rf + self.weight_dram

    def as_dict(self) -> dict:
        return asdict(self)


def _check_int(x: int, name: str) -> int:
    if int(x) != x or x < 1:
        raise ValueError(f"{name} must be a positive integer, got {x}")
    return int(x)


def layer_geometries(model: nn.Module, example_input: torch.Tensor) -> list[LayerGeometry]:
    """Geometry of every ``nn.Conv2d`` / ``nn.Linear`` of ``model``, in forward order,
    measured with forward hooks on ``example_input`` (one example, batch dimension 1)."""
    if example_input.shape[0] != 1:
        raise ValueError(f"pass one example (batch 1), got shape {tuple(example_input.shape)}")
    found: list[LayerGeometry] = []
    hooks = []

    def hook(name: str):
        def record(module, inputs, output) -> None:
            x = inputs[0]
            if isinstance(module, nn.Linear):
                if x.dim() != 2:
                    raise ValueError(f"{name}: linear input must be (1, features)")
                found.append(LayerGeometry(name, "linear", module.in_features,
                                           module.out_features))
                return
            if module.dilation != (1, 1) or len(set(module.kernel_size)) != 1 or \
                    len(set(module.stride)) != 1 or not isinstance(module.padding, tuple) or \
                    len(set(module.padding)) != 1:
                raise ValueError(f"{name}: the model handles square kernels, strides and "
                                 f"paddings without dilation")
            found.append(LayerGeometry(name, "conv", module.in_channels, module.out_channels,
                                       x.shape[2], x.shape[3], module.kernel_size[0],
                                       module.stride[0], module.padding[0], module.groups))
        return record

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            hooks.append(module.register_forward_hook(hook(name)))
        elif isinstance(module, (nn.Conv1d, nn.Conv3d)):
            raise ValueError(f"{name}: only Conv2d and Linear layers are modelled")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return found


def refetched_input_entries(row_nnz: list[int], kernel_size: int, stride: int, padding: int,
                            cache_entries: int) -> int:
    """Input entries read from DRAM a second time because the input overflows the cache
    (the official ``conv_cache_overlap``): the cache is filled with as many whole input rows
    as fit; the output rows they cover are computed; the next fill starts at the first row
    still needed, so the rows shared by two fills are read twice. ``row_nnz[i]`` = nonzero
    inputs in row ``i`` over all channels; padding rows hold none."""
    rows = [0] * padding + [int(v) for v in row_nnz] + [0] * padding
    refetched, begin, prev_end = 0, 0, None
    while begin + kernel_size <= len(rows):
        if prev_end is not None and begin < prev_end:
            refetched += sum(rows[begin:prev_end])
        end, filled = begin, 0
        while end < len(rows) and filled + rows[end] <= cache_entries:
            filled += rows[end]
            end += 1
        if end - begin < kernel_size:
            raise ValueError(f"the input cache ({cache_entries} entries) cannot hold "
                             f"{kernel_size} input rows")
        prev_end = end
        begin += ((end - begin - kernel_size) // stride + 1) * stride
    return refetched


def _support(t: torch.Tensor | None, shape: tuple[int, ...], what: str) -> torch.Tensor:
    if t is None:
        return torch.ones(shape, dtype=torch.float64)
    t = t.detach()
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{what} has shape {tuple(t.shape)}, expected {tuple(shape)}")
    return (t != 0).to(torch.float64).cpu()


def weight_macs(geom: LayerGeometry, input_mask: torch.Tensor | None) -> torch.Tensor:
    """For each weight, how many nonzero inputs it multiplies in one inference (the
    effectual MACs it would do if nonzero): the per-weight computation count. Its sum over
    the nonzero weights is the layer's effectual MAC count exactly."""
    x = _support(input_mask, geom.input_shape, "input_mask")
    if geom.kind == "linear":
        return x.expand(geom.out_channels, geom.in_channels).clone()
    r = geom.kernel_size
    cols = F.unfold(x[None], r, padding=geom.padding, stride=geom.stride)[0]  # (c r r, L)
    meets = cols.sum(1).view(geom.groups, geom.in_channels // geom.groups, r, r)
    per_group_out = geom.out_channels // geom.groups
    return meets.repeat_interleave(per_group_out, dim=0)  # (d, c / g, r, r)


def layer_energy(geom: LayerGeometry, weight: torch.Tensor, input_mask: torch.Tensor | None = None,
                 array: SystolicArray = EYERISS) -> LayerEnergy:
    """All terms of one layer's energy for the weight support ``weight != 0`` and the
    input support ``input_mask != 0`` (``None``: every input kept)."""
    if geom.kind == "conv":
        shape = (geom.out_channels, geom.in_channels // geom.groups, geom.kernel_size,
                 geom.kernel_size)
    else:
        shape = (geom.out_channels, geom.in_channels)
    w = _support(weight, shape, f"{geom.name}.weight")
    x = _support(input_mask, geom.input_shape, f"{geom.name}.input_mask")
    e_mem, e_cache = array.dram_energy_per_access, array.cache_energy_per_access
    e_rf, e_mac = array.rf_energy_per_access, array.mac_energy_per_op
    m, n = array.pe_rows, array.pe_cols
    s1, s2 = array.input_cache_entries, array.kernel_cache_entries
    w_nnz, x_nnz = int(w.sum()), int(x.sum())
    d = geom.out_channels
    macs = int(round(float((weight_macs(geom, input_mask) * w).sum())))
    if geom.kind == "conv":
        r = geom.kernel_size
        big_l = geom.out_positions
        d_g = d // geom.groups
        unfolded = int(F.unfold(x[None], r, padding=geom.padding, stride=geom.stride).sum())
        refetch = refetched_input_entries(x.sum(dim=(0, 2)).long().tolist(), r, geom.stride,
                                          geom.padding, s1)
        passes = math.ceil(big_l / m)
        return LayerEnergy(
            geom.name, geom.kind, w_nnz, x_nnz, macs,
            computation=e_mac * macs,
            input_cache=unfolded * math.ceil(d_g / n) * e_cache,
            input_rf=unfolded * d_g * e_rf,
            input_dram=(x_nnz + refetch) * e_mem,
            output_dram=big_l * d * e_mem,
            weight_cache=passes * w_nnz * e_cache,
            weight_rf=big_l * w_nnz * e_rf,
            weight_dram=(min(w_nnz, s2) + passes * max(0, w_nnz - s2)) * e_mem,
            refetched_input_entries=refetch)
    passes = math.ceil(d / n)
    return LayerEnergy(
        geom.name, geom.kind, w_nnz, x_nnz, macs,
        computation=e_mac * macs,
        input_cache=passes * x_nnz * e_cache,
        input_rf=d * x_nnz * e_rf,
        input_dram=(min(x_nnz, s1) + passes * max(0, x_nnz - s1)) * e_mem,
        output_dram=d * e_mem,
        weight_cache=w_nnz * e_cache, weight_rf=w_nnz * e_rf, weight_dram=w_nnz * e_mem)


def input_mask_of(module: nn.Module) -> torch.Tensor | None:
    """The layer's input mask (``lib.energy.input_masks``), or ``None``."""
    return getattr(module, "input_mask", None)


def model_energy_breakdown(model: nn.Module, geometries: list[LayerGeometry],
                           array: SystolicArray = EYERISS) -> list[LayerEnergy]:
    """Per-layer energy of ``model`` at its current weights and input masks."""
    modules = dict(model.named_modules())
    return [layer_energy(g, modules[g.name].weight, input_mask_of(modules[g.name]), array)
            for g in geometries]


def systolic_energy(model: nn.Module, geometries: list[LayerGeometry],
                    array: SystolicArray = EYERISS) -> float:
    """Total modelled energy of one inference (register-file-access units)."""
    return sum(e.total for e in model_energy_breakdown(model, geometries, array))


@dataclass
class LayerWeightCosts:
    """The layer's energy as a function of which weights are kept, with the input mask
    fixed: ``fixed + sum_{kept} per_weight + cached * min(k, s2) + uncached * max(0, k - s2)``
    where ``k`` = kept weights. Exact (no relaxation): it equals ``layer_energy``."""

    name: str
    fixed: float                  # input and output data access
    per_weight: torch.Tensor      # computation of each weight: e_mac * MACs it does
    cached: float                 # data access of a weight while it fits the kernel cache
    uncached: float               # ... of a weight beyond the kernel cache
    cache_entries: int            # s2 (conv) or the layer's size (linear: never re-fetched)

    def energy(self, keep: torch.Tensor) -> float:
        keep = keep.flatten().to(torch.bool)
        k = int(keep.sum())
        return (self.fixed + float(self.per_weight.flatten()[keep].sum()) + self.cached
                * min(k, self.cache_entries) + self.uncached * max(0, k - self.cache_entries))


def weight_costs(model: nn.Module, geometries: list[LayerGeometry],
                 array: SystolicArray = EYERISS) -> list[LayerWeightCosts]:
    """The additive form of every layer's energy at the model's current input masks."""
    modules = dict(model.named_modules())
    out = []
    for g in geometries:
        mod = modules[g.name]
        mask = input_mask_of(mod)
        zero = layer_energy(g, torch.zeros_like(mod.weight), mask, array)
        per_weight = array.mac_energy_per_op * weight_macs(g, mask)
        e_mem, e_cache = array.dram_energy_per_access, array.cache_energy_per_access
        e_rf = array.rf_energy_per_access
        if g.kind == "conv":
            passes = math.ceil(g.out_positions / array.pe_rows)
            cached = e_mem + passes * e_cache + g.out_positions * e_rf
            uncached = passes * e_mem + passes * e_cache + g.out_positions * e_rf
            entries = array.kernel_cache_entries
        else:
            cached = uncached = e_mem + e_cache + e_rf
            entries = mod.weight.numel()
        out.append(LayerWeightCosts(g.name, zero.total, per_weight, cached, uncached, entries))
    return out
