r"""ATMC: adversarially trained model compression (Gui et al., NeurIPS 2019).

The problem (Eq. 4 of the paper): robust training under a size budget,

.. math::

    \min_{U, V, C}\; \mathbb{E}_{(x, y)} \max_{\|\delta\|_\infty \le \epsilon}
        f(W; x + \delta, y), \qquad W_l = U_l V_l + C_l \\
    \text{s.t.}\quad \sum_l \|U_l\|_0 + \|V_l\|_0 + \|C_l\|_0 \le k, \qquad
        |\{\text{values of } U_l\}|, |\{\ldots V_l\}|, |\{\ldots C_l\}| \le 2^b .

Each compressed layer's weight (reshaped to ``out x in``) is a low-rank product ``U V``
plus a sparse part ``C``; the l0 budget ``k`` is *global* over all layers and all three
factors, and each factor has at most ``2^b`` distinct values (a k-means codebook holding
0). Solved as in the paper's Algorithm 1:

1. **the attack** (inner max): PGD on the current network, ``x_adv = pgd(x)``; the loss is
   ``0.5 CE(x) + 0.5 CE(x_adv)`` (the official code's mix);
2. **W-step**: a projected SGD step on ``(U, V, C)``: gradient step, the ADMM proximal pull
   towards ``Z - Lambda`` (``lib.quant.admm.proximal_pull``), then the global top-k l0
   projection (``lib.sparse.projections.global_topk_projection``);
3. **Z-step** (quantized duplicate): ``Z = Q_b(Pi_k(W + Lambda))``, k-means with a zero
   centre per factor (``lib.quant.kmeans.kmeans_quantize(zero_counts=True)``);
4. **dual ascent**: ``Lambda <- Lambda + W - Z`` (``lib.quant.admm.dual_update``).

Stages as in the official code: the dense adversarial model is factorized (truncated SVD
for ``U V``, the residual as ``C``), trained with the l0 projection alone (steps 1-2 without
the pull: ATMC-32, the whole budget of steps when ``b = 32``), then with the ADMM
quantization (steps 1-4) for ``b < 32``, and finally quantized hard (``W = Q_b(W)``), which
keeps every zero, so the budget and the codebooks then hold exactly.

Our reading where the paper is silent: the rank of ``U V`` per layer is
``rank_fraction x min(out, in)``; biases stay dense and 32-bit and are not counted; the size
counts value bits only (``nonzeros x b``: no index or codebook overhead, as the paper's
ratios), so at one size ratio ATMC-8 keeps four times the nonzeros of a 32-bit method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from lib.core import derive_seed
from lib.quant.admm import ADMMState, dual_update, proximal_pull
from lib.quant.kmeans import kmeans_quantize
from lib.sparse.projections import global_topk_projection
from lib.vision.attacks import PGDConfig, adversarial_loss, pgd_generator

#: What the chapter imports (re-exported by the package's ``__init__``).
__all__ = ["ATMCKnobs", "FactorizedLayer", "budget_for", "compress_adversarially",
           "compressed_tensors", "dense_size", "factorize", "size_report"]


# ------------------------------------------------------------------ the factorized layer
class FactorizedLayer(nn.Module):
    """A conv or linear layer whose weight is ``(U V + C).view(shape)`` (``C`` optional:
    without it, the low-rank baseline ALR)."""

    def __init__(self, layer: nn.Conv2d | nn.Linear, rank: int, sparse_part: bool = True):
        super().__init__()
        w = layer.weight.detach()
        self.shape = tuple(w.shape)
        self.conv = (dict(stride=layer.stride, padding=layer.padding,
                          dilation=layer.dilation, groups=layer.groups)
                     if isinstance(layer, nn.Conv2d) else None)
        mat = w.reshape(w.shape[0], -1)
        rank = max(1, min(rank, min(mat.shape)))
        # truncated SVD: U = P sqrt(S), V = sqrt(S) Q^T balances the two factors' scales
        p, s, qt = torch.linalg.svd(mat, full_matrices=False)
        root = s[:rank].sqrt()
        self.U = nn.Parameter((p[:, :rank] * root).contiguous())
        self.V = nn.Parameter((root[:, None] * qt[:rank]).contiguous())
        self.C = nn.Parameter(mat - self.U.detach() @ self.V.detach()) if sparse_part else None
        self.bias = (nn.Parameter(layer.bias.detach().clone())
                     if layer.bias is not None else None)

    def factors(self) -> list[torch.Tensor]:
        return [self.U, self.V] + ([self.C] if self.C is not None else [])

    def weight(self) -> torch.Tensor:
        mat = self.U @ self.V
        if self.C is not None:
            mat = mat + self.C
        return mat.view(self.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv is None:
            return F.linear(x, self.weight(), self.bias)
        return F.conv2d(x, self.weight(), self.bias, **self.conv)


def compressible_layers(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """(parent, name, layer) of every conv and linear layer, in order."""
    found = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, (nn.Conv2d, nn.Linear, FactorizedLayer)):
                found.append((parent, name, child))
    return found


def dense_size(model: nn.Module) -> int:
    """Weights of the conv and linear layers of the dense model (the size ratio's unit)."""
    return sum(layer.weight.numel() for _, _, layer in compressible_layers(model))


def factorize(model: nn.Module, rank_fraction: float, sparse_part: bool = True) -> nn.Module:
    """Replace, in place, every conv/linear layer by a ``FactorizedLayer`` of rank
    ``max(1, round(rank_fraction x min(out, in)))`` initialised from its weight."""
    for parent, name, layer in compressible_layers(model):
        mat_shape = (layer.weight.shape[0], layer.weight[0].numel())
        rank = max(1, round(rank_fraction * min(mat_shape)))
        setattr(parent, name, FactorizedLayer(layer, rank, sparse_part).to(layer.weight.device))
    return model


def compressed_tensors(model: nn.Module) -> list[torch.Tensor]:
    """What the l0 budget and the codebooks constrain: the factors ``U, V, C`` of every
    factorized layer, else the weights of the plain conv/linear layers."""
    out: list[torch.Tensor] = []
    for _, _, layer in compressible_layers(model):
        out += layer.factors() if isinstance(layer, FactorizedLayer) else [layer.weight]
    return out


# ------------------------------------------------------------------ projections
@torch.no_grad()
def project_l0(tensors: list[torch.Tensor], budget: int) -> None:
    """``Pi_k``, in place: keep the ``budget`` largest magnitudes over all tensors."""
    for t, p in zip(tensors, global_topk_projection(tensors, budget), strict=True):
        t.copy_(p)


@torch.no_grad()
def quantize(t: torch.Tensor, bits: int) -> torch.Tensor:
    """``Q_b``: k-means on the nonzeros with a zero centre, ``2^b`` values including 0
    (zeros stay zero). ``bits >= 32`` is the identity."""
    if bits >= 32 or not bool((t != 0).any()):
        return t.detach().clone()
    return kmeans_quantize(t.detach(), bits, zero_counts=True).weight.to(t.dtype)


def quantized_duplicate(tensors: list[torch.Tensor], dual: list[torch.Tensor], budget: int,
                        bits: int) -> list[torch.Tensor]:
    """The Z-step: ``Z = Q_b(Pi_k(W + Lambda))`` per factor."""
    shifted = [(t.detach() + d) for t, d in zip(tensors, dual, strict=True)]
    return [quantize(z, bits) for z in global_topk_projection(shifted, budget)]


# ------------------------------------------------------------------ training
@dataclass(frozen=True)
class ATMCKnobs:
    """One compression run: budget, bits, optimizer, ADMM and attack."""

    budget: int                    # k: nonzeros over all constrained tensors
    bits: int                      # b: at most 2^b values per tensor (32: no quantization)
    steps: int                     # adversarial training steps in all (every method)
    batch_size: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 0.0
    quant_fraction: float = 0.5    # share of the steps in the ADMM stage when bits < 32
    rho: float = 0.1               # the official code's rho
    admm_every: int = 10           # Z- and dual steps every this many W-steps
    adv_weight: float = 0.5        # 0: clean training (NAP)
    attack: PGDConfig = field(default_factory=lambda: PGDConfig(eps=0.1, steps=7))

    def __post_init__(self):
        if self.budget < 1 or self.bits < 1 or self.steps < 0 or self.admm_every < 1:
            raise ValueError(f"need budget >= 1, bits >= 1, steps >= 0, admm_every >= 1: {self}")


def compress_adversarially(model: nn.Module, data: dict[str, torch.Tensor], knobs: ATMCKnobs,
                           seed: int, show_progress: bool | None = False) -> dict[str, Any]:
    """Algorithm 1 on ``model`` (already factorized for ATMC/ALR, plain for AP/NAP), in
    place: projected (ADMM) adversarial SGD under the global l0 budget, then hard
    quantization. Returns the loss history and the ADMM residuals."""
    from lib.core import IndexBatches, train_loop

    tensors = compressed_tensors(model)
    x, y = data["x_train"], data["y_train"]
    batches = IndexBatches(len(y), knobs.batch_size, seed)
    opt = torch.optim.SGD(model.parameters(), lr=knobs.lr, momentum=knobs.momentum,
                          weight_decay=knobs.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(knobs.steps, 1))
    quant_from = (knobs.steps - round(knobs.quant_fraction * knobs.steps)
                  if knobs.bits < 32 else knobs.steps)
    admm = ADMMState(tensors, [knobs.bits] * len(tensors))  # admm.v: Z, admm.u: Lambda
    project_l0(tensors, knobs.budget)

    def step_fn(step: int) -> dict[str, float]:
        model.train()
        idx = batches.indices(step)
        # 1. the attack and the loss 0.5 CE(clean) + 0.5 CE(adv)
        g = pgd_generator(derive_seed(seed, "pgd", step), x.device)
        loss = adversarial_loss(model, x[idx], y[idx], knobs.attack, g, knobs.adv_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        out = {"loss": loss.detach().item()}
        if step >= quant_from:
            if step == quant_from:  # start of the ADMM stage: Z from W, Lambda = 0
                for z, t in zip(admm.v, quantized_duplicate(tensors, admm.u, knobs.budget,
                                                             knobs.bits), strict=True):
                    z.copy_(t)
            # 2. the proximal pull towards Z - Lambda
            proximal_pull(tensors, admm.v, admm.u, lr, knobs.rho)
        # 2. then the l0 projection (W stays within the budget throughout)
        project_l0(tensors, knobs.budget)
        if step >= quant_from and (step - quant_from + 1) % knobs.admm_every == 0:
            # 3. the quantized duplicate, 4. dual ascent
            for z, t in zip(admm.v, quantized_duplicate(tensors, admm.u, knobs.budget,
                                                         knobs.bits), strict=True):
                z.copy_(t)
            out["residual"] = dual_update(tensors, admm.v, admm.u)
        return out

    result = train_loop(step_fn, knobs.steps, state={"model": model, "opt": opt,
                                                     "sched": sched, "admm": admm},
                        log_every=10, desc=f"compress b={knobs.bits}",
                        show_progress=show_progress)
    finalize(tensors, knobs.budget, knobs.bits)
    return {"history": result.history}


@torch.no_grad()
def finalize(tensors: list[torch.Tensor], budget: int, bits: int) -> None:
    """``W = Q_b(Pi_k(W))`` in place: the budget and the codebooks hold exactly."""
    project_l0(tensors, budget)
    for t in tensors:
        t.copy_(quantize(t, bits))


def size_report(model: nn.Module, bits: int, dense_weights: int) -> dict[str, Any]:
    """Nonzeros, distinct values per constrained tensor and the size ratio
    ``nonzeros x bits / (dense weights x 32)``."""
    tensors = compressed_tensors(model)
    nnz = sum(int((t != 0).sum()) for t in tensors)
    return {"nonzeros": nnz,
            "distinct": [int(torch.unique(t.detach()).numel()) for t in tensors],
            "size_ratio": nnz * min(bits, 32) / (dense_weights * 32)}


def budget_for(ratio: float, bits: int, dense_weights: int) -> int:
    """The nonzeros ``k`` a ``bits``-bit model may keep at size ``ratio`` of the dense one."""
    return max(1, int(ratio * dense_weights * 32 // min(bits, 32)))
