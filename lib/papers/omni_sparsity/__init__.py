"""Omni-sparsity DNN (Yang et al., ICASSP 2022): one supernet, sub-networks at every
sparsity. ``method.py`` is the supernet training (sampled members at distinct sparsities,
nested magnitude masks, accumulated gradients, optional in-place distillation) and the
budgeted search, ``experiment.py`` the chapter's configs, the individually pruned baseline,
evaluation, the 3-seed paired comparisons, costs and claims, ``task.py`` the shared dense
recogniser and its data. The public names are each module's ``__all__``."""

from . import experiment, method, task
from .experiment import *  # noqa: F403
from .method import *  # noqa: F403
from .task import *  # noqa: F403

#: Full scale trains data-parallel (``--gpus N``).
DATA_PARALLEL = True

__all__ = ["DATA_PARALLEL", "experiment", "method", "task", *experiment.__all__,
           *method.__all__, *task.__all__]
