"""Energy and latency: MAC and memory-access counts, an analytic per-layer model, measured
latency and energy on the machine at hand, and cost models fitted on measurements."""

from .bilinear import (
    CostModel,
    bilinear_features,
    compare_cost_models,
    cost_features,
    fit_cost_model,
    random_widths,
    relative_errors,
)
from .counts import LayerCost, layer_costs, total_macs
from .measure import (
    EnergyUnavailable,
    LatencyStats,
    energy_status,
    measure_energy,
    measure_interleaved,
    measure_latency,
    model_energy,
    rapl_status,
)
from .model import EnergyModel, energy_pj, latency_s

__all__ = ["CostModel", "EnergyModel", "EnergyUnavailable", "LatencyStats", "LayerCost",
           "bilinear_features", "compare_cost_models", "cost_features", "energy_pj",
           "energy_status", "fit_cost_model", "latency_s", "layer_costs", "measure_energy",
           "measure_interleaved", "measure_latency", "model_energy", "random_widths",
           "rapl_status", "relative_errors", "total_macs"]
