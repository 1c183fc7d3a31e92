"""Tabular learning: positive-unlabeled (PU) data construction and generic PU baselines."""

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

__all__ = ["BUNDLED_DATASETS", "DATASETS", "ElkanNotoClassifier", "NNPUClassifier", "PUSplit",
           "l1_logistic", "load_tabular", "make_planted_pu", "make_pu_split", "nnpu_objective",
           "nnpu_risk", "pu_labels"]
