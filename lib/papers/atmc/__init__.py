"""ATMC (Gui et al., NeurIPS 2019): adversarially trained model compression. ``method.py``
is the algorithm (factorized layers, the global l0 budget, the quantized ADMM duplicate,
adversarial training), ``experiment.py`` the chapter's configs, baselines and comparisons,
``task.py`` the data and the dense models."""

from . import experiment, method, task
from .experiment import (
    ATTACKS,
    CLAIMS,
    COMPARISONS,
    CONFIGS,
    LABELS,
    METHODS,
    PAPER,
    SETUPS,
    TUNING,
    ATMCConfig,
    comparison,
    compress,
    controls,
    eps_curve,
    evaluate,
    run,
    setup_config,
)
from .method import ATMCKnobs, FactorizedLayer, compress_adversarially, factorize

#: One device: adversarial training here is not data-parallel.
DATA_PARALLEL = False

__all__ = ["ATTACKS", "CLAIMS", "COMPARISONS", "CONFIGS", "DATA_PARALLEL", "LABELS", "METHODS",
           "PAPER", "SETUPS", "TUNING", "ATMCConfig", "ATMCKnobs", "FactorizedLayer",
           "comparison", "compress", "compress_adversarially", "controls", "eps_curve",
           "evaluate", "experiment", "factorize", "method", "run", "setup_config", "task"]
