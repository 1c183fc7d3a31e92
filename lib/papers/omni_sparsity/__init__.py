"""Omni-sparsity DNN (Yang et al., ICASSP 2022): one supernet, sub-networks at every
sparsity. ``method.py`` is the supernet training (sandwich-sampled sparsities, nested
magnitude masks, accumulated gradients) and the budgeted search, ``experiment.py`` the
chapter's configs, the individually pruned baseline, evaluation, costs and claim,
``task.py`` the shared dense recogniser and its data."""

from . import experiment, method, task
from .experiment import (
    CLAIMS,
    CONFIGS,
    OmniSparsityConfig,
    compare_approaches,
    evaluate_levels,
    finetuned_artifacts,
    finetuned_cached,
    gradual_prune,
    load_finetuned,
    relative_gain,
    run,
    search_for_budget,
    subnet_loss,
    subnet_wer,
    training_costs,
)
from .method import (
    SPARSITY_CHOICES,
    apply_subnet,
    attach_dense_masks,
    evolutionary_search,
    group_sizes,
    max_sparsity,
    nested_subnet_masks,
    omni_supernet_step,
    sample_subnets,
    set_masks,
    shared_weight,
    subnet_size,
    train_supernet,
    weight_groups,
)
from .task import dense_and_data, split_names

#: Full scale trains data-parallel (``--gpus N``).
DATA_PARALLEL = True

__all__ = ["CLAIMS", "CONFIGS", "DATA_PARALLEL", "SPARSITY_CHOICES", "OmniSparsityConfig",
           "apply_subnet", "attach_dense_masks", "compare_approaches", "dense_and_data",
           "evaluate_levels", "evolutionary_search", "experiment", "finetuned_artifacts",
           "finetuned_cached", "gradual_prune", "group_sizes", "load_finetuned",
           "max_sparsity", "method", "nested_subnet_masks", "omni_supernet_step",
           "relative_gain", "run", "sample_subnets", "search_for_budget", "set_masks",
           "shared_weight", "split_names", "subnet_loss", "subnet_size", "subnet_wer", "task",
           "train_supernet", "training_costs", "weight_groups"]
