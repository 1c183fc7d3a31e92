"""Training an RNN-T: AdamW with linear warm-up, length-bucketed batches, ``train_loop``
(checkpoints, exact resume), data parallelism with DDP when a process group is up."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lib.core import TrainResult, train_loop
from lib.core.distributed import rank_and_world, wrap_ddp

from .data import BucketBatches, StepBatchLoader
from .decode import transcribe
from .features import SpecAugment
from .model import training_device
from .wer import word_error_rate


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation of one RNN-T training run."""

    steps: int
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 300
    #: after warm-up: "constant" or "cosine" (to ``final_lr_fraction * lr``)
    decay: str = "cosine"
    final_lr_fraction: float = 0.1
    weight_decay: float = 0.01
    clip_grad_norm: float = 10.0
    #: SpecAugment (frequency mask width, number of frequency masks, time mask width,
    #: number of time masks); zeros switch it off
    specaugment: tuple[int, int, int, int] = (15, 2, 10, 2)
    ckpt_every: int = 0
    eval_every: int = 0
    #: DataLoader workers that read and featurise upcoming batches (LibriSpeech); 0: none
    num_workers: int = 0

    def __post_init__(self):
        if self.decay not in ("constant", "cosine"):
            raise ValueError(f"decay must be 'constant' or 'cosine', got {self.decay!r}")
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("need steps >= 0, batch_size >= 1 and lr > 0")


def make_specaugment(config: TrainConfig) -> SpecAugment:
    f, nf, t, nt = config.specaugment
    return SpecAugment(freq_mask=f, n_freq_masks=nf, time_mask=t, n_time_masks=nt)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then constant or cosine decay."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.decay == "constant" or config.steps <= config.warmup_steps:
        return 1.0
    progress = min(1.0, (step - config.warmup_steps) / (config.steps - config.warmup_steps))
    low = config.final_lr_fraction
    return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, config: TrainConfig):
    """AdamW (decoupled weight decay) and its warm-up/decay schedule."""
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                            betas=(0.9, 0.98), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, config))
    return opt, sched


def batch_sampler(train_set, config: TrainConfig, seed: int) -> BucketBatches:
    return BucketBatches(train_set.lengths(), config.batch_size, seed)


def train_asr(model: nn.Module, train_set, config: TrainConfig, seed: int, *,
              ckpt_dir: str | Path | None = None, run_key: str | None = None,
              eval_fn: Callable[[int], dict[str, float]] | None = None,
              loss_fn: Callable[[nn.Module, Any, int], torch.Tensor] | None = None,
              desc: str = "RNN-T", show_progress: bool | None = None,
              stop_after: int | None = None) -> TrainResult:
    """Train ``model`` (an ``ASRModel``) on ``train_set`` for ``config.steps`` steps.

    Under DDP (a process group is up) each rank takes its shard of every global batch.
    With ``ckpt_dir`` the run checkpoints under its ``run_key`` and resumes only itself.
    ``loss_fn(model, batch, step)`` replaces the plain RNN-T loss (e.g. for pruning).
    """
    rank, world = rank_and_world()
    device = training_device()
    model.to(device)
    trainable = wrap_ddp(model)
    opt, sched = make_optimizer(model, config)
    loader = StepBatchLoader(train_set, batch_sampler(train_set, config, seed), config.steps,
                             rank=rank, world=world, num_workers=config.num_workers)
    loss_fn = loss_fn or (lambda m, b, step: m(b))

    def step_fn(step: int) -> dict[str, float]:
        model.train()
        batch = loader.get(step).to(device)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(trainable, batch, step)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad_norm)
        opt.step()
        sched.step()
        return {"loss": loss.detach().item(), "grad_norm": float(norm),
                "lr": opt.param_groups[0]["lr"]}

    return train_loop(step_fn, config.steps, state={"model": model, "opt": opt, "sched": sched},
                      ckpt_dir=ckpt_dir, run_key=run_key,
                      ckpt_every=config.ckpt_every if ckpt_dir else 0,
                      eval_fn=eval_fn, eval_every=config.eval_every, desc=desc,
                      show_progress=show_progress, stop_after=stop_after)


def evaluate_wer(model: nn.Module, dataset, tokenizer, *, method: str = "greedy",
                 batch_size: int = 32, beam_width: int = 4,
                 return_hypotheses: bool = False):
    """WER of ``model`` on ``dataset`` (and optionally its hypotheses)."""
    hyps = transcribe(model, dataset, tokenizer, method=method, batch_size=batch_size,
                      beam_width=beam_width)
    wer = word_error_rate(dataset.texts, hyps)
    return (wer, hyps) if return_hypotheses else wer
