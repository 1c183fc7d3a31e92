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
  entries; at the end ``M`` is rounded to ``{0, 1}``. The next W-step, at the target,
  spends the energy the masks saved. Rounds of (M-step, W-step) repeat with 90%, 80%, ...
  of the mask entries kept; the round with the best dev accuracy is the result.

The last projection of a W-step is at the target budget and nothing changes ``W`` after
it, so the final modelled energy is ``<= E_budget`` by construction (checked by
``train`` and by the tests at every budget).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from lib.core.limits import limit_steps
from lib.energy.input_masks import clamp_masks, input_masks, l0_project_masks, round_masks
from lib.energy.projection import energy_projection_masks
from lib.energy.systolic import EYERISS, LayerGeometry, SystolicArray, systolic_energy, weight_costs
from lib.vision.classify import accuracy

from .task import Batches, teacher_logits  # noqa: F401  (the data plumbing; re-exported)

__all__ = ["EnergyKnobs", "energy_constrained_training"]

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
    mask_share: float = 0.25       # share of the steps spent on the M-steps (Our reading)
    mask_rounds: int = 1           # outer rounds of (M-step, W-step at the target); round r
    #                                keeps 1 - r (1 - mask_keep) of the mask entries (official:
    #                                0.9, 0.8, ... while validation accuracy improves)


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor,  # noqa: F811
                      y: torch.Tensor, distill: float) -> torch.Tensor:
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
            select: Select, costs: list | None = None) -> list[torch.Tensor]:
    """One projection of the weights onto ``{E(W, M) <= budget}`` by ``select`` (eq. 6).
    ``costs``: ``weight_costs`` at the current input masks (recomputed when ``None``; they
    depend on the input masks only, so a W-step computes them once)."""
    ws = weights_of(model, geometries)
    if costs is None:
        costs = weight_costs(model, geometries, array)
    masks = select([w.detach().cpu() for w in ws], costs, budget)
    masks = [m.to(w.device) for m, w in zip(masks, ws, strict=True)]
    apply_masks(ws, masks)
    return masks


def paper_select(marginal: bool) -> Select:
    """The paper's projection: greedy weighted sparse projection."""
    def select(ws, costs, budget):
        return energy_projection_masks(ws, costs, budget, marginal=marginal)
    return select


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
    costs = None if fixed_masks is not None else weight_costs(model, geometries, array)
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
            project(model, geometries, array, budget, select, costs)
            j += 1
        if log is not None and (step % 10 == 0 or last):
            log.append({"step": first_step + step, "phase": "W", "loss": float(loss.detach())})


def mask_step(model: nn.Module, batches: Batches, steps: int, first_step: int,
              knobs: EnergyKnobs, log: list | None = None, keep_from: float = 1.0,
              keep_to: float | None = None) -> None:
    """M-step: Adam on the input masks only; clamp to [0, 1] after every step; every
    ``proj_interval`` steps an l0 projection keeping a fraction of all mask entries that
    shrinks linearly from ``keep_from`` to ``keep_to`` (default ``mask_keep``); rounding to
    {0, 1} at the end."""
    keep_to = knobs.mask_keep if keep_to is None else keep_to
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
            l0_project_masks(masks, keep_from - (keep_from - keep_to) * j / n_proj)
        if log is not None and (step % 10 == 0 or step == steps - 1):
            log.append({"step": first_step + step, "phase": "M", "loss": float(loss.detach())})
    l0_project_masks(masks, keep_to)
    round_masks(masks)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def energy_constrained_training(model: nn.Module, batches: Batches, geometries,
                                target: float, knobs: EnergyKnobs, *,
                                use_input_masks: bool, array: SystolicArray = EYERISS,
                                select: Select | None = None,
                                dev: Callable[[nn.Module], float] | tuple | None = None
                                ) -> dict:
    """The whole algorithm. Without input masks: one W-step of ``steps`` passes. With them
    (``model`` must carry input masks): a W-step down to the target, then ``mask_rounds``
    rounds of an M-step (keeping 90%, 80%, ... of the mask entries) and a W-step at the
    target, ``steps`` passes in all. With several rounds and ``dev`` data, the round with
    the best dev accuracy is kept (the official code stops when validation accuracy no
    longer improves). ``dev``: ``(x, y)`` tensors, or a function of the model giving its dev
    accuracy. Returns the loss log, energies and each round's dev accuracy."""
    if isinstance(dev, tuple):
        x_dev, y_dev = dev

        def dev(model, x_dev=x_dev, y_dev=y_dev):
            return accuracy(model, x_dev, y_dev)
    select = select or paper_select(knobs.marginal)
    log: list = []
    start = systolic_energy(model, geometries, array)
    total = knobs.steps
    rounds_dev: list[float] = []
    if not use_input_masks:
        weight_step(model, batches, geometries, array, start, target, total, 0, knobs, select,
                    log=log)
    else:
        if knobs.mask_rounds < 1 or 1 - knobs.mask_rounds * (1 - knobs.mask_keep) <= 0:
            raise ValueError(f"{knobs.mask_rounds} mask rounds at keep {knobs.mask_keep} "
                             "would remove every input")
        n_m = _split(int(knobs.mask_share * total), knobs.mask_rounds)
        n_w = _split(total - sum(n_m), knobs.mask_rounds + 1)
        weight_step(model, batches, geometries, array, start, target, n_w[0], 0, knobs, select,
                    log=log)
        step, keep, best = n_w[0], 1.0, None
        for r in range(knobs.mask_rounds):
            new_keep = 1.0 - (1.0 - knobs.mask_keep) * (r + 1)
            mask_step(model, batches, n_m[r], step, knobs, log=log, keep_from=keep,
                      keep_to=new_keep)
            step, keep = step + n_m[r], new_keep
            weight_step(model, batches, geometries, array, target, target, n_w[r + 1], step,
                        knobs, select, log=log)
            step += n_w[r + 1]
            if dev is not None and knobs.mask_rounds > 1:
                rounds_dev.append(dev(model))
                if best is None or rounds_dev[-1] > best[0]:
                    best = (rounds_dev[-1], copy.deepcopy(model.state_dict()))
        if best is not None:
            model.load_state_dict(best[1])
    final = systolic_energy(model, geometries, array)
    if final > target * (1 + 1e-9):
        raise AssertionError(f"energy {final:.6g} exceeds the budget {target:.6g}")
    return {"log": log, "start_energy": start, "final_energy": final,
            "rounds_dev_accuracy": rounds_dev}
