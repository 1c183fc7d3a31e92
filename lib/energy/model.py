"""An analytic energy and latency model from MAC and memory-access counts.

Energy of one inference, summed over conv/linear layers ``l``:

    E = sum_l [ e_mac * MAC_l^eff  +  e_dram * bits(W_l)  +  e_sram * a (in_l + out_l) ]

(every effectual MAC computed once, every stored weight bit fetched once from DRAM, every
input and output activation of ``a`` bits moved through on-chip SRAM once). Latency is a
roofline per layer: ``max(MAC_l / mac_rate, bytes moved / bandwidth)``. The default
constants are the 45 nm figures of Horowitz (ISSCC 2014): a float32 multiply-add
3.7 + 0.9 pJ, a 32-bit DRAM read 640 pJ (20 pJ/bit), a 32-bit read of an 8 KB SRAM 5 pJ.
They give orders of magnitude, not a chip: chapters that model a device pass their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .counts import LayerCost


@dataclass(frozen=True)
class EnergyModel:
    """Per-operation energies (picojoules) and throughputs of the modelled device."""

    mac_pj: float = 4.6
    dram_pj_per_bit: float = 20.0
    sram_pj_per_bit: float = 5.0 / 32
    activation_bits: int = 32
    macs_per_s: float = 1e11
    dram_bytes_per_s: float = 1e10

    def __post_init__(self):
        for name in ("mac_pj", "dram_pj_per_bit", "sram_pj_per_bit", "macs_per_s",
                     "dram_bytes_per_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.macs_per_s == 0 or self.dram_bytes_per_s == 0:
            raise ValueError("macs_per_s and dram_bytes_per_s must be > 0")


def _weight_bits(costs: Sequence[LayerCost], weight_bits: Sequence[int] | None) -> list[float]:
    """Stored bits of each layer's weights: ``bits * nnz`` (dense float32 by default)."""
    if weight_bits is None:
        return [32.0 * c.weights for c in costs]
    if len(weight_bits) != len(costs):
        raise ValueError(f"got {len(weight_bits)} weight bit counts for {len(costs)} layers")
    return [float(b) for b in weight_bits]


def energy_pj(costs: Sequence[LayerCost], model: EnergyModel = EnergyModel(),
              weight_bits: Sequence[int] | None = None) -> dict[str, float]:
    """Energy (pJ) split into compute, DRAM and SRAM, and the total. ``weight_bits[l]`` is
    layer ``l``'s stored size in bits (e.g. from ``model_size_bits``; default 32 per
    weight)."""
    wb = _weight_bits(costs, weight_bits)
    compute = sum(model.mac_pj * c.effectual_macs for c in costs)
    dram = sum(model.dram_pj_per_bit * b for b in wb)
    sram = sum(model.sram_pj_per_bit * model.activation_bits * (c.input_elems + c.output_elems)
               for c in costs)
    return {"compute_pj": compute, "dram_pj": dram, "sram_pj": sram,
            "total_pj": compute + dram + sram}


def latency_s(costs: Sequence[LayerCost], model: EnergyModel = EnergyModel(),
              weight_bits: Sequence[int] | None = None, effectual: bool = True) -> float:
    """Roofline latency (s): per layer the slower of compute and DRAM traffic."""
    wb = _weight_bits(costs, weight_bits)
    total = 0.0
    for c, b in zip(costs, wb, strict=True):
        macs = c.effectual_macs if effectual else c.macs
        moved = (b + model.activation_bits * (c.input_elems + c.output_elems)) / 8
        total += max(macs / model.macs_per_s, moved / model.dram_bytes_per_s)
    return total
