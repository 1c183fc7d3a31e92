"""Noisy training (Wang, Shangguan, Yang et al., 2021): the noisy training step.

The paper adds *random noise to the parameters* during training, pushing the model towards
regions of weight space where the loss stays low when the weights move (a "smoother"
model, An 1996). One step of noisy training (``noisy_training_step``), for each weight
matrix ``W`` with pruning mask ``M`` (all ones when dense):

1. draw the perturbation (``sample_weight_noise``)
   additive:        ``eps ~ N(0, (sigma_t * std(W))^2)`` elementwise,
   multiplicative:  ``eps = sigma_t * W * z``, ``z ~ N(0, 1)`` elementwise;
   ``std(W)`` over the weights the mask keeps, ``sigma_t`` from the schedule
   (``noise_scale``);
2. forward and backward at the noisy point (``perturbed_weights``):
   ``g = grad_W L((W + eps) * M; batch)`` (pruned weights stay exactly zero, and their
   gradient is zero);
3. restore ``W`` exactly (a saved copy, not ``W + eps - eps``);
4. ``W <- optimizer(W, g)``: the update applies the noisy point's gradient to the clean
   weights, so the noise never accumulates in ``W``.

Sparse models come from gradual magnitude pruning (Zhu & Gupta 2017): the sparsity
follows the cubic schedule ``s_t = s_f (1 - (1 - t / t_ramp)^3)`` (``lib.sparse``), and
every ``prune_every`` steps each pruned matrix keeps its ``(1 - s_t) n`` largest
``|W * M|`` (``magnitude_prune``), so a pruned weight stays pruned. ``train_noisy`` runs the
steps on a recogniser, freshly initialised (noise from the start) or, through
``finetune``, the shared dense one (noise as fine-tuning).

``config`` arguments are a ``NoisyTrainingConfig`` (``experiment.py``); this module reads
only its knobs, so that it does not import the experiment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.utils import parametrize

from lib.asr import (
    ASRModel,
    BucketBatches,
    RNNTModelConfig,
    StepBatchLoader,
    make_optimizer,
    make_specaugment,
)
from lib.asr.model import cpu_state_dict, training_device
from lib.core import derive_seed, make_generator, seed_everything, select_device
from lib.core import train_loop as core_train_loop
from lib.sparse import attach_mask, bake, cubic_sparsity, get_mask, magnitude_mask

NOISE_KINDS = ("additive", "multiplicative")


NOISE_SCHEDULES = ("constant", "linear", "cosine")



# --- the noise ----------------------------------------------------------------------------

def noise_scale(step: int, total_steps: int, sigma: float, schedule: str = "constant",
                anneal_start: float = 0.0) -> float:
    """``sigma_t``: constant, or annealed from ``sigma`` to 0 between ``t_0 = anneal_start *
    T`` and ``T``: linear ``sigma (1 - p)``, cosine ``sigma (1 + cos(pi p)) / 2`` with
    ``p = clip((t - t_0) / (T - t_0), 0, 1)``."""
    if schedule not in NOISE_SCHEDULES:
        raise ValueError(f"unknown noise schedule {schedule!r}; valid: {NOISE_SCHEDULES}")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if total_steps < 1 or not 0.0 <= anneal_start < 1.0:
        raise ValueError(f"need total_steps >= 1 and 0 <= anneal_start < 1, got "
                         f"{total_steps}, {anneal_start}")
    if schedule == "constant":
        return float(sigma)
    start = anneal_start * total_steps
    p = min(1.0, max(0.0, (step - start) / (total_steps - start)))
    if schedule == "linear":
        return float(sigma * (1.0 - p))
    return float(sigma * 0.5 * (1.0 + math.cos(math.pi * p)))


class WeightMatrix(NamedTuple):
    """A noised tensor: its name, the parameter itself (``original`` under a mask), and the
    module and attribute where a pruning mask would sit."""

    name: str
    param: nn.Parameter
    module: nn.Module
    attr: str


def weight_matrices(model: nn.Module) -> list[WeightMatrix]:
    """Every parameter with two or more dimensions (weight matrices, embeddings, conv
    kernels), in module order; biases and normalisation scales (1-D) are left out. A masked
    weight (``lib.sparse.attach_mask``) is found through its ``original``."""
    out: list[WeightMatrix] = []
    for mod_name, module in model.named_modules():
        if isinstance(module, parametrize.ParametrizationList):
            continue  # reached through the module that owns it, below
        if parametrize.is_parametrized(module):
            for attr, plist in module.parametrizations.items():
                if plist.original.ndim >= 2:
                    out.append(WeightMatrix(f"{mod_name}.{attr}", plist.original, module, attr))
        for attr, p in module.named_parameters(recurse=False):
            if p.ndim >= 2:
                out.append(WeightMatrix(f"{mod_name}.{attr}", p, module, attr))
    return out


@torch.no_grad()
def sample_weight_noise(weight: torch.Tensor, sigma: float, kind: str,
                        generator: torch.Generator,
                        mask: torch.Tensor | None = None) -> torch.Tensor:
    """Step 1: ``eps = sigma * std(W_kept) * z`` (additive) or ``sigma * W * z``
    (multiplicative), ``z ~ N(0, I)`` from ``generator``; zero where ``mask`` is 0."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown noise kind {kind!r}; valid: {NOISE_KINDS}")
    w = weight.detach()
    z = torch.randn(w.shape, generator=generator, device=w.device, dtype=w.dtype)
    if kind == "additive":
        kept = w[mask.bool()] if mask is not None else w
        std = kept.std() if kept.numel() > 1 else w.new_zeros(())
        eps = (sigma * std) * z
    else:
        eps = sigma * w * z
    return eps * mask.to(w.dtype) if mask is not None else eps


@contextmanager
def perturbed_weights(model: nn.Module, sigma: float, *, kind: str = "additive",
                      generator: torch.Generator) -> Iterator[list[WeightMatrix]]:
    """Steps 1-3: inside the block every weight matrix holds ``W + eps`` (``eps`` zero on
    pruned entries); on exit, normal or not, each is restored bit for bit from a copy."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    targets = weight_matrices(model) if sigma > 0 else []
    saved: list[torch.Tensor] = []
    try:
        with torch.no_grad():
            for t in targets:
                eps = sample_weight_noise(t.param, sigma, kind, generator,
                                          get_mask(t.module, t.attr))
                saved.append(t.param.detach().clone())
                t.param.add_(eps)
        yield targets
    finally:
        with torch.no_grad():
            for t, clean in zip(targets, saved, strict=False):
                t.param.copy_(clean)


def noisy_training_step(model: nn.Module, loss_fn: Callable[[], torch.Tensor],
                        optimizer: torch.optim.Optimizer, *, sigma: float,
                        generator: torch.Generator, kind: str = "additive",
                        clip_grad_norm: float | None = 10.0) -> dict[str, float]:
    """One update of noisy training around any ``loss_fn`` (a closure computing the loss
    of the current batch): gradient at ``(W + eps) * M`` (steps 1-2), ``W`` restored
    (step 3), then clipping and the optimizer step on the clean ``W`` (step 4)."""
    optimizer.zero_grad(set_to_none=True)
    with perturbed_weights(model, sigma, kind=kind, generator=generator):
        loss = loss_fn()
        loss.backward()
    logs = {"loss": float(loss.detach())}
    if clip_grad_norm is not None:
        logs["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                                 clip_grad_norm))
    optimizer.step()
    return logs



# --- gradual magnitude pruning ------------------------------------------------------------

def encoder_matrices(model: ASRModel) -> list[nn.Linear]:
    """The linear layers of the Emformer encoder's layers (what is pruned)."""
    return [m for layer in model.rnnt.transcriber.transformer.emformer_layers
            for m in layer.modules() if isinstance(m, nn.Linear)]


@torch.no_grad()
def magnitude_prune(layers: Sequence[nn.Module], sparsity: float) -> None:
    """Mask each layer to keep its ``(1 - sparsity) n`` largest ``|W * M|`` (a weight pruned
    before has magnitude 0 and stays pruned while the sparsity grows)."""
    for m in layers:
        mask = get_mask(m)
        w = m.parametrizations.weight.original if mask is not None else m.weight
        attach_mask(m, magnitude_mask(w * mask if mask is not None else w, sparsity))



# --- one training run: noisy training of a dense or gradually pruned model -------------

def finetune(dense_artifact: dict[str, Any], train_set, config: Any, *,
             sparsity: float, sigma: float, seed: int, device: str = "auto",
             ckpt_dir: str | Path | None = None, run_key: str | None = None,
             show_progress: bool | None = None) -> dict[str, Any]:
    """Noise as fine-tuning: ``train_noisy`` from the dense recogniser ``dense_artifact``
    (with the config's dropout)."""
    model_config = {**dense_artifact["model_config"], "dropout": config.dropout}
    model = ASRModel(RNNTModelConfig(**model_config))
    model.load_state_dict(dense_artifact["state_dict"])
    return train_noisy(model, train_set, config, sparsity=sparsity, sigma=sigma, seed=seed,
                       device=device, ckpt_dir=ckpt_dir, run_key=run_key,
                       show_progress=show_progress)


def train_noisy(model: ASRModel, train_set, config: Any, *, sparsity: float, sigma: float,
                seed: int, device: str = "auto", ckpt_dir: str | Path | None = None,
                run_key: str | None = None, show_progress: bool | None = None
                ) -> dict[str, Any]:
    """Train ``model`` (freshly initialised: noise from the start; or a trained one: noise
    as fine-tuning) for ``config.steps`` steps, pruning its encoder gradually to
    ``sparsity`` (0: stays dense), with weight noise ``sigma`` (0: plain training) at every
    step. Returns the baked state dict and the training log."""
    from lib.core.distributed import rank_and_world, wrap_ddp

    seed_everything(seed)
    train_cfg = config.finetune_config()
    model.specaugment = make_specaugment(train_cfg)
    rank, world = rank_and_world()
    # under DDP each rank takes its own GPU (training_device); alone, the chosen device
    dev = training_device() if world > 1 else torch.device(select_device(device))
    model.to(dev)
    layers = encoder_matrices(model) if sparsity > 0 else []
    for m in layers:  # masks before the optimizer, which must see the masked parameters
        attach_mask(m, torch.ones_like(m.weight))
    opt, sched = make_optimizer(model, train_cfg)
    # this rank's shard of each step's batch; LibriSpeech: workers read the next ones ahead
    loader = StepBatchLoader(train_set, BucketBatches(train_set.lengths(), config.batch_size,
                                                      derive_seed(seed, "noisy-finetune")),
                             config.steps, rank=rank, world=world,
                             num_workers=train_cfg.num_workers)
    trainable = wrap_ddp(model)
    ramp_end = max(1, int(round(config.prune_ramp_fraction * config.steps)))

    def step_fn(step: int) -> dict[str, float]:
        model.train()
        s_t = cubic_sparsity(step, sparsity, 0, ramp_end) if layers else 0.0
        if layers and (step % config.prune_every == 0 or step == ramp_end):
            magnitude_prune(layers, s_t)
        batch = loader.get(step).to(dev)
        sigma_t = noise_scale(step, config.steps, sigma, config.noise_schedule,
                              config.anneal_start)
        # the same draw on every rank: the generator depends only on (seed, step)
        g = make_generator(derive_seed(seed, "weight-noise", step), dev)
        logs = noisy_training_step(model, lambda: trainable(batch), opt, sigma=sigma_t,
                                   generator=g, kind=config.noise_kind,
                                   clip_grad_norm=config.clip_grad_norm)
        sched.step()
        return {**logs, "sigma": sigma_t, "sparsity": s_t}

    result = core_train_loop(step_fn, config.steps,
                             state={"model": model, "opt": opt, "sched": sched},
                             ckpt_dir=ckpt_dir, run_key=run_key,
                             ckpt_every=max(1, config.steps // 20) if ckpt_dir else 0,
                             desc=f"{'sparse' if sparsity else 'dense'} sigma={sigma:g}",
                             show_progress=show_progress)
    if layers:
        magnitude_prune(layers, sparsity)  # exactly the target at the end
    bake(model)
    return {"state_dict": cpu_state_dict(model), "history": result.history,
            "train_seconds": result.wall_time_s, "steps": result.steps}

__all__ = ["NOISE_KINDS", "NOISE_SCHEDULES", "WeightMatrix", "encoder_matrices", "finetune",
           "magnitude_prune", "noise_scale", "noisy_training_step", "perturbed_weights",
           "sample_weight_noise", "train_noisy", "weight_matrices"]
