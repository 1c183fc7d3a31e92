"""The chapter's data and dense teacher, free of imports of ``method.py`` (editing the method
does not retrain the teacher).

Embedded scales: synthetic digits and ``lenet5_like`` from
``lib.vision.classify.trained_classifier`` (shared, cached). Full scale: MNIST read by
torchvision from ``lib.core.paths.data_dir()`` and Caffe's LeNet-5 trained once (cached).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lib.core import ArtifactCache, seed_everything
from lib.vision.classify import (
    ClassifierTraining,
    accuracy,
    state_of,
    train_classifier,
    trained_classifier,
    trained_classifier_key,
)
from lib.vision.models import build_model
from lib.vision.synthetic import SyntheticDigitsConfig, cached_synthetic_digits


@dataclass
class Task:
    data: dict[str, torch.Tensor]      # x/y _train, _dev, _test (on the device)
    model: str
    model_kwargs: dict[str, Any]
    teacher_state: dict[str, torch.Tensor]
    teacher_key: str
    teacher_info: dict[str, float]

    def build(self) -> nn.Module:
        return build_model(self.model, **self.model_kwargs)

    def teacher(self, device) -> nn.Module:
        net = self.build()
        net.load_state_dict(self.teacher_state)
        return net.to(device).eval()

    @property
    def example_input(self) -> torch.Tensor:
        return self.data["x_test"][:1].cpu()


def _mnist_tensors(n_dev: int, root: str | None) -> dict[str, torch.Tensor]:
    from lib.vision.datasets import vision_dataset

    def stack(ds):
        xs, ys = zip(*[ds[i] for i in range(len(ds))], strict=True)
        return torch.stack(xs), torch.tensor(ys)

    x, y = stack(vision_dataset("mnist", True, root))
    xt, yt = stack(vision_dataset("mnist", False, root))
    n_dev = min(n_dev, len(y) // 5)
    return {"x_train": x[n_dev:], "y_train": y[n_dev:], "x_dev": x[:n_dev], "y_dev": y[:n_dev],
            "x_test": xt, "y_test": yt}


def make_task(cfg: Any, device: torch.device, cache: ArtifactCache | None = None) -> Task:
    """Data and the dense teacher (seed 0) of ``cfg``."""
    cache = cache or ArtifactCache()
    kwargs = dict(cfg.model_kwargs)
    recipe = ClassifierTraining(steps=cfg.dense_steps, batch_size=cfg.batch_size,
                                lr=cfg.dense_lr)
    if cfg.dataset == "synthetic_digits":
        data_cfg = SyntheticDigitsConfig(n_train=cfg.n_train, n_dev=cfg.n_dev,
                                         n_test=cfg.n_test)
        dense = trained_classifier(cfg.model, kwargs, data_cfg, recipe, 0, cache)
        key = trained_classifier_key(cfg.model, kwargs, data_cfg, recipe, 0, cache)
        data = cached_synthetic_digits(data_cfg, 0, cache)
    elif cfg.dataset == "mnist":
        data = _mnist_tensors(cfg.n_dev, cfg.data_root or None)
        config = {"model": cfg.model, "model_kwargs": kwargs, "dataset": "mnist",
                  "n_dev": cfg.n_dev, "train": recipe, "seed": 0}

        def build(ckpt_dir: Path, run_key: str) -> dict:
            seed_everything(0)
            net = build_model(cfg.model, **kwargs).to(device)
            on = {k: v.to(device) for k, v in data.items()}
            res = train_classifier(net, on, recipe, 0, ckpt_dir=ckpt_dir, run_key=run_key,
                                   desc="dense LeNet-5")
            return {"state_dict": state_of(net), "train_seconds": res.wall_time_s,
                    "test_accuracy": accuracy(net, on["x_test"], on["y_test"]),
                    "dev_accuracy": accuracy(net, on["x_dev"], on["y_dev"])}

        dense = cache.get_or_train("energy-training-dense", config, build, code=[make_task])
        key = cache.key("energy-training-dense", config, code=[make_task])
    else:
        raise ValueError(f"unknown dataset {cfg.dataset!r}")
    data = {k: v.to(device) for k, v in data.items()}
    return Task(data, cfg.model, kwargs, dense["state_dict"], key,
                {"test_accuracy": float(dense["test_accuracy"]),
                 "dev_accuracy": float(dense["dev_accuracy"]),
                 "train_seconds": float(dense["train_seconds"])})
