r"""l_inf evasion attacks on image classifiers: FGSM and PGD, batched and seeded.

Both work on images in a box ``[lo, hi]`` (pixels in ``[0, 1]`` by default: models that
expect standardised inputs put the standardisation in front, ``Standardize``), against the
cross-entropy of the true label:

* **FGSM** (Goodfellow et al., 2015): ``x' = clip(x + eps sign(grad_x L(x, y)))``.
* **PGD** (Madry et al., 2018): from a *random* start ``x_0 = clip(x + U(-eps, eps))``,
  ``steps`` times ``x_{t+1} = Pi(x_t + alpha sign(grad_x L(x_t, y)))``, where ``Pi`` projects
  onto ``{|x' - x|_inf <= eps} cap [lo, hi]``; with ``restarts > 1`` each item keeps the
  restart of highest loss (a misclassifying one first).

The random start draws from a ``torch.Generator`` seeded by the caller, so one seed gives
the same attack and two seeds two different starts (``tests/test_atmc.py`` checks both).
The official ATMC code's PGD adds its random start to a tensor it then overwrites, so its
start is in fact the clean image; ours is tested to move. The model is put in eval mode
for the attack and restored to its previous mode afterwards; its parameters' gradients are
left untouched.

``torchattacks`` (Kim, 2020) implements the same attacks but is not a dependency (its
package pins an old ``requests``, which would downgrade the environment); the tests' oracle
is brute force instead: the enumerated vertices of the eps-box where the loss is convex in
the input (a linear model), and an exhaustive grid of the eps-box on two-pixel inputs to a
non-linear network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


class Standardize(nn.Module):
    """``(x - mean) / std`` per channel, so that a model takes ``[0, 1]`` pixels."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@dataclass(frozen=True)
class PGDConfig:
    """An l_inf PGD attack: radius ``eps``, ``steps`` of size ``alpha``, ``restarts``."""

    eps: float
    steps: int = 7
    alpha: float = 0.0             # 0: 2.5 eps / steps (Madry et al.'s rule of thumb)
    restarts: int = 1
    random_start: bool = True
    bounds: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        if self.eps < 0 or self.steps < 0 or self.restarts < 1 or self.alpha < 0:
            raise ValueError(f"need eps >= 0, steps >= 0, restarts >= 1, alpha >= 0; got {self}")
        if not self.bounds[0] < self.bounds[1]:
            raise ValueError(f"bounds must be (lo, hi) with lo < hi, got {self.bounds}")

    @property
    def step_size(self) -> float:
        return self.alpha if self.alpha > 0 else 2.5 * self.eps / max(self.steps, 1)


class _EvalMode:
    """Eval mode and no parameter gradients for the duration of an attack."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.flags = [p.requires_grad for p in self.model.parameters()]
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        return self.model

    def __exit__(self, *exc):
        for p, flag in zip(self.model.parameters(), self.flags, strict=True):
            p.requires_grad_(flag)
        self.model.train(self.was_training)
        return False


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-item loss and the gradient of the summed loss w.r.t. ``x``."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float,
             bounds: tuple[float, float]) -> torch.Tensor:
    """``Pi``: into the eps-box around ``x``, then into the pixel range."""
    return torch.clamp(torch.max(torch.min(x_adv, x + eps), x - eps), *bounds)


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
         bounds: tuple[float, float] = (0.0, 1.0), batch_size: int = 512) -> torch.Tensor:
    """FGSM adversarial examples of ``x`` (one signed-gradient step of size ``eps``)."""
    out = []
    with _EvalMode(model):
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            _, grad = _input_grad(model, xb, yb)
            out.append(_project(xb + eps * grad.sign(), xb, eps, bounds).detach())
    return torch.cat(out) if out else x.clone()


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: PGDConfig,
        generator: torch.Generator | None = None, batch_size: int = 512) -> torch.Tensor:
    """PGD adversarial examples of ``x`` under ``cfg``; the random starts are drawn from
    ``generator`` (on ``x``'s device; a fresh unseeded one when ``None``)."""
    if generator is None:
        generator = torch.Generator(device=x.device)
        generator.seed()
    out = []
    alpha = cfg.step_size
    with _EvalMode(model):
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size].detach(), y[i:i + batch_size]
            best, best_loss, best_wrong = xb.clone(), None, None
            for _ in range(cfg.restarts):
                if cfg.random_start:
                    noise = torch.rand(xb.shape, generator=generator, device=xb.device,
                                       dtype=xb.dtype)
                    x_adv = _project(xb + (2 * noise - 1) * cfg.eps, xb, cfg.eps, cfg.bounds)
                else:
                    x_adv = xb.clone()
                for _ in range(cfg.steps):
                    _, grad = _input_grad(model, x_adv, yb)
                    x_adv = _project(x_adv + alpha * grad.sign(), xb, cfg.eps, cfg.bounds)
                with torch.no_grad():
                    logits = model(x_adv)
                    loss = F.cross_entropy(logits, yb, reduction="none")
                    wrong = logits.argmax(1) != yb
                if best_loss is None:
                    best, best_loss, best_wrong = x_adv, loss, wrong
                else:  # a misclassifying restart beats a correct one, then higher loss
                    take = (wrong & ~best_wrong) | ((wrong == best_wrong) & (loss > best_loss))
                    best = torch.where(take.view(-1, *[1] * (xb.dim() - 1)), x_adv, best)
                    best_loss = torch.where(take, loss, best_loss)
                    best_wrong = best_wrong | wrong
            out.append(best.detach())
    return torch.cat(out) if out else x.clone()


def pgd_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for ``pgd``'s random starts, seeded (on ``device``)."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed) % (2 ** 63))
    return g


def adversarial_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: PGDConfig,
                     generator: torch.Generator, adv_weight: float = 0.5) -> torch.Tensor:
    """``(1 - w) CE(f(x), y) + w CE(f(x_pgd), y)``, ``x_pgd = pgd(f, x, y)`` (the official
    ATMC code's mix, ``w = 0.5``); ``w = 0`` is plain training (no attack is run)."""
    if not 0.0 <= adv_weight <= 1.0:
        raise ValueError(f"adv_weight must be in [0, 1], got {adv_weight}")
    if adv_weight == 0.0:
        return F.cross_entropy(model(x), y)
    x_adv = pgd(model, x, y, cfg, generator)  # eval mode inside, the caller's mode after
    loss_adv = F.cross_entropy(model(x_adv), y)
    if adv_weight == 1.0:
        return loss_adv
    return (1 - adv_weight) * F.cross_entropy(model(x), y) + adv_weight * loss_adv


def robust_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: str,
                   cfg: PGDConfig, seed: int = 0, batch_size: int = 512) -> torch.Tensor:
    """0/1 per item: the model is right on the attacked item (``attack``: ``clean``,
    ``fgsm`` or ``pgd``), for paired intervals over items."""
    if attack == "clean":
        x_att = x
    elif attack == "fgsm":
        x_att = fgsm(model, x, y, cfg.eps, cfg.bounds, batch_size)
    elif attack == "pgd":
        x_att = pgd(model, x, y, cfg, pgd_generator(seed, x.device), batch_size)
    else:
        raise ValueError(f"unknown attack {attack!r}; valid: clean, fgsm, pgd")
    was = model.training
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x_att[i:i + batch_size]).argmax(1)
                          for i in range(0, len(x), batch_size)])
    model.train(was)
    return (pred == y).to(torch.float64)
