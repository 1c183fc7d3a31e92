"""The ECC chapter's task: data, the dense network, its width family, and the latency
samples the cost models are fitted on. Free of imports of ``method.py``, so that editing
the method neither retrains the dense model nor re-measures the samples.

Embedded scales use the compression chapters' shared task: synthetic digits and
``lenet5_like`` trained by ``lib.vision.classify.trained_classifier`` (one cached artifact
for every chapter asking for the same model, data, recipe and seed). Full scale reads
ImageNet from disk (``lib.vision.vision_dataset``) for MobileNet v1 or AlexNet.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lib.core import ArtifactCache, IndexBatches, derive_seed, seed_everything
from lib.core.limits import limit_steps, step_limit
from lib.energy.measure import measure_interleaved
from lib.vision.classify import ClassifierTraining, trained_classifier, trained_classifier_key
from lib.vision.models import lenet5_like
from lib.vision.synthetic import SyntheticDigitsConfig, cached_synthetic_digits
from lib.vision.width_models import ALEXNET_WIDTHS, MOBILENET_WIDTHS, alexnet_widths, mobilenet_v1

MODELS = ("lenet5_like", "mobilenet_v1", "alexnet")


# --------------------------------------------------------------------------- widths
@dataclass(frozen=True)
class WidthFamily:
    """A network at any hidden widths: ``build(hidden)``, with dense widths ``upper``
    (``u_0 .. u_L``, input channels and classes included)."""

    name: str
    upper: tuple[int, ...]
    input_shape: tuple[int, ...]  # one example (C, H, W)

    def build(self, widths: Any) -> nn.Sequential:
        w = [int(v) for v in widths]
        if len(w) == len(self.upper):
            w = w[1:-1]
        if len(w) != len(self.upper) - 2:
            raise ValueError(f"{self.name}: {len(self.upper) - 2} hidden widths, got {w}")
        if self.name == "lenet5_like":
            return lenet5_like(widths=(w[0], w[1]), hidden=(w[2], w[3]),
                               n_classes=self.upper[-1])
        if self.name == "mobilenet_v1":
            return mobilenet_v1(w, n_classes=self.upper[-1])
        return alexnet_widths(w, n_classes=self.upper[-1])


def width_family(model: str, n_classes: int, model_kwargs: dict | None = None) -> WidthFamily:
    """The width family of ``model`` (``MODELS``)."""
    if model == "lenet5_like":
        kw = {"widths": (16, 48), "hidden": (128, 96), **(model_kwargs or {})}
        return WidthFamily(model, (1, *kw["widths"], *kw["hidden"], n_classes), (1, 28, 28))
    if model == "mobilenet_v1":
        return WidthFamily(model, (3, *MOBILENET_WIDTHS, n_classes), (3, 224, 224))
    if model == "alexnet":
        return WidthFamily(model, (3, *ALEXNET_WIDTHS, n_classes), (3, 224, 224))
    raise ValueError(f"unknown model {model!r}; valid: {', '.join(MODELS)}")


def platform_id(device: torch.device) -> str:
    """What the latency samples were measured on (part of their cache key)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.machine()}:{platform.processor() or platform.node()}"


# --------------------------------------------------------------------------- data
@dataclass
class Task:
    """Training batches by step, per-item test correctness, a holdout score, the dense
    weights, and the inputs at which latency is measured."""

    batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]]
    correct: Callable[[nn.Module], torch.Tensor]
    holdout_accuracy: Callable[[nn.Module], float]
    dev_accuracy: Callable[[nn.Module], float]
    dense_state: dict[str, torch.Tensor]
    dense_key: str
    dense_info: dict[str, Any]
    example_input: torch.Tensor     # one batch, for width boundaries
    latency_input: torch.Tensor     # the batch latency is measured at
    family: WidthFamily
    n_test: int


def embedded_task(cfg: Any, seed: int, device: torch.device,
                  cache: ArtifactCache | None = None) -> Task:
    """Synthetic digits and the shared dense ``lenet5_like`` of seed ``seed``."""
    cache = cache or ArtifactCache()
    data_cfg = SyntheticDigitsConfig(n_train=cfg.n_train, n_dev=cfg.n_dev, n_test=cfg.n_test)
    recipe = ClassifierTraining(steps=cfg.dense_steps, batch_size=cfg.batch_size,
                                lr=cfg.dense_lr)
    kwargs = dict(cfg.model_kwargs)
    dense = trained_classifier("lenet5_like", kwargs, data_cfg, recipe, seed, cache)
    key = trained_classifier_key("lenet5_like", kwargs, data_cfg, recipe, seed, cache)
    data = {k: v.to(device) for k, v in cached_synthetic_digits(data_cfg, seed, cache).items()}
    batches = IndexBatches(len(data["y_train"]), cfg.batch_size, derive_seed(seed, "ecc"))
    holdout = min(cfg.holdout, len(data["y_dev"]))

    def batch(step: int):
        idx = batches.indices(step).to(device)
        return data["x_train"][idx], data["y_train"][idx]

    @torch.no_grad()
    def correct_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        was = model.training
        model.eval()
        out = torch.cat([model(x[i:i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
        model.train(was)
        return (out == y).to(torch.float64).cpu()

    family = width_family("lenet5_like", 10, kwargs)
    reps = -(-cfg.latency_batch // len(data["x_test"]))
    latency_x = data["x_test"].repeat(reps, 1, 1, 1)[:cfg.latency_batch].contiguous()
    return Task(batch=batch,
                correct=lambda m: correct_of(m, data["x_test"], data["y_test"]),
                holdout_accuracy=lambda m: float(correct_of(m, data["x_dev"][:holdout],
                                                            data["y_dev"][:holdout]).mean()),
                dev_accuracy=lambda m: float(correct_of(m, data["x_dev"], data["y_dev"]).mean()),
                dense_state=dense["state_dict"], dense_key=key,
                dense_info={"test_accuracy": dense["test_accuracy"],
                            "dev_accuracy": dense["dev_accuracy"],
                            "train_seconds": dense["train_seconds"]},
                example_input=data["x_test"][:2], latency_input=latency_x, family=family,
                n_test=len(data["y_test"]))


def imagenet_task(cfg: Any, seed: int, device: torch.device,
                  cache: ArtifactCache | None = None) -> Task:
    """ImageNet from ``lib.vision`` and a dense MobileNet v1 / AlexNet: loaded from
    ``cfg.pretrained`` (under the data root) or trained once (cached, checkpointed)."""
    from torch.utils.data import DataLoader, Subset

    from lib.core.train import train_loop
    from lib.vision.datasets import StepBatches, _transform, data_root, vision_dataset

    cache = cache or ArtifactCache()
    root = cfg.data_root or None
    train = vision_dataset("imagenet", True, root)
    test = vision_dataset("imagenet", False, root)
    n_classes = len(train.classes)
    family = width_family(cfg.model, n_classes)
    steps = StepBatches(train, cfg.batch_size, derive_seed(seed, "ecc"), cfg.workers)

    def batch(step: int):
        x, y = steps(step)
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    @torch.no_grad()
    def correct_on(model: nn.Module, dataset) -> torch.Tensor:
        was = model.training
        model.eval()
        out = []
        for x, y in DataLoader(dataset, batch_size=256, num_workers=cfg.workers):
            out.append((model(x.to(device)).argmax(1).cpu() == y).to(torch.float64))
        model.train(was)
        return torch.cat(out)

    plain = vision_dataset("imagenet", True, root, transform=_transform("imagenet", False))
    perm = torch.randperm(len(plain), generator=torch.Generator().manual_seed(seed))
    holdout = Subset(plain, perm[:min(cfg.holdout, len(plain))].tolist())
    dense_cfg = {"model": cfg.model, "pretrained": cfg.pretrained, "dense_steps": cfg.dense_steps,
                 "dense_lr": cfg.dense_lr, "batch_size": cfg.batch_size, "seed": seed,
                 "weight_decay": cfg.weight_decay, "n_classes": n_classes}

    def build(ckpt_dir: Path, run_key: str) -> dict[str, Any]:
        seed_everything(seed)
        net = family.build(family.upper).to(device)
        if cfg.pretrained:
            path = data_root(root) / cfg.pretrained
            if not path.exists():
                raise FileNotFoundError(
                    f"pretrained weights {path} not found; fetch them with: python "
                    f"data_scripts/fetch_vision.py alexnet-pretrained --root {data_root(root)}")
            net.load_state_dict(torch.load(path, map_location=device, weights_only=True))
            seconds = 0.0
        else:
            opt = torch.optim.SGD(net.parameters(), lr=cfg.dense_lr, momentum=0.9,
                                  weight_decay=cfg.weight_decay)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(cfg.dense_steps, 1))

            def step_fn(step: int) -> dict[str, float]:
                net.train()
                x, y = batch(step)
                opt.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(net(x), y)
                loss.backward()
                opt.step()
                sched.step()
                return {"loss": loss.item()}

            res = train_loop(step_fn, cfg.dense_steps, state={"model": net, "opt": opt,
                                                               "sched": sched},
                             ckpt_dir=ckpt_dir, run_key=run_key,
                             ckpt_every=max(1, cfg.dense_steps // 20), log_every=100,
                             desc=f"dense {cfg.model}")
            seconds = res.wall_time_s
        return {"state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                "test_accuracy": float(correct_on(net, test).mean()),
                "train_seconds": seconds}

    dense = cache.get_or_train("ecc-dense", dense_cfg, build)
    key = cache.key("ecc-dense", dense_cfg, code=[build])
    latency_x = torch.randn(cfg.latency_batch, *family.input_shape, device=device)
    return Task(batch=batch, correct=lambda m: correct_on(m, test),
                holdout_accuracy=lambda m: float(correct_on(m, holdout).mean()),
                dev_accuracy=lambda m: float(correct_on(m, holdout).mean()),
                dense_state=dense["state_dict"], dense_key=key,
                dense_info={"test_accuracy": dense["test_accuracy"],
                            "train_seconds": dense["train_seconds"]},
                example_input=torch.zeros(2, *family.input_shape, device=device),
                latency_input=latency_x, family=family, n_test=len(test))


def make_task(cfg: Any, seed: int, device: torch.device,
              cache: ArtifactCache | None = None) -> Task:
    if cfg.dataset == "synthetic_digits":
        return embedded_task(cfg, seed, device, cache)
    if cfg.dataset == "imagenet":
        return imagenet_task(cfg, seed, device, cache)
    raise ValueError(f"unknown dataset {cfg.dataset!r}; valid: synthetic_digits, imagenet")


# --------------------------------------------------------------------------- samples
def measure_width_samples(family: WidthFamily, widths: np.ndarray, latency_input: torch.Tensor,
                          *, group: int, rounds: int, number: int, warmup: int, threads: int,
                          clock: str = "wall", seed: int = 0, progress: bool | None = None
                          ) -> dict[str, Any]:
    """Latency of each width vector, relative to the dense network measured interleaved
    with it (groups of ``group`` variants plus the dense one), so a shared machine's slow
    phases cancel in the ratio. Returns ratios, absolute medians and spreads."""
    from lib.core import progress as bar

    device = latency_input.device
    dense = family.build(family.upper).to(device)
    ratios, medians, spreads, dense_medians = [], [], [], []
    starts = range(0, len(widths), group)
    for g, start in enumerate(bar(starts, desc="latency samples", enabled=progress)):
        chunk = widths[start:start + group]
        nets = {"dense": dense, **{f"v{i}": family.build(w).to(device)
                                   for i, w in enumerate(chunk)}}
        stats = measure_interleaved(nets, latency_input, rounds=rounds, number=number,
                                    warmup=warmup, threads=threads, clock=clock, seed=seed + g)
        ref = stats["dense"].median_s
        dense_medians.append(ref)
        for i in range(len(chunk)):
            st = stats[f"v{i}"]
            ratios.append(st.median_s / ref)
            medians.append(st.median_s)
            spreads.append(st.relative_spread)
    return {"widths": np.asarray(widths).tolist(), "ratio": ratios, "median_s": medians,
            "relative_spread": spreads, "dense_median_s": dense_medians}


def timing(cfg: Any, rounds: int | None = None) -> dict[str, int]:
    """Rounds, passes per block and warm-up passes of a measurement; a dry run (step limit)
    times at most two rounds of ``limit_steps`` passes."""
    rounds = cfg.rounds if rounds is None else rounds
    if step_limit() is None:
        return {"rounds": rounds, "number": cfg.number, "warmup": cfg.warmup}
    return {"rounds": min(rounds, 2), "number": limit_steps(cfg.number),
            "warmup": limit_steps(cfg.warmup)}


def latency_samples(cfg: Any, family: WidthFamily, latency_input: torch.Tensor,
                    cache: ArtifactCache | None = None) -> dict[str, Any]:
    """``cfg.latency_samples`` random-width variants measured on this platform (cached;
    the key holds the platform, so another machine measures its own). A dry run measures
    no more than its step limit allows (but enough to fit every model)."""
    from lib.energy.bilinear import random_widths

    device = latency_input.device
    n = max(limit_steps(cfg.latency_samples), 2 * len(family.upper) + 4)
    config = {"family": family.name, "upper": family.upper, "n": n,
              "batch": int(latency_input.shape[0]), "group": cfg.latency_group,
              "rounds": cfg.rounds, "number": cfg.number, "warmup": cfg.warmup,
              "threads": cfg.threads, "clock": cfg.clock, "platform": platform_id(device),
              "seed": cfg.sample_seed}

    def build() -> dict[str, Any]:
        rng = np.random.default_rng(cfg.sample_seed)
        widths = random_widths(family.upper, n, rng)
        return measure_width_samples(family, widths, latency_input, group=cfg.latency_group,
                                     **timing(cfg), threads=cfg.threads, clock=cfg.clock,
                                     seed=cfg.sample_seed)

    return (cache or ArtifactCache()).get_or_create("ecc-latency-samples", config, build)
