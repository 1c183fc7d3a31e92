"""ECC (Yang, Zhu and Liu, CVPR 2019): compression to an energy (here: latency) budget
through a bilinear cost model fitted on the device. ``method.py`` is the algorithm,
``experiment.py`` the chapter's configs, baselines and tables, ``task.py`` the data, the
dense model and the latency samples."""

from . import experiment, method, task
from .experiment import (
    CLAIMS,
    CONFIGS,
    CONTROLS,
    METHODS,
    PAPER,
    SETUPS,
    TUNING,
    ECCConfig,
    cached_compress,
    comparison,
    compress,
    cost_fit,
    fit_interval,
    measure_all,
    metrics_of,
    run,
    setup_config,
)
from .method import ECCKnobs, ECCState, ecc_compress, ecc_step

#: One device: the compression loop is not data-parallel (the official code used
#: DataParallel on several GPUs; one H100-class GPU holds MobileNet's batch).
DATA_PARALLEL = False

#: ECC is fitted to latencies measured on this machine: a run from an empty cache measures
#: again, the cost models move with the measurement noise, and so do the widths each method
#: picks, their measured costs, whether they meet the budget, and their accuracies. The
#: same-seed check (tests/test_chapters.py) compares the rest of the record; the spread of
#: the measurement is reported by benchmarks/ecc_bilinear.py and in the chapter.
NONDETERMINISTIC_METRICS = (r"rel_error", r"^acc_", r"^cost_", r"^met_")

__all__ = ["CLAIMS", "CONFIGS", "CONTROLS", "DATA_PARALLEL", "METHODS", "NONDETERMINISTIC_METRICS",
           "PAPER", "SETUPS", "TUNING", "ECCConfig", "ECCKnobs", "ECCState", "cached_compress",
           "comparison", "compress", "cost_fit", "ecc_compress", "ecc_step", "experiment",
           "fit_interval", "measure_all", "method", "metrics_of", "run", "setup_config", "task"]
