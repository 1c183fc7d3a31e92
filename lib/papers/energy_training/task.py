"""The chapter's data and dense teacher, free of imports of ``method.py`` (editing the method
does not retrain the teacher).

Embedded scales: synthetic digits and ``lenet5_like`` from
``lib.vision.classify.trained_classifier`` (shared, cached). Full scale: MNIST read by
torchvision from ``lib.core.paths.data_dir()`` and Caffe's LeNet-5 trained once (cached); or
ImageNet (``lib.vision.datasets``, class folders) with torchvision's AlexNet or SqueezeNet
v1.0 loaded from pretrained weights under the data root, as the paper starts from them.

Both kinds of task answer the same calls: ``teacher(device)``, ``batches(teacher,
batch_size, seed)`` (``(x, y, teacher logits)`` of a step), ``test_correct(model)`` (0/1 per
test item) and ``dev_accuracy(model)`` (the split tuning and the mask rounds read).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lib.core import ArtifactCache, IndexBatches, seed_everything
from lib.vision.classify import (
    ClassifierTraining,
    accuracy,
    correct,
    state_of,
    train_classifier,
    trained_classifier,
    trained_classifier_key,
)
from lib.vision.models import build_model
from lib.vision.synthetic import SyntheticDigitsConfig, cached_synthetic_digits


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

    @property
    def n_test(self) -> int:
        return len(self.data["y_test"])

    def batches(self, teacher: nn.Module, batch_size: int, seed: int):
        """Training batches with the teacher's logits (computed once for the whole set,
        shared by every run of this task)."""
        if getattr(self, "_train_logits", None) is None:
            self._train_logits = teacher_logits(teacher, self.data["x_train"])
        return Batches(self.data["x_train"], self.data["y_train"], self._train_logits,
                       batch_size, seed)

    def test_correct(self, model: nn.Module) -> torch.Tensor:
        return correct(model, self.data["x_test"], self.data["y_test"]).cpu()

    def dev_accuracy(self, model: nn.Module) -> float:
        return accuracy(model, self.data["x_dev"], self.data["y_dev"])


IMAGENET_MODELS = ("alexnet", "squeezenet1_0")
#: The pretrained weights each ImageNet model starts from, under the data root, and the
#: command that fetches them.
PRETRAINED = {"alexnet": ("pretrained/alexnet-imagenet.pth", "alexnet-pretrained"),
              "squeezenet1_0": ("pretrained/squeezenet1_0-imagenet.pth",
                                "squeezenet-pretrained")}


def imagenet_model(name: str, n_classes: int = 1000) -> nn.Module:
    """torchvision's AlexNet or SqueezeNet v1.0 (randomly initialised)."""
    from torchvision import models as tv

    if name not in IMAGENET_MODELS:
        raise ValueError(f"unknown ImageNet model {name!r}; valid: {', '.join(IMAGENET_MODELS)}")
    return getattr(tv, name)(weights=None, num_classes=n_classes)


@dataclass
class StreamTask:
    """ImageNet: data read from disk in batches, the teacher's logits computed per batch."""

    train: Any                          # torch Dataset (training transform)
    dev: Any                            # held-out training images (test transform)
    test: Any                           # the validation split
    model: str
    n_classes: int
    teacher_state: dict[str, torch.Tensor]
    teacher_key: str
    teacher_info: dict[str, float]
    device: torch.device
    workers: int = 8

    def build(self) -> nn.Module:
        return imagenet_model(self.model, self.n_classes)

    def teacher(self, device) -> nn.Module:
        net = self.build()
        net.load_state_dict(self.teacher_state)
        return net.to(device).eval()

    @property
    def example_input(self) -> torch.Tensor:
        return torch.zeros(1, 3, 224, 224)

    @property
    def n_test(self) -> int:
        return len(self.test)

    def batches(self, teacher: nn.Module, batch_size: int, seed: int):
        from lib.vision.datasets import StepBatches

        steps = StepBatches(self.train, batch_size, seed, self.workers)
        device = self.device

        @torch.no_grad()
        def logits(x):
            teacher.eval()
            return teacher(x)

        def batch(step: int):
            x, y = steps(step)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            return x, y, logits(x)
        return batch

    @torch.no_grad()
    def _correct(self, model: nn.Module, dataset) -> torch.Tensor:
        from torch.utils.data import DataLoader

        was = model.training
        model.eval()
        out = []
        for x, y in DataLoader(dataset, batch_size=256, num_workers=self.workers):
            out.append((model(x.to(self.device)).argmax(1).cpu() == y).to(torch.float64))
        model.train(was)
        return torch.cat(out)

    def test_correct(self, model: nn.Module) -> torch.Tensor:
        return self._correct(model, self.test)

    def dev_accuracy(self, model: nn.Module) -> float:
        return float(self._correct(model, self.dev).mean())


def _imagenet_task(cfg: Any, device: torch.device, cache: ArtifactCache) -> StreamTask:
    from torch.utils.data import Subset

    from lib.vision.datasets import _transform, data_root, vision_dataset

    root = cfg.data_root or None
    train = vision_dataset("imagenet", True, root)
    test = vision_dataset("imagenet", False, root)
    plain = vision_dataset("imagenet", True, root, transform=_transform("imagenet", False))
    perm = torch.randperm(len(plain), generator=torch.Generator().manual_seed(0))
    dev = Subset(plain, perm[:min(cfg.n_dev, len(plain))].tolist())
    n_classes = len(train.classes)
    rel, command = PRETRAINED[cfg.model]
    path = data_root(root) / rel
    config = {"model": cfg.model, "dataset": "imagenet", "pretrained": rel,
              "n_classes": n_classes, "n_dev": cfg.n_dev}
    workers = cfg.workers

    def build() -> dict:
        if not path.exists():
            raise FileNotFoundError(f"pretrained weights {path} not found; fetch them with: "
                                    f"python data_scripts/fetch_vision.py {command} "
                                    f"--root {data_root(root)}")
        net = imagenet_model(cfg.model, n_classes)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        probe = StreamTask(train, dev, test, cfg.model, n_classes, {}, "", {}, device, workers)
        net = net.to(device)
        return {"state_dict": state_of(net), "train_seconds": 0.0,
                "test_accuracy": float(probe.test_correct(net).mean()),
                "dev_accuracy": probe.dev_accuracy(net)}

    dense = cache.get_or_create("energy-training-dense", config, build, code=[make_task])
    key = cache.key("energy-training-dense", config, code=[make_task])
    return StreamTask(train, dev, test, cfg.model, n_classes, dense["state_dict"], key,
                      {k: float(dense[k]) for k in ("test_accuracy", "dev_accuracy",
                                                     "train_seconds")}, device, workers)


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


def make_task(cfg: Any, device: torch.device, cache: ArtifactCache | None = None
              ) -> Task | StreamTask:
    """Data and the dense teacher (seed 0) of ``cfg``."""
    cache = cache or ArtifactCache()
    if cfg.dataset == "imagenet":
        return _imagenet_task(cfg, device, cache)
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
