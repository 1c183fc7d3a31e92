"""Noisy training improves E2E ASR for the edge (Wang, Shangguan, Yang et al., 2021).
``method.py`` is the noisy training step (perturb, gradient at the noisy point, restore,
update the clean weights), gradual magnitude pruning and one training run,
``experiment.py`` the chapter's configs, conditions, the flatness probe, the paired
comparisons, tables and claims, ``task.py`` the data and evaluation sets.

Each module lists what it exports once, in its own ``__all__``; this package re-exports
those lists (no name is written twice)."""

from . import experiment, method, task
from .experiment import *  # noqa: F403
from .method import *  # noqa: F403
from .task import *  # noqa: F403

#: Full scale trains data-parallel (``--gpus N``).
DATA_PARALLEL = True

__all__ = ["DATA_PARALLEL", "experiment", "method", "task", *experiment.__all__,
           *method.__all__, *task.__all__]
