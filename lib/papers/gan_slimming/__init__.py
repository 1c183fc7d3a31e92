"""GAN Slimming (Wang et al., ECCV 2020): distillation, channel pruning and 8-bit
quantization of an image-to-image generator in one minimax problem. ``method.py`` is the
algorithm, ``experiment.py`` the chapter's configs, baselines and tables, ``quality.py`` the
trained feature networks (perceptual loss, FID / KID), ``task.py`` the data and the dense
teacher."""

# The imports below are the package's interface (re-exported names, no second list).
from . import experiment, method, quality, task  # noqa: F401
from .experiment import (  # noqa: F401
    CLAIMS,
    CONFIGS,
    CONTROLS,
    METHODS,
    PAPER,
    SETUPS,
    SWEEP_METHODS,
    TUNING,
    GSConfig,
    cached_compress,
    cached_sweep,
    channels_kept,
    comparison,
    compress,
    compress_sweep,
    controls,
    convergence,
    metrics_of,
    quality_controls,
    quality_table,
    run,
    setup_config,
    slim_generator,
)
from .method import GSKnobs, GSState, compression_ratio, gs_step  # noqa: F401
from .quality import fid_kid  # noqa: F401

#: One device: the official code trains on one GPU.
DATA_PARALLEL = False

