"""Sparsity: masks as parametrizations, magnitude pruning, schedules, projections."""

from .masks import (
    Mask,
    attach_mask,
    bake,
    get_mask,
    magnitude_mask,
    nested_magnitude_masks,
    prunable_layers,
    sparsity_of,
)
from .schedules import cubic_sparsity

__all__ = ["Mask", "attach_mask", "bake", "cubic_sparsity", "get_mask", "magnitude_mask",
           "nested_magnitude_masks", "prunable_layers", "sparsity_of"]
