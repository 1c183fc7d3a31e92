"""Data-parallel training through PyTorch's own elastic launcher (what ``torchrun`` runs).

``launch(fn, nprocs, *args)`` starts ``nprocs`` workers with ``torch.distributed.launcher``
(``elastic_launch``, the API behind ``torchrun``); each calls ``init_distributed()`` and wraps
its model with ``DistributedDataParallel``. On a GPU machine each worker takes one GPU
(NCCL); on CPU the same code runs with gloo, which is how the tests check it. Scripts can
equally be started from a shell: ``torchrun --nproc-per-node N script.py``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist


def init_distributed(backend: str | None = None) -> tuple[int, int]:
    """Join the process group the launcher described in the environment; ``(rank, world)``.

    Outside a launcher (no ``WORLD_SIZE``) this is a no-op returning ``(0, 1)``.
    """
    if "WORLD_SIZE" not in os.environ:
        return 0, 1
    if not dist.is_initialized():
        if backend is None:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(batch: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """This rank's contiguous slice of a global batch (the batch must split evenly)."""
    if batch.shape[0] % world:
        raise ValueError(f"global batch of {batch.shape[0]} does not split over {world} ranks")
    per = batch.shape[0] // world
    return batch[rank * per:(rank + 1) * per]


def wrap_ddp(model: torch.nn.Module) -> torch.nn.Module:
    """``DistributedDataParallel(model)`` when a process group is up, else ``model``."""
    if not (dist.is_available() and dist.is_initialized()):
        return model
    device_ids = [torch.cuda.current_device()] if dist.get_backend() == "nccl" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def cleanup() -> None:
    """Leave the process group (safe to call when none is up)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launch(fn: Callable[..., Any], nprocs: int, *args: Any,
           max_restarts: int = 0) -> dict[int, Any]:
    """Run ``fn(*args)`` in ``nprocs`` local workers via elastic launch; ``{rank: return}``.

    ``fn`` must be importable (a module-level function): workers are spawned processes.
    """
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nprocs < 1:
        raise ValueError(f"nprocs must be >= 1, got {nprocs}")
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nprocs, run_id=uuid.uuid4().hex[:12],
        rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=max_restarts,
        monitor_interval=0.1, start_method="spawn",
    )
    return elastic_launch(config, fn)(*args)
