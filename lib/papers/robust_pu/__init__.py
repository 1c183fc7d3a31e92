"""Robust AUC maximization for positive-unlabeled learning (Ren et al., TNNLS 2019).
``method.py`` is the algorithm (the O(n) pair sums, the p- and w-steps, the alternating
solver and its scikit-learn estimator), ``experiment.py`` the chapter's configs, baselines,
sweeps, tables and claim."""

from . import experiment, method
from .experiment import (
    AXES,
    AXIS_LABELS,
    CLAIMS,
    CONFIGS,
    METHOD_LABELS,
    METHODS,
    RobustPUConfig,
    auc_table,
    axis_drops,
    axis_finding,
    axis_title,
    axis_values,
    detection_table,
    dry_run_config,
    evaluate_point,
    evaluate_split,
    hyperparameter_grid,
    make_method,
    make_split,
    params_table,
    plot_axis,
    pu_validation_auc,
    run,
    run_is_cached,
    saturation,
    setting,
    signed,
    summarize,
    sweep,
    tune,
)
from .method import (
    FEATURE_SELECTION,
    LOSSES,
    RobustPUAUC,
    RobustPUFit,
    fit_robust_pu_auc,
    hard_threshold,
    logistic_pair_terms,
    pair_terms,
    pair_terms_bruteforce,
    penalty,
    select_inliers,
    smooth_objective,
    soft_threshold,
    square_pair_terms,
    squared_hinge_pair_terms,
    w_step,
)

#: One device: the fits are small (nnPU, the only network, trains on one device).
DATA_PARALLEL = False

__all__ = ["AXES", "AXIS_LABELS", "CLAIMS", "CONFIGS", "DATA_PARALLEL", "FEATURE_SELECTION",
           "LOSSES", "METHODS", "METHOD_LABELS", "RobustPUAUC", "RobustPUConfig", "RobustPUFit",
           "auc_table", "axis_drops", "axis_finding", "axis_title", "axis_values",
           "detection_table", "dry_run_config", "evaluate_point", "evaluate_split", "experiment",
           "fit_robust_pu_auc", "hard_threshold", "hyperparameter_grid", "logistic_pair_terms",
           "make_method", "make_split", "method", "pair_terms", "pair_terms_bruteforce",
           "params_table", "penalty", "plot_axis", "pu_validation_auc", "run", "run_is_cached",
           "saturation", "select_inliers", "setting", "signed", "smooth_objective",
           "soft_threshold", "square_pair_terms", "squared_hinge_pair_terms", "summarize", "sweep",
           "tune", "w_step"]
