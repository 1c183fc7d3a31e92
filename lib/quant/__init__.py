"""Quantization: uniform fake quantization with straight-through gradients, k-means
weight sharing with a zero centre, per-layer bit allocation, model size in bits."""

from .allocation import (
    allocate_bits,
    convex_hull_options,
    multiple_choice_knapsack,
    multiple_choice_knapsack_exact,
)
from .fake_quant import FakeQuantize, attach_fake_quant, fake_quantize, get_fake_quant
from .kmeans import (
    KMeansQuantized,
    assign_to_codebook,
    kmeans_1d_multi,
    kmeans_quantize,
    kmeans_quantize_all_bits,
    quantize_with_codebook,
    zero_kmeans_1d,
    zero_kmeans_1d_exact,
    zero_kmeans_1d_multi,
    zero_kmeans_is_exact,
)
from .size import SizeReport, compression_ratio, model_size_bits, relative_index_entries

__all__ = [
    "FakeQuantize", "KMeansQuantized", "SizeReport", "allocate_bits", "assign_to_codebook",
    "attach_fake_quant", "compression_ratio", "convex_hull_options", "fake_quantize",
    "get_fake_quant", "kmeans_1d_multi", "kmeans_quantize", "kmeans_quantize_all_bits",
    "model_size_bits", "multiple_choice_knapsack", "multiple_choice_knapsack_exact",
    "quantize_with_codebook", "relative_index_entries", "zero_kmeans_1d", "zero_kmeans_1d_exact",
    "zero_kmeans_1d_multi", "zero_kmeans_is_exact",
]
