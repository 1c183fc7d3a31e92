"""Marginal policy gradients (Eisenach et al., ICLR 2019): the chapter's package.

``method`` names the methods and holds the estimators (the densities live in ``lib.rl``),
``theory`` the exact variances of the one-step bandits, ``config`` the configs, ``training``
the cached A2C runs, ``experiment`` the experiments, tables, metrics and claims,
``figures`` the chapter's plots.
"""

from . import config, experiment, method, theory, training
from .experiment import (
    ALL_PLATFORM_METHODS,
    CLAIMS,
    CONFIGS,
    POSITIVE_CONTROL,
    MarginalPGConfig,
    claim_metrics,
    run,
    run_bandits,
    run_control,
    run_platform,
    verdict_table,
)
from .method import CONTROL_METHODS, PLATFORM_METHODS, control_head, platform_head

#: Single-device: A2C with 32-unit MLPs runs on one CPU process at every scale.
DATA_PARALLEL = False

__all__ = ["ALL_PLATFORM_METHODS", "CLAIMS", "CONFIGS", "CONTROL_METHODS", "DATA_PARALLEL",
           "PLATFORM_METHODS", "POSITIVE_CONTROL", "MarginalPGConfig", "claim_metrics",
           "config", "control_head", "experiment", "method", "platform_head", "run",
           "run_bandits", "run_control", "run_platform", "theory", "training", "verdict_table"]
