"""The capstone: the book's compression methods side by side on one task, in accounted
bits, bytes on disk, measured milliseconds and modelled energy. No method of its own:
``experiment.py`` runs each method through its chapter's library, ``deploy.py`` turns the
compressed models into what a CPU runs (extracted, CSR, ONNX Runtime int8)."""

from . import deploy, experiment
from .experiment import (
    CONFIGS,
    FORMS,
    METHODS,
    MISSING,
    HeadToHeadConfig,
    compress,
    meets_budget,
    metrics_of,
    pareto_front,
    run,
    runs_of,
    summary_rows,
)

#: One process: nothing here trains data-parallel.
DATA_PARALLEL = False

#: No claim of a paper: the capstone compares the book's methods (the method chapters'
#: verdicts are recalled from their records by the chapter).
CLAIMS: list = []

#: Latencies are measurements of this machine: a second run times again. Whether a method
#: "buys speed" follows them, as do the int8 accuracies (ONNX Runtime's kernels may pick
#: other instructions on another CPU).
NONDETERMINISTIC_METRICS = (r"_ms$", r"_iqr_ms$", r"speedup", r"buys_speed")

__all__ = ["CLAIMS", "CONFIGS", "DATA_PARALLEL", "FORMS", "METHODS", "MISSING",
           "NONDETERMINISTIC_METRICS", "HeadToHeadConfig", "compress", "deploy", "experiment",
           "meets_budget", "metrics_of", "pareto_front", "run", "runs_of",
           "summary_rows"]
