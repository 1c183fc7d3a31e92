"""A training loop that checkpoints atomically and resumes exactly where a killed run stopped.

Exact resume needs two things, both provided here:

* the data a step sees depends only on ``(seed, step)`` (``IndexBatches``), not on how many
  steps this process has run;
* everything that carries state (model, optimizer, scheduler, RNGs, the metrics history)
  goes into the checkpoint and is restored.

A killed run resumed from its newest checkpoint then ends with bit-identical weights and
metrics on CPU. A checkpointed run names its ``run_key`` (``lib.core.run_key``: config and
code), so it resumes only its own checkpoints; a dry run's step limit (``lib.core.limits``)
caps ``steps``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from .checkpoint import CheckpointManager
from .limits import limit_steps
from .progress import progress
from .record import timed
from .seeding import derive_seed, make_generator


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


class IndexBatches:
    """Mini-batch indices over ``n`` examples; ``indices(step)`` depends only on (seed, step).

    Each epoch is a fresh permutation drawn from a generator seeded by ``(seed, epoch)``.
    """

    def __init__(self, n: int, batch_size: int, seed: int, *, drop_last: bool = True):
        if n < 1 or batch_size < 1:
            raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        if drop_last and batch_size > n:
            raise ValueError(f"batch_size {batch_size} > n {n} with drop_last: no full batch")
        self.n, self.batch_size, self.seed, self.drop_last = n, batch_size, seed, drop_last
        self.per_epoch = n // batch_size if drop_last else -(-n // batch_size)
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = make_generator(derive_seed(self.seed, "epoch", epoch))
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(int(step), self.per_epoch)
        return self._permutation(epoch)[i * self.batch_size:(i + 1) * self.batch_size]

    def epoch_of(self, step: int) -> int:
        return int(step) // self.per_epoch


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainResult:
    """What ``train_loop`` returns: per-step logs, evaluations, where it resumed from."""

    history: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, float]] = field(default_factory=list)
    steps: int = 0
    resumed_from: int | None = None
    wall_time_s: float = 0.0

    def last(self, key: str) -> float:
        """The last logged value of ``key`` (evaluations first, then step logs)."""
        for rec in reversed(self.evals + self.history):
            if key in rec:
                return rec[key]
        raise KeyError(f"{key!r} was never logged; logged keys: {self.keys()}")

    def keys(self) -> list[str]:
        return sorted({k for rec in self.history + self.evals for k in rec})


def _is_main_process() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def train_loop(step_fn: Callable[[int], dict[str, float]], steps: int, *,
               state: dict[str, Stateful], ckpt_dir: str | Path | None = None,
               run_key: str | None = None, ckpt_every: int = 0, log_every: int = 1,
               eval_fn: Callable[[int], dict[str, float]] | None = None, eval_every: int = 0,
               keep: int = 2, desc: str = "train", show_progress: bool | None = None,
               stop_after: int | None = None) -> TrainResult:
    """Run ``step_fn(step)`` for ``step = 0 .. steps-1``; checkpoint and resume.

    ``step_fn`` does one whole update (forward, backward, optimizer step) and returns
    floats to log. ``state`` names every object whose ``state_dict`` must survive a restart.
    With ``ckpt_dir``, a checkpoint is written every ``ckpt_every`` steps and at the end;
    a rerun with the same ``ckpt_dir`` and ``run_key`` continues from the newest good
    checkpoint, and checkpoints of another run key are refused (the run starts fresh).
    Under a dry-run step limit (``BOOK_MAX_STEPS``) ``steps`` is capped.
    ``eval_fn(step)`` runs every ``eval_every`` steps and after the last step.
    ``stop_after`` ends the run early (after that many total steps) as a kill would, for
    demonstrations.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if ckpt_every and ckpt_dir is None:
        raise ValueError("ckpt_every needs a ckpt_dir to write checkpoints to")
    if ckpt_dir is not None and not run_key:
        raise ValueError("a checkpointed run needs its run_key (lib.core.run_key(name, config, "
                         "code=[...])) so that it resumes only its own checkpoints")
    steps = limit_steps(steps)
    manager = (CheckpointManager(ckpt_dir, keep=keep, run_key=run_key)
               if ckpt_dir is not None else None)
    result = TrainResult()
    start = 0
    if manager is not None:
        found = manager.load_latest()
        if found is not None:
            start, saved = found
            for name, obj in state.items():
                obj.load_state_dict(saved["objects"][name])
            _set_rng_state(saved["rng"])
            result.history, result.evals = saved["history"], saved["evals"]
            result.resumed_from = start

    def checkpoint(step: int) -> None:
        if manager is not None and _is_main_process():
            manager.save(step, {
                "objects": {name: obj.state_dict() for name, obj in state.items()},
                "rng": _rng_state(), "history": result.history, "evals": result.evals,
            })

    end = steps if stop_after is None else min(steps, stop_after)
    with timed() as clock:
        bar = progress(range(start, end), desc=desc, total=end - start, enabled=show_progress)
        for step in bar:
            logs = step_fn(step)
            if log_every and (step % log_every == 0 or step == steps - 1):
                result.history.append({"step": step, **{k: float(v) for k, v in logs.items()}})
                if "loss" in logs:
                    bar.set_postfix(loss=f"{float(logs['loss']):.4f}", refresh=False)
            done = step + 1
            if eval_fn is not None and ((eval_every and done % eval_every == 0) or done == steps):
                result.evals.append({"step": done, **{k: float(v) for k, v in
                                                      eval_fn(done).items()}})
            if ckpt_every and done % ckpt_every == 0 and done != steps:
                checkpoint(done)
        bar.close()
        if end > start and (manager is not None):
            checkpoint(end)
    result.steps, result.wall_time_s = end, clock.seconds
    return result


def supervised_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
                    batch_fn: Callable[[int], Any], *, scheduler: Any = None,
                    clip_grad_norm: float | None = None) -> Callable[[int], dict[str, float]]:
    """The ordinary ``step_fn``: batch, forward, backward, optional clipping, step."""

    def step_fn(step: int) -> dict[str, float]:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model, batch_fn(step))
        loss.backward()
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return {"loss": loss.detach().item(), "lr": optimizer.param_groups[0]["lr"]}

    return step_fn
