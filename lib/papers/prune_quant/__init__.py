"""Sparsity-quantization joint learning under a size budget (Yang et al., CVPR 2020).

``method.py`` is the algorithm (ADMM with a sparse projection and a quantized duplicate),
``experiment.py`` the chapter's configs, baselines, runs and claim, ``task.py`` the data and
the dense model (free of imports of the method, so an ADMM edit does not retrain it)."""

from lib.quant.admm import proximal_pull

from . import experiment, method, task
from .experiment import (
    CLAIM_METHODS,
    CLAIMS,
    CONFIGS,
    METHODS,
    PAPER_RESULTS,
    SETUPS,
    PruneQuantConfig,
    cached_compress,
    claim_metrics,
    compress,
    deep_compression,
    greedy_vs_exact_bits,
    initial_bits_sweep,
    run,
    setup_config,
)
from .method import (
    admm_compress,
    budget_bits,
    classification_loss,
    quantization_projection,
    sparse_projection,
)
from .task import Task, dense_key, dense_part, make_task, pretrained_dense

#: One process: the compression loop is not data-parallel.
DATA_PARALLEL = False

__all__ = ["CLAIM_METHODS", "CLAIMS", "CONFIGS", "DATA_PARALLEL", "METHODS", "PAPER_RESULTS",
           "SETUPS", "PruneQuantConfig", "Task", "admm_compress", "budget_bits",
           "cached_compress", "claim_metrics", "classification_loss", "compress",
           "deep_compression", "dense_key", "dense_part", "experiment", "greedy_vs_exact_bits",
           "initial_bits_sweep", "make_task", "method", "pretrained_dense", "proximal_pull",
           "quantization_projection", "run", "setup_config", "sparse_projection", "task"]
