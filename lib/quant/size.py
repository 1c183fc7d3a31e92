"""Model size in bits: what "N times smaller" means.

A dense float32 layer of ``n`` weights takes ``32 n`` bits. Pruned to ``nnz`` nonzeros and
quantized to ``b`` bits it takes ``b * nnz`` bits of values, the accounting of Yang et al.
(2020) and most compression papers. A real sparse format also stores *where* the nonzeros
are; ``model_size_bits`` adds that index overhead on request:

* ``index="bitmask"``: one bit per weight (``n`` bits a layer);
* ``index="relative"``: the relative index of Deep Compression (Han et al., 2016): each
  stored entry carries the gap to the previous one in ``index_bits`` bits; a gap larger than
  ``2^index_bits`` is bridged by stored filler zeros, which cost value and index bits too.

``codebook=True`` adds ``2^b`` float32 centres a layer (a k-means quantized layer's table).
With a relative index the filler zeros are stored values, so then the ``2^b`` codes must
include one for 0: a layer with fillers whose distinct nonzero values (plus the zero) exceed
``2^b`` cannot be stored in ``b`` bits, and ``model_size_bits`` raises rather than count it
(quantize with ``kmeans_quantize(..., zero_counts=True)``: ``2^b - 1`` centres and the 0).
The compression ratio is the dense float32 size over the compressed size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

INDEX_FORMATS = ("none", "bitmask", "relative")


@dataclass
class SizeReport:
    """Per-layer and total sizes; ``ratio`` = dense float32 bits / ``total_bits``."""

    total_bits: int
    dense_bits: int
    layers: list[dict] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.dense_bits / self.total_bits if self.total_bits else float("inf")

    @property
    def total_bytes(self) -> float:
        return self.total_bits / 8


def relative_index_entries(weight: torch.Tensor, index_bits: int) -> int:
    """Entries stored by a relative-index sparse format (nonzeros plus filler zeros)."""
    if not isinstance(index_bits, int) or index_bits < 1:
        raise ValueError(f"index_bits must be an integer >= 1, got {index_bits!r}")
    pos = torch.nonzero(weight.detach().flatten()).flatten()
    if pos.numel() == 0:
        return 0
    gaps = torch.diff(pos, prepend=torch.tensor([-1], device=pos.device))  # >= 1
    span = 2 ** index_bits  # an index field encodes gaps 1 .. 2^index_bits
    return int(torch.div(gaps + span - 1, span, rounding_mode="floor").sum())


def model_size_bits(weights: Sequence[torch.Tensor] | Sequence[tuple[str, nn.Module]],
                    bits: int | Sequence[int] = 32, *, index: str = "none",
                    index_bits: int = 4, codebook: bool = False) -> SizeReport:
    """Size of the given weights (tensors or ``(name, module)`` pairs, e.g. from
    ``prunable_layers``) stored with ``bits`` per nonzero (one int for all, or per layer).
    Only these weights count (no biases or norms), as in the papers."""
    if index not in INDEX_FORMATS:
        raise ValueError(f"index must be one of {INDEX_FORMATS}, got {index!r}")
    named = [(w[0], w[1].weight) if isinstance(w, tuple) else (f"layer{i}", w)
             for i, w in enumerate(weights)]
    per_layer = [bits] * len(named) if isinstance(bits, int) else list(bits)
    if len(per_layer) != len(named):
        raise ValueError(f"got {len(per_layer)} bit-widths for {len(named)} layers")
    for b in per_layer:
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ValueError(f"bit-widths must be integers >= 1, got {b!r}")
    layers, total, dense = [], 0, 0
    for (name, w), b in zip(named, per_layer, strict=True):
        w = w.detach()
        nnz = int((w != 0).sum())
        entries = relative_index_entries(w, index_bits) if index == "relative" else nnz
        if codebook and entries > nnz:  # filler zeros need a code of their own
            levels = int(torch.unique(w[w != 0]).numel()) + 1
            if levels > 2 ** b:
                raise ValueError(
                    f"layer {name}: {levels - 1} distinct nonzero values plus the filler "
                    f"zeros of the relative index need {levels} codes, more than the 2^{b} "
                    f"of a {b}-bit codebook (quantize with zero_counts=True)")
        value_bits = b * entries
        idx_bits = {"none": 0, "bitmask": w.numel(),
                    "relative": entries * index_bits}[index]
        book_bits = (2 ** b) * 32 if codebook else 0
        layer_bits = value_bits + idx_bits + book_bits
        layers.append({"layer": name, "numel": w.numel(), "nnz": nnz, "bits": b,
                       "value_bits": value_bits, "index_bits": idx_bits,
                       "codebook_bits": book_bits, "total_bits": layer_bits})
        total += layer_bits
        dense += 32 * w.numel()
    return SizeReport(total_bits=total, dense_bits=dense, layers=layers)


def compression_ratio(size_bits: float, n_weights: int, dense_bits_per_weight: int = 32) -> float:
    """Dense size over compressed size: ``32 n / size``."""
    if size_bits <= 0:
        raise ValueError(f"size_bits must be > 0, got {size_bits}")
    return dense_bits_per_weight * n_weights / size_bits
