"""DLTF (Xu, Wang, Yang, Liu & Liu, 2019): dictionary learning for thresholded features with
sparse support recovery. ``method.py`` is the algorithm (the thresholded feature, the
(k,2)-norm, its exact prox, the coherence penalty and the DLTF loop), ``experiment.py`` the
chapter's configs, baselines and experiments, ``task.py`` the data."""

from . import experiment, method, task
from .experiment import (
    CLAIMS,
    COLORS,
    CONFIGS,
    METHODS,
    DltfConfig,
    denoise_image,
    denoising_psnr,
    digits_accuracy,
    fitted_slope,
    learn_mbdl,
    learned_dictionaries,
    prox_k2_generic,
    prox_timing,
    random_dictionary,
    random_sparse_codes,
    relative_reconstruction_error,
    run,
    sklearn_thresholded_feature,
    support_recovery_curve,
)
from .method import (
    dltf_loss,
    k2_coherence,
    k2_norm,
    k_support_norm,
    learn_dltf,
    normalize_atoms,
    prox_k2,
    prox_k2_single,
    prox_objective,
    reconstruction_gain,
    recovery_interval,
    soft_threshold,
    thresholded_feature,
    thresholding_recovers_support,
)
from .task import (
    TEST_IMAGE,
    TRAIN_IMAGES,
    VALIDATION_IMAGE,
    digits_data,
    patch_training_data,
    single_threaded,
)

#: One device: the dictionary loops are small and run on one CPU thread or one GPU.
DATA_PARALLEL = False

__all__ = ["CLAIMS", "COLORS", "CONFIGS", "DATA_PARALLEL", "METHODS", "TEST_IMAGE", "TRAIN_IMAGES",
           "VALIDATION_IMAGE", "DltfConfig", "denoise_image", "denoising_psnr", "digits_accuracy",
           "digits_data", "dltf_loss", "experiment", "fitted_slope", "k2_coherence", "k2_norm",
           "k_support_norm", "learn_dltf", "learn_mbdl", "learned_dictionaries", "method",
           "normalize_atoms", "patch_training_data", "prox_k2", "prox_k2_generic",
           "prox_k2_single", "prox_objective", "prox_timing", "random_dictionary",
           "random_sparse_codes", "reconstruction_gain", "recovery_interval",
           "relative_reconstruction_error", "run", "single_threaded",
           "sklearn_thresholded_feature", "soft_threshold", "support_recovery_curve", "task",
           "thresholded_feature", "thresholding_recovers_support"]
