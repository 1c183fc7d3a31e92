"""Core machinery every chapter uses: scales, seeding, device, cache, checkpoints, records."""

from .cache import ArtifactCache, artifact_key, code_version
from .checkpoint import CheckpointManager, CheckpointWarning, atomic_torch_save, safe_torch_load
from .config import SCALES, ScaleConfigs, config_dict, with_knobs
from .device import select_device
from .progress import progress
from .record import read_record, record_path, timed, write_record
from .seeding import derive_seed, make_generator, seed_everything
from .train import IndexBatches, TrainResult, supervised_step, train_loop

__all__ = [
    "SCALES", "ArtifactCache", "CheckpointManager", "CheckpointWarning", "IndexBatches",
    "ScaleConfigs", "TrainResult", "artifact_key", "atomic_torch_save", "code_version",
    "config_dict", "derive_seed", "make_generator", "progress", "read_record", "record_path",
    "safe_torch_load", "seed_everything", "select_device", "supervised_step", "timed",
    "train_loop", "with_knobs", "write_record",
]
