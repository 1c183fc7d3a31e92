"""Energy and latency: MAC and memory-access counts, an analytic per-layer model."""

from .counts import LayerCost, layer_costs, total_macs
from .model import EnergyModel, energy_pj, latency_s

__all__ = ["EnergyModel", "LayerCost", "energy_pj", "latency_s", "layer_costs", "total_macs"]
