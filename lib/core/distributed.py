"""Data-parallel training through PyTorch's own elastic launcher (what ``torchrun`` runs).

``run_data_parallel(fn, nprocs, *args)`` is the one way the library trains on several
devices: it starts ``nprocs`` workers with ``torch.distributed.launcher`` (``elastic_launch``,
the API behind ``torchrun``); each joins the process group (``init_distributed``: NCCL with
one GPU a worker, gloo on CPU, which is how the tests check it), runs ``fn(*args)`` (which
wraps its model with ``wrap_ddp`` and shards its batches with ``shard``), and rank 0's return
value is saved atomically and loaded back in the caller. ``requested_workers()`` is how many
workers the user asked for (``python -m lib.reproduce ... --gpus N`` exports ``BOOK_GPUS``).
Scripts can equally be started from a shell: ``torchrun --nproc-per-node N script.py``.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

GPUS_ENV = "BOOK_GPUS"


def requested_workers(default: int | None = None) -> int:
    """Data-parallel workers to use: ``$BOOK_GPUS`` (``lib.reproduce --gpus N``), else
    ``default``, else one per visible CUDA device (at least 1)."""
    raw = os.environ.get(GPUS_ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"{GPUS_ENV}={raw!r}: expected a positive integer") from None
        if value < 1:
            raise ValueError(f"{GPUS_ENV}={value}: expected a positive integer")
        return value
    if default is not None and default > 0:
        return default
    return max(1, torch.cuda.device_count())


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


def _rank_main(fn: Callable[..., Any], kwargs: dict[str, Any], out_path: str,
               *args: Any) -> None:
    """One worker of ``run_data_parallel``: join the group, run, rank 0 saves the result."""
    from .checkpoint import atomic_torch_save

    rank, _ = init_distributed()
    try:
        result = fn(*args, **kwargs)
        if rank == 0:
            atomic_torch_save(result, out_path)
    finally:
        cleanup()


def run_data_parallel(fn: Callable[..., Any], nprocs: int, *args: Any,
                      workdir: str | Path | None = None, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in ``nprocs`` data-parallel workers; rank 0's return value.

    ``fn`` must be a module-level function (workers are spawned) that trains through
    ``wrap_ddp``/``shard`` and returns a ``torch.save``-able tree (it is loaded back with
    ``weights_only=True``). With ``nprocs == 1`` it runs in this process, no group.
    """
    from .checkpoint import safe_torch_load

    if nprocs < 1:
        raise ValueError(f"nprocs must be >= 1, got {nprocs}")
    if nprocs == 1:
        return fn(*args, **kwargs)
    directory = Path(workdir) if workdir is not None else Path(tempfile.gettempdir())
    directory.mkdir(parents=True, exist_ok=True)
    out_path = directory / f"rank0-result-{uuid.uuid4().hex[:12]}.pt"
    try:
        # _rank_main itself, not a functools.partial: elastic_launch names its entrypoint
        # by ``__name__``, which a partial lacks
        launch(_rank_main, nprocs, fn, kwargs, str(out_path), *args)
        return safe_torch_load(out_path)
    finally:
        out_path.unlink(missing_ok=True)
