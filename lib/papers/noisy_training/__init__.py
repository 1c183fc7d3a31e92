"""Noisy training improves E2E ASR for the edge (Wang, Shangguan, Yang et al., 2021).
``method.py`` is the noisy training step (perturb, gradient at the noisy point, restore,
update the clean weights), gradual magnitude pruning and one fine-tuning run,
``experiment.py`` the chapter's configs, conditions, the flatness probe, tables and claim,
``task.py`` the shared dense recogniser's data and evaluation sets."""

from . import experiment, method, task
from .experiment import (
    CLAIMS,
    CONFIGS,
    NoisyTrainingConfig,
    conditions,
    effect_verdict,
    flatness_artifact,
    flatness_curves,
    flatness_probe,
    flatness_rise,
    improvements,
    load_run_model,
    mean_loss,
    pruned_fraction,
    relative_improvement,
    run,
    run_artifact,
    run_is_cached,
    summary_table,
)
from .method import (
    NOISE_KINDS,
    NOISE_SCHEDULES,
    WeightMatrix,
    encoder_matrices,
    finetune,
    magnitude_prune,
    noise_scale,
    noisy_training_step,
    perturbed_weights,
    sample_weight_noise,
    weight_matrices,
)
from .task import (
    PAPER_IMPROVEMENT_90,
    dense_start_artifact,
    eval_split_names,
    held_out_noise_set,
    load_sets,
    role_labels,
)

#: Full scale trains data-parallel (``--gpus N``).
DATA_PARALLEL = True

__all__ = ["CLAIMS", "CONFIGS", "DATA_PARALLEL", "NOISE_KINDS", "NOISE_SCHEDULES",
           "PAPER_IMPROVEMENT_90", "NoisyTrainingConfig", "WeightMatrix", "conditions",
           "dense_start_artifact", "effect_verdict", "encoder_matrices", "eval_split_names",
           "experiment", "finetune", "flatness_artifact", "flatness_curves", "flatness_probe",
           "flatness_rise", "held_out_noise_set", "improvements", "load_run_model",
           "load_sets", "magnitude_prune", "mean_loss", "method", "noise_scale",
           "noisy_training_step", "perturbed_weights", "pruned_fraction",
           "relative_improvement", "role_labels", "run", "run_artifact", "run_is_cached",
           "sample_weight_noise", "summary_table", "task", "weight_matrices"]
