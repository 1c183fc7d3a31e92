"""Training and scoring an image classifier on in-memory data (the embedded tasks).

The compression chapters share this: the dense model they compress is trained by
``train_classifier`` (SGD with momentum, cosine schedule, batches by ``(seed, step)`` so a
run resumes exactly) and scored per test item by ``correct``, whose 0/1 vector is what
``lib.core.stats.paired_bootstrap`` resamples to pair two models on the same images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from lib.core.train import IndexBatches, TrainResult, train_loop


@dataclass(frozen=True)
class ClassifierTraining:
    """SGD with momentum and a cosine-decayed learning rate."""

    steps: int
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    eval_every: int = 0          # dev accuracy every this many steps (0: at the end only)

    def __post_init__(self):
        if self.steps < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"need steps >= 0, batch_size >= 1, lr > 0; got {self}")


@torch.no_grad()
def predictions(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Predicted classes of ``x`` (eval mode, in batches)."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """0/1 per test item: the model's prediction is right (for paired intervals)."""
    return (predictions(model, x) == y).to(torch.float64)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float(correct(model, x, y).mean())


def train_classifier(model: nn.Module, data: dict[str, torch.Tensor], cfg: ClassifierTraining,
                     seed: int, *, loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor],
                                                     torch.Tensor] | None = None,
                     after_step: Callable[[int], None] | None = None,
                     ckpt_dir: str | Path | None = None, run_key: str | None = None,
                     desc: str = "train", show_progress: bool | None = None) -> TrainResult:
    """Train ``model`` on ``data["x_train"], data["y_train"]`` for ``cfg.steps`` steps.

    ``loss_fn(model, x, y)`` replaces cross-entropy (adversarial training, distillation);
    ``after_step(step)`` runs after each optimizer step (a projection, a mask update). Dev
    accuracy (``data["x_dev"]`` if present) is logged every ``cfg.eval_every`` steps and at
    the end. Parameters with ``requires_grad=False`` are not trained.
    """
    x, y = data["x_train"], data["y_train"]
    batches = IndexBatches(len(y), cfg.batch_size, seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.steps, 1))
    loss_fn = loss_fn or (lambda m, xb, yb: F.cross_entropy(m(xb), yb))

    def step_fn(step: int) -> dict[str, float]:
        model.train()
        idx = batches.indices(step)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model, x[idx], y[idx])
        loss.backward()
        opt.step()
        sched.step()
        if after_step is not None:
            after_step(step)
        return {"loss": loss.detach().item()}

    eval_fn = None
    if "x_dev" in data and len(data["y_dev"]):
        def eval_fn(step: int) -> dict[str, float]:
            return {"dev_accuracy": accuracy(model, data["x_dev"], data["y_dev"])}
    return train_loop(step_fn, cfg.steps, state={"model": model, "opt": opt, "sched": sched},
                      ckpt_dir=ckpt_dir, run_key=run_key,
                      ckpt_every=max(1, cfg.steps // 10) if ckpt_dir else 0,
                      eval_fn=eval_fn, eval_every=cfg.eval_every, log_every=10, desc=desc,
                      show_progress=show_progress)


def state_of(model: nn.Module) -> dict[str, Any]:
    """A CPU copy of ``model``'s state dict (for artifacts)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def trained_classifier(model: str, model_kwargs: dict[str, Any], data_cfg: Any,
                       train_cfg: ClassifierTraining, seed: int = 0, cache=None
                       ) -> dict[str, Any]:
    """A dense classifier ``build_model(model, **model_kwargs)`` trained on the synthetic
    digits of ``data_cfg`` (drawn with ``seed``) from init ``seed``, cached: every chapter
    asking for the same model, data, recipe and seed gets the same artifact.

    Returns ``{"state_dict", "test_accuracy", "dev_accuracy", "history", "evals",
    "train_seconds"}``.
    """
    from lib.core import ArtifactCache, seed_everything

    from .models import build_model
    from .synthetic import cached_synthetic_digits

    cache = cache or ArtifactCache()
    config = {"model": model, "model_kwargs": model_kwargs, "data": data_cfg,
              "train": train_cfg, "seed": seed}

    def build(ckpt_dir: Path, run_key: str) -> dict[str, Any]:
        data = cached_synthetic_digits(data_cfg, seed, cache)
        seed_everything(seed)
        net = build_model(model, **model_kwargs)
        result = train_classifier(net, data, train_cfg, seed, ckpt_dir=ckpt_dir,
                                  run_key=run_key, desc=f"dense {model}")
        return {"state_dict": state_of(net), "history": result.history,
                "evals": result.evals, "train_seconds": result.wall_time_s,
                "test_accuracy": accuracy(net, data["x_test"], data["y_test"]),
                "dev_accuracy": accuracy(net, data["x_dev"], data["y_dev"])
                if len(data["y_dev"]) else float("nan")}

    return cache.get_or_train("dense-classifier", config, build)


def trained_classifier_key(model: str, model_kwargs: dict[str, Any], data_cfg: Any,
                           train_cfg: ClassifierTraining, seed: int = 0, cache=None) -> str:
    """The artifact key of ``trained_classifier`` (for ``depends_on`` of models built on it)."""
    from lib.core import ArtifactCache

    config = {"model": model, "model_kwargs": model_kwargs, "data": data_cfg,
              "train": train_cfg, "seed": seed}
    return (cache or ArtifactCache()).key("dense-classifier", config,
                                          code=[trained_classifier])
