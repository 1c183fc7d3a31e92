"""GAN Slimming (Wang et al., ECCV 2020): distillation, channel pruning and 8-bit
quantization of an image-to-image generator in one minimax problem. ``method.py`` is the
algorithm, ``experiment.py`` the chapter's configs, baselines and tables, ``task.py`` the
data and the dense teacher."""

from . import experiment, method, task
from .experiment import (
    CLAIMS,
    CONFIGS,
    CONTROLS,
    METHODS,
    PAPER,
    SETUPS,
    TUNING,
    GSConfig,
    cached_compress,
    channels_kept,
    comparison,
    compress,
    controls,
    metrics_of,
    run,
    setup_config,
    slim_generator,
)
from .method import GSKnobs, GSState, compression_ratio, gs_step

#: One device: the official code trains on one GPU.
DATA_PARALLEL = False

__all__ = ["CLAIMS", "CONFIGS", "CONTROLS", "DATA_PARALLEL", "METHODS", "PAPER", "SETUPS",
           "TUNING", "GSConfig", "GSKnobs", "GSState", "cached_compress", "channels_kept",
           "comparison", "compress", "compression_ratio", "controls", "experiment",
           "gs_step", "method", "metrics_of", "run", "setup_config", "slim_generator", "task"]
