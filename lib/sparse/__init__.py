"""Sparsity: masks as parametrizations, magnitude and structured pruning, schedules,
projections onto sparsity sets, knapsack selection, channel extraction (by output channels,
and by input channels with the group l0 prox of ECC)."""

from .extract import attach_channel_mask, extract_channel_pruned
from .input_channels import (
    WidthBoundary,
    extract_input_pruned,
    group_l0_prox_keep,
    input_channel_norms,
    kept_input_widths,
    network_widths,
    strongest_channels,
    width_boundaries,
    zero_input_channels,
)
from .knapsack import greedy_prefix_mask, greedy_prefix_masks, knapsack_exact, knapsack_greedy
from .masks import (
    Mask,
    attach_mask,
    bake,
    channel_mask,
    get_mask,
    global_magnitude_masks,
    magnitude_mask,
    nested_magnitude_masks,
    nm_mask,
    prunable_layers,
    sparsity_of,
)
from .projections import (
    global_topk_projection,
    group_hard_threshold,
    group_soft_threshold,
    group_topk_projection,
    hard_threshold,
    soft_threshold,
    topk_projection,
    weighted_sparse_masks,
    weighted_sparse_projection,
)
from .schedules import cubic_sparsity

__all__ = [
    "Mask", "attach_channel_mask", "attach_mask", "bake", "channel_mask", "cubic_sparsity",
    "extract_channel_pruned", "get_mask", "global_magnitude_masks", "global_topk_projection",
    "greedy_prefix_mask", "greedy_prefix_masks", "group_hard_threshold", "group_soft_threshold",
    "group_topk_projection", "hard_threshold", "knapsack_exact", "knapsack_greedy",
    "magnitude_mask", "nested_magnitude_masks", "nm_mask", "prunable_layers", "soft_threshold",
    "sparsity_of", "topk_projection", "weighted_sparse_masks", "weighted_sparse_projection",
    "WidthBoundary", "extract_input_pruned", "group_l0_prox_keep", "input_channel_norms",
    "kept_input_widths", "network_widths", "strongest_channels", "width_boundaries",
    "zero_input_channels",
]
