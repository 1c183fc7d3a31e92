"""Sparsity-quantization joint learning under a size budget (Yang et al., CVPR 2020).

``method.py`` is the algorithm (ADMM with a sparse projection and a quantized duplicate),
``experiment.py`` the chapter's configs, baselines, runs and claim, ``task.py`` the data and
the dense model (free of imports of the method, so an ADMM edit does not retrain it)."""

from lib.quant.admm import proximal_pull

from . import experiment, method, task
from .experiment import (
    CLAIM_METHODS,
    CLAIMS,
    COMPARISONS,
    CONFIGS,
    DEFAULT_SEEDS,
    KNEE_CHECK,
    METHODS,
    PAPER_RESULTS,
    SETUPS,
    START_BITS_KNOB,
    PruneQuantConfig,
    cached_compress,
    claim_metrics,
    compress,
    deep_compression,
    envelope_rows,
    greedy_vs_exact_bits,
    initial_bits_sweep,
    knee_text,
    paired_rows,
    results_rows,
    run,
    run_seeds,
    setup_config,
    start_bits_sweep,
    summary_text,
)
from .method import (
    V_STEP_SUPPORTS,
    admm_compress,
    admm_v_step,
    budget_bits,
    classification_loss,
    quantization_projection,
    sparse_projection,
)
from .task import (
    Task,
    dense_key,
    dense_part,
    make_task,
    pretrained_dense,
    synthetic_data_config,
)

#: One process: the compression loop is not data-parallel.
DATA_PARALLEL = False

__all__ = ["CLAIM_METHODS", "CLAIMS", "COMPARISONS", "CONFIGS", "DATA_PARALLEL",
           "DEFAULT_SEEDS", "KNEE_CHECK", "METHODS", "PAPER_RESULTS", "SETUPS",
           "START_BITS_KNOB",
           "V_STEP_SUPPORTS", "PruneQuantConfig", "Task", "admm_compress", "admm_v_step",
           "budget_bits", "cached_compress", "claim_metrics", "classification_loss",
           "compress", "deep_compression", "dense_key", "dense_part", "envelope_rows",
           "experiment", "greedy_vs_exact_bits", "initial_bits_sweep", "knee_text",
           "make_task", "method",
           "paired_rows", "pretrained_dense", "proximal_pull", "quantization_projection",
           "results_rows", "run", "run_seeds", "setup_config", "sparse_projection",
           "synthetic_data_config",
           "start_bits_sweep", "summary_text", "task"]
