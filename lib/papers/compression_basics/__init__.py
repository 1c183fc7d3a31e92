"""Compression basics (the Foundations chapter on pruning, quantization and size).

Not a paper: the shared vocabulary of the compression chapters, measured on one small
model. ``method.py`` holds the primitives (pruning rules, quantizers, size rows),
``experiment.py`` the configs, the dense model and the cached sweeps."""

from lib.quant import model_size_bits, relative_index_entries
from lib.sparse import magnitude_mask, prunable_layers

from . import experiment, method
from .experiment import (
    CLAIMS,
    CONFIGS,
    DATA_PARALLEL,
    CompressionBasicsConfig,
    extraction_demo,
    sweeps,
    trained_dense,
)
from .method import (
    PRUNING_METHODS,
    accuracy,
    make_model,
    prune,
    quantize,
    size_examples,
    train,
)

__all__ = ["CLAIMS", "CONFIGS", "DATA_PARALLEL", "PRUNING_METHODS", "CompressionBasicsConfig",
           "accuracy", "experiment", "extraction_demo", "magnitude_mask", "make_model",
           "method", "model_size_bits", "prunable_layers", "prune", "quantize",
           "relative_index_entries", "size_examples", "sweeps", "train", "trained_dense"]
