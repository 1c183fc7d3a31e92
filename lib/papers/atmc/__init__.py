"""ATMC (Gui et al., NeurIPS 2019): adversarially trained model compression. ``method.py``
is the algorithm (factorized layers, the global l0 budget, the quantized ADMM duplicate,
adversarial training), ``experiment.py`` the chapter's configs, baselines and comparisons,
``task.py`` the data and the dense models.

Each module names what it exports once, in its own ``__all__``; this package re-exports
those lists instead of repeating every name in an import list and again in ``__all__``.
"""

from . import experiment, method, task
from .experiment import *  # noqa: F403  (experiment.__all__)
from .method import *  # noqa: F403  (method.__all__)

#: One device: adversarial training here is not data-parallel.
DATA_PARALLEL = False

__all__ = ["DATA_PARALLEL", "experiment", "method", "task", *experiment.__all__,
           *method.__all__]
