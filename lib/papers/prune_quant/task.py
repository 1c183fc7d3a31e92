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
from lib.vision.classify import (
    ClassifierTraining,
    correct,
    trained_classifier,
    trained_classifier_key,
)
from lib.vision.synthetic import SyntheticDigitsConfig, cached_synthetic_digits

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


def synthetic_data_config(cfg: Any) -> SyntheticDigitsConfig:
    """The synthetic digits of ``cfg`` (the compression chapters' shared task)."""
    return SyntheticDigitsConfig(n_train=cfg.n_train, n_dev=cfg.n_dev, n_test=cfg.n_test)


def synthetic_dense_recipe(cfg: Any) -> ClassifierTraining:
    """The shared dense recipe (``energy_training``, ``ecc``, ``head_to_head`` train the
    same artifact with the same numbers)."""
    return ClassifierTraining(steps=cfg.dense_steps, batch_size=cfg.batch_size,
                              lr=cfg.pretrain_lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay)


def _synthetic_task(cfg: Any, seed: int, device: torch.device,
                    cache: ArtifactCache | None) -> Task:
    """Synthetic digits (data seed 0, shared); ``seed`` orders the batches. An ADMM
    "epoch" is ``cfg.round_steps`` steps (0: one pass over the training images): the
    interval between projections and V-steps. ``cfg.eval_split`` scores on dev or test."""
    data = cached_synthetic_digits(synthetic_data_config(cfg), 0, cache)
    data = {k: v.to(device) for k, v in data.items()}
    batches = IndexBatches(len(data["y_train"]), cfg.batch_size, seed)
    split = cfg.eval_split
    if split not in ("test", "dev"):
        raise ValueError(f"eval_split must be 'test' or 'dev', got {split!r}")
    x_eval, y_eval = data[f"x_{split}"], data[f"y_{split}"]

    def batch(step: int):
        idx = batches.indices(step).to(device)
        return data["x_train"][idx], data["y_train"][idx]

    def ok(model: nn.Module) -> torch.Tensor:
        return correct(model, x_eval, y_eval).float().cpu()

    def make() -> nn.Module:
        return build_model(cfg.model, **dict(cfg.model_kwargs)).to(device)

    per_round = cfg.round_steps or batches.per_epoch
    return Task(batch, per_round, lambda m: ok(m).mean().item(), make, len(y_eval), ok)


def make_task(cfg: Any, seed: int = 0, device: str | torch.device = "cpu",
              cache: ArtifactCache | None = None) -> Task:
    """The data and model of ``cfg``: synthetic digits (the shared ``lenet5_like`` task),
    scikit-learn's digits, or a full-scale data set on disk."""
    device = torch.device(device)
    if cfg.dataset == "synthetic_digits":
        return _synthetic_task(cfg, seed, device, cache)
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
    if cfg.dataset == "synthetic_digits":
        return trained_classifier_key(cfg.model, dict(cfg.model_kwargs),
                                      synthetic_data_config(cfg), synthetic_dense_recipe(cfg),
                                      0, cache)
    config = {"config": dense_part(cfg), "seed": seed}
    return (cache or ArtifactCache()).key(DENSE_ARTIFACT, config, code=[pretrained_dense])


def pretrained_dense(cfg: Any, seed: int = 0, device: str = "cpu",
                     cache: ArtifactCache | None = None,
                     checkpoint: bool | None = None) -> dict[str, Any]:
    """The dense starting point: on the synthetic digits the compression chapters' shared
    ``lenet5_like`` of seed 0 (``lib.vision.classify.trained_classifier``; every seed
    compresses the same dense model, the seed varies the compression), else loaded from
    ``cfg.pretrained`` or trained once (cached;
    with ``checkpoint``, default at full scale, the training checkpoints every epoch into
    its own run folder and a killed build resumes). ``["key"]`` identifies it, for the
    ``depends_on`` of the artifacts built on it."""
    cache = cache or ArtifactCache()
    if cfg.dataset == "synthetic_digits":  # the shared dense model of seed 0
        dense = trained_classifier(cfg.model, dict(cfg.model_kwargs),
                                   synthetic_data_config(cfg), synthetic_dense_recipe(cfg), 0,
                                   cache)
        return {"state_dict": dense["state_dict"], "accuracy": float(dense["test_accuracy"]),
                "dev_accuracy": float(dense["dev_accuracy"]),
                "train_seconds": float(dense["train_seconds"]),
                "key": dense_key(cfg, seed, cache)}
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
