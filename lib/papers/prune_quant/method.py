r"""Sparsity-quantization joint learning under a model-size budget (Yang et al., CVPR 2020).

**Problem.** Compress a trained network to at most ``S`` bits by pruning *and* quantizing,
with no hand-set per-layer ratios:

.. math::

    \min_W L(W) \quad\text{s.t.}\quad \sum_j b_j \|W_j\|_0 \le S,\qquad
    W_j \in \mathcal{Q}_{b_j},\ b_j \in \{1, \dots, 8\},

where layer ``j``'s nonzeros take at most ``2^{b_j}`` values (a k-means codebook plus the
zero, which a sparse format does not store). Only conv/linear weights count, as in the
paper; the compression ratio is ``32 N / S`` against the dense float32 model.

**ADMM** splits the constraint between ``W`` (sparse, trained) and a quantized duplicate
``V`` with a scaled dual ``U``; each step below is one function of this module:

1. *W-step* (``admm_w_step``): an SGD step on ``L(W)``, then the proximal pull of
   ``(rho / 2) |W - V + U|^2``: ``W <- (W + beta (V - U)) / (1 + beta)``, ``beta = lr rho``.
2. *Sparse projection* (``sparse_projection``, every ``proj_every`` steps): project ``W``
   onto ``{sum_j b_j |W_j|_0 <= S}`` with the current bits: a 0/1 knapsack, greedy by
   ``w^2 / b_j``.
3. *V-step* (``quantization_projection``, every ``dual_every`` steps): quantize ``W + U``
   on the support of ``W``: per layer and candidate ``b``, 1-D k-means with ``2^b``
   centres and a fixed 0 gives the distortion ``D_j(b)``; the bits minimise
   ``sum_j D_j(b_j)`` s.t. ``sum_j b_j nnz_j <= S`` (a multiple-choice knapsack).
4. *Dual update*: ``U <- U + W - V``.

The final model is ``W`` quantized with the final bits; its size ``sum_j b_j nnz_j`` is at
most ``S``. Three baselines at the same budget reuse this loop: *prune-only* (values stay
float32: the projection with ``b_j = 32``, no V-step), *quantize-only* (every layer the same
``b``, plain k-means of ``2^b`` values, no pruning; ratio ``32 / b``) and *sequential ADMM*
(prune at a fixed ``b``, then quantize the fixed support to ``b``); Deep Compression is in
``experiment.py``.
Optional distillation adds ``T * CE(softmax(teacher / T), student / T)`` with the dense
model as teacher (the official code's ``--kdtemp``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from lib.core import seed_everything
from lib.core.train import train_loop
from lib.quant import (
    allocate_bits,
    kmeans_quantize,
    kmeans_quantize_all_bits,
    model_size_bits,
    zero_kmeans_is_exact,
)
from lib.quant.admm import ADMMState, dual_update, proximal_pull
from lib.sparse import prunable_layers, weighted_sparse_masks

from .task import Task


# --------------------------------------------------------------------------- ADMM steps
def budget_bits(model: nn.Module, ratio: float) -> int:
    """The size budget ``S = floor(32 N / ratio)`` bits for a target compression ratio."""
    if not ratio >= 1:
        raise ValueError(f"a compression ratio must be >= 1, got {ratio}")
    n = sum(m.weight.numel() for _, m in prunable_layers(model))
    return int(math.floor(32 * n / ratio))


@torch.no_grad()
def sparse_projection(weights: list[torch.Tensor], bits: list[int], budget: float) -> list[int]:
    """Step 2: zero ``W`` (in place) outside the greedy knapsack by ``w^2 / b_j`` under
    ``sum_j b_j nnz_j <= budget``; returns the per-layer nonzeros."""
    masks = weighted_sparse_masks(weights, bits, budget)
    for w, m in zip(weights, masks, strict=True):
        w.mul_(m.to(w.dtype))
    return [int((w != 0).sum()) for w in weights]


@torch.no_grad()
def quantization_projection(targets: list[torch.Tensor], support: list[torch.Tensor],
                            budget: float, candidate_bits: tuple[int, ...],
                            solver: str = "exact", kmeans_bins: int = 512,
                            fixed_bits: list[int] | None = None, fixed_zero: bool = True,
                            nnz: list[int] | None = None
                            ) -> tuple[list[torch.Tensor], list[int], dict[str, Any]]:
    """Step 3 (V-step): quantize ``W + U`` on ``support`` (all ones: everywhere, as the
    official code; ``admm_v_step`` chooses).

    Per layer, k-means with a zero centre at every candidate bit-width gives ``D_j(b)``;
    a multiple-choice knapsack picks ``b_j`` minimising ``sum D_j(b_j)`` under
    ``sum b_j nnz_j <= budget`` (unless ``fixed_bits``), ``nnz_j`` the nonzeros of ``W``
    (default: of ``support``). Returns ``V``, the bits and the distortion table with
    whether the paper's greedy agrees with the exact choice and, per layer, whether its
    k-means was solved exactly (``kmeans_exact``; else binned and refined by Lloyd).
    """
    masked = [t * s.to(t.dtype) for t, s in zip(targets, support, strict=True)]
    nnz = [int(s.sum()) for s in support] if nnz is None else list(nnz)
    bits_list = list(candidate_bits) if fixed_bits is None else sorted(set(fixed_bits))
    fits = [kmeans_quantize_all_bits(x, bits_list, max_bins=kmeans_bins, fixed_zero=fixed_zero)
            for x in masked]
    distortion = torch.tensor([[f.distortion for f in layer] for layer in fits],
                              dtype=torch.float64)
    info: dict[str, Any] = {"distortion": distortion.tolist(), "candidate_bits": bits_list,
                            "kmeans_exact": [zero_kmeans_is_exact(x, kmeans_bins) if fixed_zero
                                             else x.numel() <= kmeans_bins for x in masked]}
    if fixed_bits is None:
        bits = allocate_bits(distortion, nnz, bits_list, budget, solver=solver)
        greedy = allocate_bits(distortion, nnz, bits_list, budget, solver="greedy")
        info["greedy_agrees"] = greedy == bits
    else:
        bits = list(fixed_bits)
    quantized = [layer[bits_list.index(b)].weight for layer, b in zip(fits, bits, strict=True)]
    return quantized, bits, info


V_STEP_SUPPORTS = ("everywhere", "weights")


@torch.no_grad()
def admm_v_step(weights: list[torch.Tensor], state: ADMMState, budget: float,
                candidate_bits: tuple[int, ...], solver: str = "exact", kmeans_bins: int = 512,
                fixed_bits: list[int] | None = None, fixed_zero: bool = True,
                support: str = "everywhere", frozen: list[torch.Tensor] | None = None
                ) -> dict[str, Any]:
    """Steps 3 and 4: ``V <- Q(W + U)`` with the bits of the knapsack, then
    ``U <- U + W - V``, on ``state`` in place; returns the step's record.

    ``support="everywhere"`` quantizes ``W + U`` at every position (the official code's
    ``sparse_quantize`` of ``W + U``), so a dual entry left where ``W`` was later pruned
    is quantized too and decays; ``"weights"`` restricts ``V`` to ``W``'s nonzeros, which
    leaves such entries undecayed (``U <- U + 0 - 0``), kept as a variant. ``frozen``:
    the fixed support of quantize-only (all ones). The knapsack always prices ``W``'s
    nonzeros."""
    if support not in V_STEP_SUPPORTS:
        raise ValueError(f"support must be one of {V_STEP_SUPPORTS}, got {support!r}")
    targets = [w.detach() + u for w, u in zip(weights, state.u, strict=True)]
    nnz = [int((w != 0).sum()) for w in weights] if frozen is None else [
        int(f.sum()) for f in frozen]
    if frozen is not None:
        where = frozen
    elif support == "everywhere":
        where = [torch.ones_like(w, dtype=torch.bool) for w in weights]
    else:
        where = [(w != 0) for w in weights]
    v, bits, info = quantization_projection(targets, where, budget, candidate_bits, solver,
                                            kmeans_bins, fixed_bits, fixed_zero, nnz=nnz)
    state.v, state.bits = v, bits
    residual = dual_update(weights, state.v, state.u)  # U <- U + W - V
    norm = sum(float((w.detach() ** 2).sum()) for w in weights)
    return {"residual": residual / max(norm, 1e-30), "bits": list(bits), "nnz": list(nnz),
            "greedy_agrees": info.get("greedy_agrees"),
            "kmeans_exact": all(info["kmeans_exact"])}


def classification_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        teacher: nn.Module | None = None, temperature: float = 0.0
                        ) -> torch.Tensor:
    """Cross-entropy, plus ``T * CE(softmax(teacher / T), softmax(model / T))`` when
    distilling (as the official code's ``classify_loss``)."""
    out = model(x)
    loss = F.cross_entropy(out, y)
    if teacher is not None and temperature > 0:
        with torch.no_grad():
            soft = F.softmax(teacher(x) / temperature, dim=1)
        loss = loss + temperature * -(soft * F.log_softmax(out / temperature, dim=1)).sum(1).mean()
    return loss


def admm_compress(model: nn.Module, task: Task, cfg: Any, budget: float, *,
                  prune: bool = True, quantize: bool = True, fixed_bits: int | None = None,
                  fixed_zero: bool = True, projection_bits: int | None = None,
                  freeze_support: bool = False, epochs: int | None = None,
                  teacher: nn.Module | None = None, seed: int = 0,
                  ckpt_dir: str | Path | None = None, run_key: str | None = None,
                  desc: str = "admm") -> dict[str, Any]:
    """Compress ``model`` in place under ``budget`` bits with ADMM (Algorithm 1).

    ``prune``/``quantize`` switch steps 2 and 3-4 (prune-only: no V-step; quantize-only:
    no projection). ``fixed_bits`` skips the bit allocation; ``projection_bits`` fixes the
    cost of a nonzero in the projection (32 for prune-only); ``freeze_support`` keeps the
    current zeros (the second stage of sequential ADMM). Returns the final bits,
    nonzeros, the accounted size, and the per-V-step history (residual ``|W - V|^2 /
    |W|^2``, bits, nonzeros).
    """
    seed_everything(seed)
    layers = prunable_layers(model)
    weights = [m.weight for _, m in layers]
    support = [(w != 0) for w in weights] if freeze_support else None
    n_layers = len(weights)
    init_bits = (projection_bits if projection_bits is not None
                 else fixed_bits if fixed_bits is not None else cfg.initial_bits)
    state = ADMMState(weights, [init_bits] * n_layers)
    decay = [p for n, p in model.named_parameters() if n.endswith("weight")]
    other = [p for n, p in model.named_parameters() if not n.endswith("weight")]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": other, "weight_decay": 0.0}], lr=cfg.lr,
                          momentum=cfg.momentum)
    epochs = cfg.epochs if epochs is None else epochs
    steps = epochs * task.steps_per_epoch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    proj_every = cfg.proj_every or task.steps_per_epoch
    dual_every = cfg.dual_every or task.steps_per_epoch
    cost_bits = (lambda: [projection_bits] * n_layers) if projection_bits is not None else (
        lambda: state.bits)

    def project() -> None:  # step 2 (or the fixed support of stage two)
        if freeze_support:
            with torch.no_grad():
                for w, s in zip(weights, support, strict=True):
                    w.mul_(s.to(w.dtype))
            state.nnz = [int((w != 0).sum()) for w in weights]
        elif prune:
            state.nnz = sparse_projection(weights, cost_bits(), budget)

    def v_step(step: int) -> None:  # steps 3 and 4
        frozen = None if (prune or freeze_support) else [
            torch.ones_like(w, dtype=torch.bool) for w in weights]
        record = admm_v_step(weights, state, budget, tuple(cfg.candidate_bits),
                             cfg.bit_allocation, cfg.kmeans_bins,
                             None if fixed_bits is None else [fixed_bits] * n_layers,
                             fixed_zero, support=cfg.v_step_support,
                             frozen=frozen)
        state.history.append({"step": step, **record})

    # start from the pretrained model: project and quantize once (official code, epoch 0)
    project()
    if quantize:
        v_step(0)

    def step_fn(step: int) -> dict[str, float]:
        model.train()
        x, y = task.batch(step)
        opt.zero_grad(set_to_none=True)
        loss = classification_loss(model, x, y, teacher, cfg.kd_temperature)
        loss.backward()
        lr = opt.param_groups[0]["lr"]
        opt.step()  # step 1a: SGD on L(W)
        sched.step()
        if quantize:
            proximal_pull(weights, state.v, state.u, lr, cfg.rho)  # step 1b
        done = step + 1
        if done % proj_every == 0 or done == steps or freeze_support:
            project()
        if quantize and (done % dual_every == 0 or done == steps):
            v_step(done)
        return {"loss": loss.item()}

    result = train_loop(step_fn, steps, state={"model": model, "opt": opt, "sched": sched,
                                               "admm": state},
                        ckpt_dir=ckpt_dir, run_key=run_key,
                        ckpt_every=task.steps_per_epoch if ckpt_dir else 0,
                        log_every=task.steps_per_epoch, desc=desc)
    project()  # the final model obeys the projection
    bits = state.bits if quantize else [32] * n_layers
    if quantize:  # the final model: W quantized with the final bits (k-means, zero centre)
        with torch.no_grad():
            for w, b in zip(weights, bits, strict=True):
                w.copy_(kmeans_quantize(w, b, max_bins=cfg.kmeans_bins,
                                        fixed_zero=fixed_zero).weight)
    report = model_size_bits(layers, bits)
    return {"bits": bits, "nnz": [r["nnz"] for r in report.layers],
            "size_bits": report.total_bits, "budget_bits": budget, "ratio": report.ratio,
            "history": state.history, "train_seconds": result.wall_time_s,
            "losses": [h["loss"] for h in result.history]}
