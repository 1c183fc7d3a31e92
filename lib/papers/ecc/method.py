r"""ECC: energy-constrained compression through a bilinear cost model (Yang et al., CVPR 2019).

**Problem** (Sec. 4). Compress a trained network ``W`` so that its cost on a platform,
modelled by the fitted bilinear ``E(s)`` (``lib.energy.bilinear``) of its widths ``s``,
meets a budget ``B``, with as little loss as possible:

.. math::

    \min_{W, s} L(W) \quad\text{s.t.}\quad \phi(W_j) \le s_j \ (j = 1..L-1),
    \qquad E(s) \le B,

``phi(W_j)`` the number of nonzero input channels of the layer reading width ``j``.

**Augmented Lagrangian** with duals ``y_j >= 0`` and ``z >= 0``:

.. math::

    \mathcal{L} = L(W) + \sum_j y_j (\phi(W_j) - s_j) + \frac{\rho_y}{2} \sum_j
    [\phi(W_j) - s_j]_+^2 + z (E(s) - B) + \frac{\rho_z}{2} [E(s) - B]_+^2 .

Each training step does, in order (functions of this module):

1. *W-step* (``w_step``): a gradient step on ``L(W)`` (distillation from the dense
   model plus cross-entropy), then the exact proximal operator of
   ``y_j phi + rho_y / 2 [phi - s_j]_+^2`` per layer: keep the strongest input channels
   (``lib.sparse.group_l0_prox_keep``). ``y_j`` is first capped so that the
   ``floor(s_j)`` strongest channels always survive (official code).
2. *s-step* (``s_step``): a gradient step on ``L`` in ``s``, with the gradient clipped at
   zero from below, so **s only shrinks**; ``z`` is raised just enough that some width
   moves (official code); ``s_j >= 1``.
3. *Dual ascent* (``dual_step``): ``z <- [z + rho_z (E(s) - B)]_+``,
   ``y_j <- [y_j + rho_y (phi(W_j) - floor(s_j))]_+``.
4. *Stop* (``ECCState.check_budget``): once the model predicts the real widths
   ``phi(W)`` within budget, the network is physically extracted and its cost *measured*;
   the run stops when the measurement meets ``B`` and otherwise tightens its internal
   target by the measured excess and goes on.

The remaining steps of the training budget fine-tune the extracted widths (removed
channels stay at zero), so that every compared method trains for the same number of
steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from lib.energy.bilinear import CostModel
from lib.sparse.input_channels import (
    WidthBoundary,
    group_l0_prox_keep,
    input_channel_norms,
    kept_input_widths,
    strongest_channels,
    zero_input_channels,
)


@dataclass(frozen=True)
class ECCKnobs:
    """The algorithm's hyper-parameters (official code's flag in brackets)."""

    lr: float = 0.01            # primal step [plr]; also the prox's step
    momentum: float = 0.9
    weight_decay: float = 5e-4  # [l2wd]
    distill: float = 0.5        # weight of the distillation MSE vs cross-entropy [distill]
    s_lr: float = 3.0           # step on s, in channels [pslr]
    s_grad_clip: float = 1.0    # norm clip of the s gradient [psgrad_clip]
    rho_y: float = 10.0         # [rho_y]
    rho_z: float = 10.0         # [rho_z], on the cost normalised by the dense cost
    tolerance: float = 0.0      # the measured cost may exceed B by this fraction
    grad_clip: float = 5.0      # gradient-norm clip of every training step (our reading:
                                # without it, distilling logits into a freshly cut network
                                # can diverge at this lr)
    prox: str = "augmented"     # the paper's prox; "projection": keep floor(s_j), y = 0
                                # (the ablation without feedback from the loss to s)

    def __post_init__(self):
        if self.prox not in ("augmented", "projection"):
            raise ValueError(f"prox must be 'augmented' or 'projection', got {self.prox!r}")


def distill_loss(model: nn.Module, teacher: nn.Module | None, x: torch.Tensor,
                 y: torch.Tensor, distill: float) -> torch.Tensor:
    """``distill * MSE(logits, teacher logits) + (1 - distill) * CE`` (official
    ``joint_loss``); plain cross-entropy without a teacher or with ``distill = 0``."""
    out = model(x)
    ce = F.cross_entropy(out, y)
    if teacher is None or distill <= 0:
        return ce
    with torch.no_grad():
        target = teacher(x)
    return distill * F.mse_loss(out, target) + (1.0 - distill) * ce


def clip_gradients(model: nn.Module, max_norm: float) -> None:
    """Clip the gradient norm (``max_norm <= 0``: no clipping)."""
    if max_norm > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)


class ECCState:
    """``s``, the duals, the stop flag and the history of one run (checkpointable)."""

    def __init__(self, upper: list[int], knobs: ECCKnobs, budget: float):
        self.s = torch.tensor(upper, dtype=torch.float64)  # s_0 .. s_L (ends fixed)
        self.upper = list(upper)
        self.y = torch.zeros(len(upper), dtype=torch.float64)
        self.z = 0.0
        self.budget = float(budget)          # B, in units of the dense cost
        self.target = float(budget)          # internal target, tightened by measurements
        self.stopped_at: int | None = None
        self.keep: list[torch.Tensor] | None = None  # kept channels once stopped
        self.history: list[dict[str, Any]] = []
        self.measurements: list[dict[str, float]] = []
        self.knobs = knobs

    def state_dict(self) -> dict[str, Any]:
        return {"s": self.s, "y": self.y, "z": self.z, "target": self.target,
                "stopped_at": self.stopped_at, "keep": self.keep, "history": self.history,
                "measurements": self.measurements}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    @property
    def free(self) -> list[int]:
        return list(range(1, len(self.upper) - 1))


def real_widths(model: nn.Module, boundaries: list[WidthBoundary], upper: list[int]
                ) -> torch.Tensor:
    """``phi(W)`` as a full width vector (input and output widths fixed)."""
    phi = kept_input_widths(model, boundaries)
    return torch.tensor([upper[0], *phi, upper[-1]], dtype=torch.float64)


@torch.no_grad()
def w_step_prox(model: nn.Module, boundaries: list[WidthBoundary], state: ECCState,
                step_size: float) -> None:
    """Step 1b: per width ``j``, cap ``y_j`` so the ``floor(s_j)`` strongest channels stay,
    then keep what the exact prox of ``y_j phi + rho_y/2 [phi - s_j]_+^2`` keeps (the
    ``projection`` ablation keeps exactly the ``floor(s_j)`` strongest)."""
    for b in boundaries:
        j = b.index
        a = input_channel_norms(model, b).to(torch.float64)
        s_j = float(state.s[j])
        k = max(1, min(int(math.floor(s_j)), a.numel()))
        if state.knobs.prox == "projection":
            zero_input_channels(model, b, strongest_channels(a, k))
            continue
        if state.y[j] > 0:  # project y: never drop one of the floor(s_j) strongest
            kth = torch.sort(a, descending=True).values[k - 1]
            state.y[j] = min(float(state.y[j]), float(kth) / (2 * step_size))
        keep = group_l0_prox_keep(a, s_j, float(state.y[j]), state.knobs.rho_y, step_size)
        zero_input_channels(model, b, keep)


def w_step(model: nn.Module, teacher: nn.Module | None, opt: torch.optim.Optimizer,
           x: torch.Tensor, y: torch.Tensor, boundaries: list[WidthBoundary],
           state: ECCState) -> float:
    """Step 1: a gradient step on the loss, then the proximal operator."""
    model.train()
    opt.zero_grad(set_to_none=True)
    loss = distill_loss(model, teacher, x, y, state.knobs.distill)
    loss.backward()
    clip_gradients(model, state.knobs.grad_clip)
    opt.step()
    w_step_prox(model, boundaries, state, opt.param_groups[0]["lr"])
    return float(loss.detach())


def s_step(state: ECCState, s_real: torch.Tensor, cost: Callable[[torch.Tensor], torch.Tensor]
           ) -> torch.Tensor:
    """Step 2: one clipped, non-negative gradient step of ``L`` in ``s`` (so ``s`` never
    grows). ``cost(s)`` is the model's cost in units of the dense cost."""
    k = state.knobs
    free = state.free
    s = state.s.clone().requires_grad_(True)
    energy_residue = cost(s) - state.target
    s_residue = (s_real - s)[free]
    rest = (0.5 * k.rho_z * energy_residue.clamp(min=0) ** 2
            + 0.5 * k.rho_y * (s_residue.clamp(min=0) ** 2).sum()
            + (state.y[free] * s_residue).sum())
    g1 = torch.autograd.grad(rest, s, retain_graph=True)[0][free]
    g2 = torch.autograd.grad(energy_residue, s)[0][free]
    movable = state.s[free] > 1.0
    if bool(movable.any()):  # raise z until at least one width shrinks (official code)
        need = (g1.clamp(max=0).neg() + 1e-3) / g2.clamp(min=0)
        z_min = float(need[movable].min())
        if math.isfinite(z_min):
            state.z = max(state.z, z_min)
    grad = (g1 + state.z * g2).clamp(min=0.0)  # s only shrinks
    grad[~movable] = 0.0
    norm = float(grad.norm())
    if k.s_grad_clip and norm > k.s_grad_clip:
        grad = grad * (k.s_grad_clip / norm)
    with torch.no_grad():
        state.s[free] = (state.s[free] - k.s_lr * grad).clamp(min=1.0)
    return grad


def dual_step(state: ECCState, s_real: torch.Tensor,
              cost: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Step 3: projected dual ascent on ``z`` and ``y``."""
    k = state.knobs
    with torch.no_grad():
        residue = float(cost(state.s)) - state.target
        state.z = max(0.0, state.z + k.rho_z * residue)
        free = state.free
        state.y[free] = (state.y[free] + k.rho_y * (s_real[free] - torch.floor(state.s[free]))
                         ).clamp(min=0.0)


def normalised_cost(cost_model: CostModel, dense_cost: float
                    ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``E(s) / E(u)``: the bilinear model in units of the dense network's cost."""
    def cost(s: torch.Tensor) -> torch.Tensor:
        return cost_model.predict_torch(s) / dense_cost
    return cost


def ecc_step(model: nn.Module, teacher: nn.Module | None, opt: torch.optim.Optimizer,
             x: torch.Tensor, y: torch.Tensor, boundaries: list[WidthBoundary],
             state: ECCState, cost: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, float]:
    """One step of the algorithm: W-step, s-step, dual ascent (steps 1-3)."""
    loss = w_step(model, teacher, opt, x, y, boundaries, state)
    s_real = real_widths(model, boundaries, state.upper)
    s_step(state, s_real, cost)
    dual_step(state, s_real, cost)
    if state.knobs.prox == "projection":  # the ablation has no dual y
        state.y.zero_()
    predicted = float(cost(s_real))
    return {"loss": loss, "predicted_cost": predicted, "z": state.z}


def check_budget(model: nn.Module, boundaries: list[WidthBoundary], state: ECCState,
                 cost: Callable[[torch.Tensor], torch.Tensor],
                 measure: Callable[[nn.Module], float], step: int) -> bool:
    """Step 4: when the real widths are predicted within the internal target, measure the
    extracted network (``measure``: its cost relative to the dense one) and stop if it meets
    ``B (1 + tolerance)``; else tighten the target by the measured excess."""
    s_real = real_widths(model, boundaries, state.upper)
    predicted = float(cost(s_real))
    if predicted > state.target:
        return False
    measured = float(measure(model))
    state.measurements.append({"step": step, "predicted": predicted, "measured": measured,
                               "target": state.target})
    if measured <= state.budget * (1 + state.knobs.tolerance):
        state.stopped_at = step
        state.keep = [input_channel_norms(model, b, include_depthwise=False) > 0
                      for b in boundaries]
        return True
    state.target = state.target * state.budget / measured
    return False


@torch.no_grad()
def hold_widths(model: nn.Module, boundaries: list[WidthBoundary],
                keep: list[torch.Tensor]) -> None:
    """Keep removed channels at zero while fine-tuning the extracted widths."""
    for b, k in zip(boundaries, keep, strict=True):
        zero_input_channels(model, b, k)


def cosine_lr(base: float, step: int, start: int, end: int) -> float:
    """Cosine decay from ``base`` at ``start`` to 0 at ``end`` (the fine-tuning phase)."""
    if end <= start:
        return base
    return 0.5 * base * (1 + math.cos(math.pi * min(1.0, (step - start) / (end - start))))


def ecc_compress(model: nn.Module, teacher: nn.Module | None,
                 batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
                 boundaries: list[WidthBoundary], upper: list[int], cost_model: CostModel,
                 budget: float, steps: int, knobs: ECCKnobs,
                 measure: Callable[[nn.Module], float], *, eval_fn=None, eval_every: int = 0,
                 ckpt_dir=None, run_key=None, desc: str = "ecc",
                 show_progress: bool | None = None) -> dict[str, Any]:
    """Compress ``model`` in place to ``budget`` (a fraction of the dense cost) within
    ``steps`` training steps: ECC steps until the measured cost meets the budget, then
    fine-tuning of the kept channels for the rest. ``measure(model)`` returns the measured
    cost of the extracted ``model`` relative to the dense network."""
    from lib.core.train import train_loop

    dense_cost = float(cost_model.predict_torch(torch.tensor(upper, dtype=torch.float64)))
    cost = normalised_cost(cost_model, dense_cost)
    state = ECCState(upper, knobs, budget)
    opt = torch.optim.SGD(model.parameters(), lr=knobs.lr, momentum=knobs.momentum,
                          weight_decay=knobs.weight_decay)

    def step_fn(step: int) -> dict[str, float]:
        x, y = batch(step)
        if state.stopped_at is None:
            logs = ecc_step(model, teacher, opt, x, y, boundaries, state, cost)
            state.history.append({"step": step, "s": state.s[state.free].tolist(),
                                  "phi": real_widths(model, boundaries, upper)[
                                      state.free].tolist(),
                                  "predicted_cost": logs["predicted_cost"], "z": state.z,
                                  "y": state.y[state.free].tolist()})
            check_budget(model, boundaries, state, cost, measure, step + 1)
            return logs
        for group in opt.param_groups:  # fine-tune the kept channels
            group["lr"] = cosine_lr(knobs.lr, step, state.stopped_at, steps)
        model.train()
        opt.zero_grad(set_to_none=True)
        loss = distill_loss(model, teacher, x, y, knobs.distill)
        loss.backward()
        clip_gradients(model, knobs.grad_clip)
        opt.step()
        hold_widths(model, boundaries, state.keep)
        return {"loss": float(loss.detach())}

    result = train_loop(step_fn, steps, state={"model": model, "opt": opt, "ecc": state},
                        ckpt_dir=ckpt_dir, run_key=run_key,
                        ckpt_every=max(1, steps // 10) if ckpt_dir else 0, log_every=1,
                        eval_fn=eval_fn, eval_every=eval_every, desc=desc,
                        show_progress=show_progress)
    if state.stopped_at is None:  # out of steps: the widths reached are what we have
        state.keep = [input_channel_norms(model, b, include_depthwise=False) > 0
                      for b in boundaries]
        hold_widths(model, boundaries, state.keep)
    return {"stopped_at": state.stopped_at, "met_budget": state.stopped_at is not None,
            "s": state.s[state.free].tolist(),
            "widths": real_widths(model, boundaries, upper).tolist(),
            "history": state.history, "measurements": state.measurements,
            "losses": [h["loss"] for h in result.history], "evals": result.evals,
            "train_seconds": result.wall_time_s}
