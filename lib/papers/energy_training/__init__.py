"""Energy-constrained training (Yang, Zhu and Liu, ICLR 2019): weighted sparse projection
onto a systolic-array energy budget, and layer input masks. ``method.py`` is the algorithm,
``experiment.py`` the configs, baselines and comparison, ``task.py`` the data and teacher.

What the chapter imports is named once: ``experiment.__all__`` and ``method.__all__`` list
each module's public names, and this package re-exports them."""

from . import experiment, method, task
from .experiment import *  # noqa: F403  (the names of experiment.__all__)
from .method import *  # noqa: F403  (the names of method.__all__)

#: One device: the official code trains on one GPU (DataParallel optional); LeNet-5 on MNIST
#: needs no more.
DATA_PARALLEL = False

__all__ = ["DATA_PARALLEL", "experiment", "method", "task", *experiment.__all__,
           *method.__all__]
