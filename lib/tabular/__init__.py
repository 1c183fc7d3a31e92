"""Tabular learning: positive-unlabeled (PU) data construction, generic PU baselines, and
robust PU AUC maximization (pair sums, the alternating solver, its estimator)."""

from .pu_baselines import (
    ElkanNotoClassifier,
    NNPUClassifier,
    l1_logistic,
    nnpu_objective,
    nnpu_risk,
    pu_labels,
)
from .pu_data import (
    BUNDLED_DATASETS,
    DATASETS,
    PUSplit,
    load_tabular,
    make_planted_pu,
    make_pu_split,
)
from .robust_auc import (
    RobustPUAUC,
    RobustPUFit,
    fit_robust_pu_auc,
    pair_terms,
    pair_terms_bruteforce,
    select_inliers,
    square_pair_terms,
    w_step,
)

__all__ = ["BUNDLED_DATASETS", "DATASETS", "ElkanNotoClassifier", "NNPUClassifier", "PUSplit",
           "RobustPUAUC", "RobustPUFit", "fit_robust_pu_auc", "l1_logistic", "load_tabular",
           "make_planted_pu", "make_pu_split", "nnpu_objective", "nnpu_risk", "pair_terms",
           "pair_terms_bruteforce", "pu_labels", "select_inliers", "square_pair_terms",
           "w_step"]
