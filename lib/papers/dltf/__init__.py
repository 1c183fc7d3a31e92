"""DLTF (Xu, Wang, Yang, Liu & Liu, 2019): dictionary learning for thresholded features with
sparse support recovery. ``method.py`` is the algorithm (the thresholded feature, the
coherence penalty and the DLTF loop; the (k,2)-norm and its exact prox are in
``lib.sparse.k2_norm``), ``experiment.py`` the
chapter's configs, baselines, experiments and claims, ``planted.py`` the recovery test
against a planted dictionary, ``figures.py`` the chapter's tables and plots, ``task.py`` the
data.

Each name is listed once, in the imports below; ``__all__`` is derived from them (hence
the file-wide F401 exemption: every import here is a re-export)."""
# ruff: noqa: F401

from lib.sparse.k2_norm import (  # the (k,2)-norm and its prox, a layer down
    k2_norm,
    k_support_norm,
    prox_k2,
    prox_k2_single,
    prox_objective,
)

from . import experiment, figures, method, planted, task
from .experiment import (
    CLAIMS,
    COLORS,
    CONFIGS,
    METHODS,
    DltfConfig,
    claim_metrics,
    denoise_image,
    denoising_psnr,
    digits_accuracy,
    digits_predictions,
    fitted_slope,
    learn_mbdl,
    learned_dictionaries,
    prox_k2_generic,
    prox_timing,
    random_dictionary,
    random_sparse_codes,
    relative_reconstruction_error,
    run,
    seeded_comparisons,
    sklearn_thresholded_feature,
    support_recovery_curve,
    verdict_table,
)
from .method import (
    dltf_loss,
    k2_coherence,
    learn_dltf,
    normalize_atoms,
    reconstruction_gain,
    recovery_interval,
    soft_threshold,
    thresholded_feature,
    thresholding_recovers_support,
)
from .planted import (
    PLANTED_METHODS,
    learn_frame,
    match_atoms,
    planted_recovery,
    planted_signals,
    planted_support_recovered,
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

__all__ = sorted(name for name in dir() if not name.startswith("_"))
