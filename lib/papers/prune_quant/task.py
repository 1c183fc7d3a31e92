"""The prune_quant chapter's task: the data and the dense model every method starts from.

Free of imports of ``method.py`` and ``experiment.py``, so that editing the ADMM (or a
baseline, or the chapter's configs) never retrains the dense model: its cache key is the
code of this module's import closure, plus the knobs ``dense_part`` names. What is built
on the dense model passes ``pretrained_dense(...)["key"]`` in ``depends_on``.

``cfg`` is the chapter's ``PruneQuantConfig`` (``experiment.py``), read by attribute here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from lib.core import ArtifactCache, IndexBatches, seed_everything
from lib.core.train import train_loop
from lib.vision import StepBatches, build_model, digits_images, vision_dataset

DENSE_ARTIFACT = "prune-quant-dense"


@dataclass
class Task:
    """Training batches by step, an evaluation, and the model to compress."""

    batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]]
    steps_per_epoch: int
    evaluate: Callable[[nn.Module], float]
    make_model: Callable[[], nn.Module]
    n_test: int
    #: ``correct(model)``: 1/0 per test item (for paired intervals between methods)
    correct: Callable[[nn.Module], torch.Tensor] | None = None


def make_task(cfg: Any, seed: int = 0, device: str | torch.device = "cpu") -> Task:
    """The data and model of ``cfg``: embedded digits, or a full-scale data set on disk."""
    device = torch.device(device)
    if cfg.dataset == "digits":
        data = {k: v.to(device) for k, v in digits_images(seed, cfg.image_size).items()}
        batches = IndexBatches(len(data["y_train"]), cfg.batch_size, seed)

        def batch(step: int):
            idx = batches.indices(step).to(device)
            return data["x_train"][idx], data["y_train"][idx]

        @torch.no_grad()
        def correct(model: nn.Module) -> torch.Tensor:
            model.eval()
            return (model(data["x_test"]).argmax(1) == data["y_test"]).float().cpu()

        def evaluate(model: nn.Module) -> float:
            return correct(model).mean().item()

        def make() -> nn.Module:
            return build_model("small_cnn", channels=cfg.channels, hidden=cfg.hidden,
                               image_size=cfg.image_size).to(device)

        return Task(batch, batches.per_epoch, evaluate, make, len(data["y_test"]), correct)
    root = cfg.data_root or None
    verify = getattr(cfg, "verify_data", True)
    train = vision_dataset(cfg.dataset, True, root, verify=verify)
    test = vision_dataset(cfg.dataset, False, root, verify=verify)
    steps = StepBatches(train, cfg.batch_size, seed, cfg.workers)

    def batch_full(step: int):
        x, y = steps(step)
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    @torch.no_grad()
    def correct_full(model: nn.Module) -> torch.Tensor:
        model.eval()
        loader = torch.utils.data.DataLoader(test, batch_size=256, num_workers=cfg.workers)
        hits = [(model(x.to(device)).argmax(1).cpu() == y).float() for x, y in loader]
        return torch.cat(hits)

    def evaluate_full(model: nn.Module) -> float:
        return correct_full(model).mean().item()

    def make_full() -> nn.Module:
        return build_model(cfg.model).to(device)

    return Task(batch_full, steps.per_epoch, evaluate_full, make_full, len(test), correct_full)


def dense_part(cfg: Any) -> dict[str, Any]:
    """The knobs the dense model depends on (so budgets and ADMM knobs don't retrain it)."""
    return {k: getattr(cfg, k) for k in ("model", "dataset", "image_size", "channels", "hidden",
                                         "batch_size", "pretrain_epochs", "pretrain_lr",
                                         "momentum", "weight_decay", "data_root", "pretrained")}


def dense_key(cfg: Any, seed: int = 0, cache: ArtifactCache | None = None) -> str:
    """The cache key of ``pretrained_dense(cfg, seed)`` (no build): for ``depends_on``."""
    config = {"config": dense_part(cfg), "seed": seed}
    return (cache or ArtifactCache()).key(DENSE_ARTIFACT, config, code=[pretrained_dense])


def pretrained_dense(cfg: Any, seed: int = 0, device: str = "cpu",
                     cache: ArtifactCache | None = None,
                     checkpoint: bool | None = None) -> dict[str, Any]:
    """The dense starting point: loaded from ``cfg.pretrained`` or trained once (cached;
    with ``checkpoint``, default at full scale, the training checkpoints every epoch into
    its own run folder and a killed build resumes). ``["key"]`` identifies it, for the
    ``depends_on`` of the artifacts built on it."""
    cache = cache or ArtifactCache()
    config = {"config": dense_part(cfg), "seed": seed}
    key = dense_key(cfg, seed, cache)
    if cfg.pretrained:
        from lib.vision import data_root

        path = data_root(cfg.data_root or None) / cfg.pretrained
        if not path.exists():
            raise FileNotFoundError(f"pretrained weights {path} not found; fetch them with: "
                                    f"python data_scripts/fetch_vision.py alexnet-pretrained "
                                    f"--root {data_root(cfg.data_root or None)}")
        task = make_task(cfg, seed, device)
        model = task.make_model()
        model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
        return {"state_dict": model.state_dict(), "accuracy": task.evaluate(model),
                "train_seconds": 0.0, "key": key}
    checkpoint = cfg.dataset != "digits" if checkpoint is None else checkpoint

    def build(ckpt_dir: Path, run_key: str) -> dict[str, Any]:
        task = make_task(cfg, seed, device)
        seed_everything(seed)
        model = task.make_model()
        steps = cfg.pretrain_epochs * task.steps_per_epoch
        opt = torch.optim.SGD(model.parameters(), lr=cfg.pretrain_lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))

        def step_fn(step: int) -> dict[str, float]:
            model.train()
            x, y = task.batch(step)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            return {"loss": loss.item()}

        result = train_loop(step_fn, steps, state={"model": model, "opt": opt, "sched": sched},
                            ckpt_dir=ckpt_dir if checkpoint else None,
                            run_key=run_key if checkpoint else None,
                            ckpt_every=task.steps_per_epoch if checkpoint else 0,
                            log_every=0, desc="dense")
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                "accuracy": task.evaluate(model), "train_seconds": result.wall_time_s}

    dense = cache.get_or_train(DENSE_ARTIFACT, config, build, code=[pretrained_dense])
    return {**dense, "key": key}
