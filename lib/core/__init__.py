"""Core machinery every chapter uses: scales, seeding, device, cache, checkpoints, records.

Paired intervals and verdicts (``lib.core.stats``) and claims (``lib.core.claims``) are
imported from their modules: keeping them out of this package's namespace keeps them out of
the code version of every artifact built with ``from lib.core import ...``.
"""

from .cache import ArtifactCache, CacheWarning, artifact_key, run_key
from .checkpoint import (
    CheckpointManager,
    CheckpointWarning,
    ForeignCheckpointWarning,
    atomic_torch_save,
    safe_torch_load,
)
from .codegraph import code_version, modules_behind
from .config import SCALES, ScaleConfigs, config_dict, with_knobs
from .device import select_device
from .limits import limit_steps, step_limit
from .progress import progress
from .record import read_record, record_path, timed, write_record
from .seeding import derive_seed, make_generator, seed_everything
from .train import IndexBatches, TrainResult, supervised_step, train_loop

__all__ = [
    "SCALES", "ArtifactCache", "CacheWarning", "CheckpointManager", "CheckpointWarning",
    "ForeignCheckpointWarning", "IndexBatches", "ScaleConfigs", "TrainResult", "artifact_key",
    "atomic_torch_save", "code_version", "config_dict", "derive_seed", "limit_steps",
    "make_generator", "modules_behind", "progress", "read_record", "record_path", "run_key",
    "safe_torch_load", "seed_everything", "select_device", "step_limit", "supervised_step",
    "timed", "train_loop", "with_knobs", "write_record",
]
