"""Robust AUC maximization for positive-unlabeled learning (Ren et al., TNNLS 2019).
``method.py`` is the algorithm (the O(n) pair sums, the p- and w-steps, the alternating
solver and its scikit-learn estimator), ``experiment.py`` the chapter's configs, baselines,
sweeps, paired intervals, tables and claims.

Each name is listed once, in the imports below; ``__all__`` is derived from them (hence the
file-wide F401 exemption: every import here is a re-export)."""
# ruff: noqa: F401

from . import experiment, method
from .experiment import (
    AUC_FAMILY,
    AXES,
    AXIS_LABELS,
    CLAIMS,
    CONFIGS,
    METHOD_LABELS,
    METHODS,
    PAIRS,
    PAPER_EFFECT,
    RobustPUConfig,
    auc_table,
    axis_drops,
    axis_finding,
    axis_title,
    axis_values,
    claim_metrics,
    detection_table,
    dry_run_config,
    evaluate_point,
    evaluate_split,
    findings_lines,
    hardest_value,
    hyperparameter_grid,
    make_method,
    make_split,
    paired_auc,
    paired_table,
    params_table,
    per_positive_auc,
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
    verdict_table,
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

__all__ = sorted(name for name in dir() if not name.startswith("_"))
