"""A tiny task that exercises the machinery end to end (the Foundations chapter and tests).

An MLP classifies scikit-learn's bundled 8x8 digits. It is trained with ``train_loop``,
checkpointed, killed with SIGKILL in a child process, resumed, and cached as an artifact.
The kill harness lives here, beside the chapter that shows it, not in ``lib.core``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lib.core.cache import ArtifactCache, run_key
from lib.core.config import ScaleConfigs, config_dict
from lib.core.seeding import seed_everything
from lib.core.train import IndexBatches, TrainResult, supervised_step, train_loop


@dataclass(frozen=True)
class ToyConfig:
    """Knobs of the toy run."""

    hidden: int
    steps: int
    batch_size: int
    lr: float
    ckpt_every: int
    eval_every: int


CONFIGS = ScaleConfigs(
    smoke=ToyConfig(hidden=16, steps=60, batch_size=32, lr=0.05, ckpt_every=10, eval_every=20),
    tutorial=ToyConfig(hidden=64, steps=600, batch_size=64, lr=0.05, ckpt_every=50,
                       eval_every=50),
    full=ToyConfig(hidden=256, steps=5000, batch_size=128, lr=0.05, ckpt_every=500,
                   eval_every=500),
)


def digits_split(seed: int = 0) -> dict[str, torch.Tensor]:
    """scikit-learn's bundled digits, scaled to [0, 1], split 75/25 stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x / 16.0, y, test_size=0.25, random_state=seed,
                                          stratify=y)
    as_x = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    as_y = lambda a: torch.tensor(a, dtype=torch.long)  # noqa: E731
    return {"x_train": as_x(xtr), "y_train": as_y(ytr), "x_test": as_x(xte), "y_test": as_y(yte)}


def make_mlp(hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, 10))


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def toy_run_key(config: ToyConfig, seed: int) -> str:
    """The identity of a toy training run: its config, seed and code."""
    return run_key("toy-mlp", {"config": config, "seed": seed}, code=[train_toy])


def train_toy(config: ToyConfig, seed: int = 0, *, ckpt_dir: str | Path | None = None,
              stop_after: int | None = None, step_delay: float = 0.0,
              show_progress: bool | None = None) -> tuple[nn.Module, TrainResult]:
    """Train the MLP; with ``ckpt_dir`` it checkpoints and resumes its own run
    (``toy_run_key``; ``step_delay`` slows each step so a test can kill the run mid-way)."""
    seed_everything(seed)
    data = digits_split(seed)
    model = make_mlp(config.hidden)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(config.steps, 1))
    batches = IndexBatches(len(data["y_train"]), config.batch_size, seed)

    def batch_fn(step: int):
        idx = batches.indices(step)
        return data["x_train"][idx], data["y_train"][idx]

    def loss_fn(m: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(m(x), y)

    plain = supervised_step(model, opt, loss_fn, batch_fn, scheduler=sched)

    def step_fn(step: int) -> dict[str, float]:
        if step_delay:
            time.sleep(step_delay)
        return plain(step)

    def eval_fn(step: int) -> dict[str, float]:
        return {"test_accuracy": accuracy(model, data["x_test"], data["y_test"])}

    result = train_loop(step_fn, config.steps, state={"model": model, "opt": opt, "sched": sched},
                        ckpt_dir=ckpt_dir, ckpt_every=config.ckpt_every if ckpt_dir else 0,
                        run_key=toy_run_key(config, seed) if ckpt_dir else None,
                        eval_fn=eval_fn, eval_every=config.eval_every, stop_after=stop_after,
                        desc="toy MLP", show_progress=show_progress)
    return model, result


def toy_is_cached(config: ToyConfig, seed: int = 0, cache: ArtifactCache | None = None) -> bool:
    """Whether ``trained_toy(config, seed)`` would load rather than train."""
    return (cache or ArtifactCache()).contains("toy-mlp", {"config": config, "seed": seed},
                                               code=[train_toy])


def trained_toy(config: ToyConfig, seed: int = 0,
                cache: ArtifactCache | None = None) -> dict[str, Any]:
    """The trained toy model from the artifact cache (trained once, then reused)."""

    def build() -> dict[str, Any]:
        model, result = train_toy(config, seed)
        return {"state_dict": model.state_dict(), "history": result.history,
                "evals": result.evals, "train_seconds": result.wall_time_s}

    cache = cache or ArtifactCache()
    return cache.get_or_create("toy-mlp", {"config": config, "seed": seed}, build)


def kill_and_resume(config: ToyConfig, seed: int, ckpt_dir: str | Path, *, kill_at: int,
                    step_delay: float = 0.01, timeout: float = 120.0,
                    reference_dir: str | Path | None = None) -> dict[str, Any]:
    """Start training in a child process, SIGKILL it once a checkpoint at step >= ``kill_at``
    exists, then resume it in a second child process. Returns the resumed child's output.

    With ``reference_dir``, an uninterrupted run trains meanwhile in a third process (on
    the other core) and its output is returned under ``"reference"``.
    """
    ckpt_dir = Path(ckpt_dir)
    from lib.core.checkpoint import CheckpointManager, CheckpointWarning

    reference = _start_child(config, seed, reference_dir) if reference_dir else None
    manager = CheckpointManager(ckpt_dir, run_key=toy_run_key(config, seed))
    child = _start_child(config, seed, ckpt_dir, step_delay=step_delay)
    deadline = time.monotonic() + timeout
    while not any(s >= kill_at for s in manager.complete_steps()):
        if child.poll() is not None:
            raise RuntimeError(f"child finished before step {kill_at}: "
                               f"{child.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            child.kill()
            raise TimeoutError(f"no checkpoint at step >= {kill_at} within {timeout} s")
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    # the kill may land while a later checkpoint is half written: it is skipped on resume
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)
        killed_at = manager.load_latest()[0]
    out = {"killed_at_checkpoint": killed_at, "returncode_killed": child.returncode,
           **train_in_child(config, seed, ckpt_dir, timeout=timeout)}
    if reference is not None:
        out["reference"] = _finish_child(reference, timeout)
    return out


def _start_child(config: ToyConfig, seed: int, ckpt_dir: str | Path, *,
                 step_delay: float = 0.0) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lib.papers.foundations.toy", "--ckpt-dir", str(ckpt_dir),
           "--seed", str(seed), "--config", json.dumps(config_dict(config)),
           "--step-delay", str(step_delay)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "BOOK_PROGRESS": "0"})


def _finish_child(child: subprocess.Popen, timeout: float) -> dict[str, Any]:
    stdout, stderr = child.communicate(timeout=timeout)
    if child.returncode != 0:
        raise RuntimeError(f"child training run failed:\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def train_in_child(config: ToyConfig, seed: int, ckpt_dir: str | Path, *,
                   timeout: float = 300.0) -> dict[str, Any]:
    """Train (or resume) in a fresh Python process; its history, evals and weight digest."""
    return _finish_child(_start_child(config, seed, ckpt_dir), timeout)


def _main() -> None:
    parser = argparse.ArgumentParser(description="train the toy MLP with checkpoints")
    parser.add_argument("--ckpt-dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config", required=True, help="ToyConfig fields as JSON")
    parser.add_argument("--step-delay", type=float, default=0.0)
    args = parser.parse_args()
    config = ToyConfig(**json.loads(args.config))
    model, result = train_toy(config, args.seed, ckpt_dir=args.ckpt_dir,
                              step_delay=args.step_delay, show_progress=False)
    weights = torch.cat([p.detach().flatten() for p in model.parameters()])
    print(json.dumps({"resumed_from": result.resumed_from, "history": result.history,
                      "evals": result.evals, "weight_sum": weights.double().sum().item(),
                      "weight_bytes_sha": __import__("hashlib").sha256(
                          weights.numpy().tobytes()).hexdigest()}))


if __name__ == "__main__":
    _main()
