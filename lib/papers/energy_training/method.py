"""Energy-constrained training (Yang, Zhu and Liu, ICLR 2019), step by step.

    min_{W, M}  L(W, M)   s.t.   E(W, M) <= E_budget                              (eq. 1)

``E`` is the systolic-array energy model (``lib.energy.systolic``), ``W`` the weights and
``M`` binary masks on the conv layers' inputs. The algorithm alternates:

* **W-step** (Alg. 1): SGD on ``L`` (distillation to the dense teacher's logits plus
  cross-entropy, eq. 9), and every ``proj_interval`` steps the *weighted sparse projection*
  of ``W`` onto ``{E(W, M) <= b_t}`` (eq. 6: a 0/1 knapsack with profit ``w^2`` and cost a
  weight's energy, solved greedily by ``w^2 / cost``). The budget ``b_t`` decays
  geometrically from the current energy to the target, so the network is pruned gradually.
* **M-step**: with ``W`` fixed, a gradient step on ``M``, a clamp to ``[0, 1]``, and every
  ``proj_interval`` steps an l0 projection keeping a shrinking fraction of the mask
  entries; at the end ``M`` is rounded to ``{0, 1}``. The masks only remove energy, so the
  budget still holds; the next W-step at the target spends what they saved.

The last projection of a W-step is at the target budget and nothing changes ``W`` after
it, so the final modelled energy is ``<= E_budget`` by construction (checked by
``train`` and by the tests at every budget).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from lib.core import IndexBatches
from lib.core.limits import limit_steps
from lib.energy.input_masks import clamp_masks, input_masks, l0_project_masks, round_masks
from lib.energy.projection import energy_projection_masks
from lib.energy.systolic import EYERISS, LayerGeometry, SystolicArray, systolic_energy, weight_costs

Select = Callable[[list[torch.Tensor], list, float], list[torch.Tensor]]


@dataclass(frozen=True)
class EnergyKnobs:
    """The W- and M-steps' knobs (official defaults in comments where they differ)."""

    steps: int                     # forward/backward passes of the whole run
    batch_size: int = 64
    lr: float = 0.01               # official 1e-3 (ImageNet, 30 epochs); tuned on dev
    momentum: float = 0.9
    weight_decay: float = 1e-4     # official --l2wd 1e-4
    proj_interval: int = 10        # official --proj_int 10
    decay_fraction: float = 0.6    # Our reading: the budget reaches the target after this
    #                                fraction of a W-step's projections (official: at the end)
    distill: float = 0.5           # official --distill 0.5: 0.5 MSE(logits) + 0.5 CE
    marginal: bool = True          # the kernel-cache cost by rank (official energy_proj2)
    mask_lr: float = 0.01          # official --xlr 1e-4 with Adam, 30 epochs; tuned on dev
    mask_weight_decay: float = 1e-5  # official --xl2wd
    mask_keep: float = 0.9         # fraction of mask entries kept at the end of the M-step
    #                                (official: 0.9 in the first outer round, then 0.8, ...)
    mask_share: float = 0.25       # share of the steps spent on the M-step (Our reading)


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor,
                      distill: float) -> torch.Tensor:
    """``distill * mean((z - z_teacher)^2) + (1 - distill) * CE(z, y)`` (official
    ``joint_loss``)."""
    mse = torch.mean((logits - teacher_logits) ** 2)
    return distill * mse + (1.0 - distill) * F.cross_entropy(logits, y)


def budget_at(j: int, n_projections: int, start: float, target: float,
              decay_fraction: float) -> float:
    """Budget of projection ``j`` (0-based): geometric decay from ``start`` to ``target``,
    reached at projection ``ceil(decay_fraction * n)`` and held after."""
    if start <= target:
        return target
    reach = max(1, math.ceil(decay_fraction * n_projections))
    t = min(1.0, (j + 1) / reach)
    return max(target, start * (target / start) ** t)


def weights_of(model: nn.Module, geometries: Sequence[LayerGeometry]) -> list[torch.Tensor]:
    modules = dict(model.named_modules())
    return [modules[g.name].weight for g in geometries]


@torch.no_grad()
def apply_masks(weights: Sequence[torch.Tensor], masks: Sequence[torch.Tensor]) -> None:
    for w, m in zip(weights, masks, strict=True):
        w.mul_(m.to(w.dtype))


def project(model: nn.Module, geometries, array: SystolicArray, budget: float,
            select: Select) -> list[torch.Tensor]:
    """One projection of the weights onto ``{E(W, M) <= budget}`` by ``select`` (eq. 6;
    the costs are recomputed at the current input masks)."""
    ws = weights_of(model, geometries)
    masks = select([w.detach().cpu() for w in ws], weight_costs(model, geometries, array),
                   budget)
    masks = [m.to(w.device) for m, w in zip(masks, ws, strict=True)]
    apply_masks(ws, masks)
    return masks


def paper_select(marginal: bool) -> Select:
    """The paper's projection: greedy weighted sparse projection."""
    def select(ws, costs, budget):
        return energy_projection_masks(ws, costs, budget, marginal=marginal)
    return select


@dataclass
class Batches:
    """Training data with the teacher's logits (computed once): ``(x, y, z_teacher)`` of
    step ``step``."""

    x: torch.Tensor
    y: torch.Tensor
    teacher_logits: torch.Tensor
    batch_size: int
    seed: int

    def __post_init__(self):
        self._order = IndexBatches(len(self.y), self.batch_size, self.seed)

    def __call__(self, step: int):
        idx = self._order.indices(step).to(self.x.device)
        return self.x[idx], self.y[idx], self.teacher_logits[idx]


@torch.no_grad()
def teacher_logits(teacher: nn.Module, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """The teacher's logits on every training example (eval mode; LeNet has no dropout,
    so they equal the per-batch logits of the official code)."""
    teacher.eval()
    return torch.cat([teacher(x[i:i + batch]) for i in range(0, len(x), batch)])


def weight_step(model: nn.Module, batches: Batches, geometries, array: SystolicArray,
                start: float, target: float, steps: int, first_step: int, knobs: EnergyKnobs,
                select: Select | None, fixed_masks: Sequence[torch.Tensor] | None = None,
                log: list | None = None) -> None:
    """W-step: SGD on the distillation loss; every ``proj_interval`` steps and at the last
    step, ``select`` projects onto the current budget (decaying ``start -> target``).
    ``fixed_masks`` (one-shot baselines): no projection, the masks are re-applied instead."""
    steps = limit_steps(steps)
    if steps <= 0:
        return
    ws = weights_of(model, geometries)
    others = [p for n, p in model.named_parameters() if not n.endswith("input_mask")]
    opt = torch.optim.SGD(others, lr=knobs.lr, momentum=knobs.momentum,
                          weight_decay=knobs.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    n_proj = math.ceil(steps / knobs.proj_interval)
    j = 0
    model.train()
    for step in range(steps):
        xb, yb, zt = batches(first_step + step)
        loss = distillation_loss(model(xb), zt, yb, knobs.distill)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        for n, p in model.named_parameters():
            if n.endswith("input_mask"):
                p.grad = None
        opt.step()
        sched.step()
        last = step == steps - 1
        if fixed_masks is not None:
            apply_masks(ws, fixed_masks)
        elif (step + 1) % knobs.proj_interval == 0 or last:
            budget = target if last else budget_at(j, n_proj, start, target,
                                                   knobs.decay_fraction)
            project(model, geometries, array, budget, select)
            j += 1
        if log is not None and (step % 10 == 0 or last):
            log.append({"step": first_step + step, "phase": "W", "loss": float(loss.detach())})


def mask_step(model: nn.Module, batches: Batches, steps: int, first_step: int,
              knobs: EnergyKnobs, log: list | None = None) -> None:
    """M-step: Adam on the input masks only; clamp to [0, 1] after every step; every
    ``proj_interval`` steps an l0 projection keeping a fraction shrinking linearly from 1 to
    ``mask_keep``; rounding to {0, 1} at the end."""
    masks = input_masks(model)
    steps = limit_steps(steps)
    if not masks or steps <= 0:
        return
    opt = torch.optim.Adam(masks, lr=knobs.mask_lr, weight_decay=knobs.mask_weight_decay)
    n_proj = max(1, steps // knobs.proj_interval)
    j = 0
    model.train()
    for step in range(steps):
        xb, yb, zt = batches(first_step + step)
        loss = distillation_loss(model(xb), zt, yb, knobs.distill)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        clamp_masks(masks)
        if (step + 1) % knobs.proj_interval == 0 or step == steps - 1:
            j = min(j + 1, n_proj)
            l0_project_masks(masks, 1.0 - (1.0 - knobs.mask_keep) * j / n_proj)
        if log is not None and (step % 10 == 0 or step == steps - 1):
            log.append({"step": first_step + step, "phase": "M", "loss": float(loss.detach())})
    l0_project_masks(masks, knobs.mask_keep)
    round_masks(masks)


def energy_constrained_training(model: nn.Module, batches: Batches, geometries,
                                target: float, knobs: EnergyKnobs, *,
                                use_input_masks: bool, array: SystolicArray = EYERISS,
                                select: Select | None = None) -> dict:
    """The whole algorithm. Without input masks: one W-step of ``steps`` passes. With them
    (``model`` must carry input masks): a W-step down to the target, an M-step, and a
    W-step at the target, ``steps`` passes in all. Returns the loss log and energies."""
    select = select or paper_select(knobs.marginal)
    log: list = []
    start = systolic_energy(model, geometries, array)
    total = knobs.steps
    if not use_input_masks:
        weight_step(model, batches, geometries, array, start, target, total, 0, knobs, select,
                    log=log)
    else:
        n_m = int(knobs.mask_share * total)
        n_w1 = (total - n_m) // 2
        n_w2 = total - n_m - n_w1
        weight_step(model, batches, geometries, array, start, target, n_w1, 0, knobs, select,
                    log=log)
        mask_step(model, batches, n_m, n_w1, knobs, log=log)
        weight_step(model, batches, geometries, array, target, target, n_w2, n_w1 + n_m, knobs,
                    select, log=log)
    final = systolic_energy(model, geometries, array)
    if final > target * (1 + 1e-9):
        raise AssertionError(f"energy {final:.6g} exceeds the budget {target:.6g}")
    return {"log": log, "start_energy": start, "final_energy": final}
