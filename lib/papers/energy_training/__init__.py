"""Energy-constrained training (Yang, Zhu and Liu, ICLR 2019): weighted sparse projection
onto a systolic-array energy budget, and layer input masks. ``method.py`` is the algorithm,
``experiment.py`` the configs, baselines and comparison, ``task.py`` the data and teacher."""

from . import experiment, method, task
from .experiment import (
    CLAIMS,
    CONFIGS,
    METHODS,
    PAIRS,
    PAPER,
    TUNING,
    EnergyTrainingConfig,
    cached_compress,
    comparison,
    compress,
    greedy_vs_exact,
    layer_table,
    metrics_of,
    run,
)
from .method import EnergyKnobs, energy_constrained_training

#: One device: the official code trains on one GPU (DataParallel optional); LeNet-5 on MNIST
#: needs no more.
DATA_PARALLEL = False

__all__ = ["CLAIMS", "CONFIGS", "DATA_PARALLEL", "METHODS", "PAIRS", "PAPER", "TUNING",
           "EnergyKnobs", "EnergyTrainingConfig", "cached_compress", "comparison", "compress",
           "energy_constrained_training", "experiment", "greedy_vs_exact", "layer_table",
           "method", "metrics_of", "run", "task"]
