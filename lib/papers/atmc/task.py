"""The ATMC chapter's data and dense models (free of ``method.py``: editing the method does
not retrain the dense models).

Images are pixels in ``[0, 1]`` (the attacks' box); each model starts with a
``Standardize`` layer. The embedded task is the synthetic digits of ``lib.vision.synthetic``
undone from their standardisation: ``synthetic_digits`` stores ``(p - mean) / std`` of
pixels ``p`` clipped to ``[0, 1]``, and its training split holds both 0 and 1 (the pixel
noise saturates), so ``(x - min) / (max - min)`` over the training split recovers ``p``
exactly up to float rounding (``tests/test_atmc.py`` checks the range). Full scale reads
MNIST or CIFAR-10 through torchvision (``lib.vision.datasets``) into memory.

Two dense models per seed: **natural** (clean cross-entropy: the start of NAP and the
positive control's undefended model) and **adversarial** (the natural model fine-tuned
on ``0.5 CE(x) + 0.5 CE(x_pgd)`` for as many steps again: the start of AP, ALR and ATMC,
the official code's first stage; adversarial training from scratch did not leave chance
level in the tutorial's budget).
The data are read from the data root (memoised in the process), never cached.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from lib.core import ArtifactCache, IndexBatches, derive_seed, seed_everything, train_loop
from lib.vision.attacks import PGDConfig, Standardize, adversarial_loss, pgd_generator


def pixel_data(cfg: Any, seed: int, cache: ArtifactCache | None = None
               ) -> dict[str, torch.Tensor]:
    """``x_{train,dev,test}`` in ``[0, 1]`` and labels, plus the channel ``mean`` and ``std``
    of the training pixels."""
    cache = cache or ArtifactCache()
    if cfg.dataset == "synthetic_digits":
        from lib.vision.synthetic import SyntheticDigitsConfig, cached_synthetic_digits

        data = dict(cached_synthetic_digits(SyntheticDigitsConfig(
            n_train=cfg.n_train, n_dev=cfg.n_dev, n_test=cfg.n_test, size=cfg.image_size),
            seed=0, cache=cache))
        lo, hi = data["x_train"].min(), data["x_train"].max()
        for split in ("train", "dev", "test"):
            data[f"x_{split}"] = ((data[f"x_{split}"] - lo) / (hi - lo)).clamp(0.0, 1.0)
    else:
        data = dict(_vision_tensors(cfg.dataset, cfg.data_root, cfg.n_dev, cfg.verify_data))
    x = data["x_train"]
    data["mean"] = x.mean(dim=(0, 2, 3))
    data["std"] = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return data


@lru_cache(maxsize=1)
def _vision_tensors(dataset: str, root: str, n_dev: int, verify: bool
                    ) -> dict[str, torch.Tensor]:
    """MNIST / CIFAR-10 as in-memory ``[0, 1]`` tensors; the last ``n_dev`` training images
    are the dev split (no augmentation: see the chapter)."""
    from torchvision import transforms as T

    from lib.vision.datasets import vision_dataset

    out = {}
    for train in (True, False):
        ds = vision_dataset(dataset, train, root or None, verify=verify,
                            transform=T.ToTensor())
        xs = torch.stack([ds[i][0] for i in range(len(ds))])
        ys = torch.as_tensor([int(ds[i][1]) for i in range(len(ds))])
        if train:
            n_dev = min(n_dev, len(ys) // 2)
            out["x_train"], out["y_train"] = xs[:len(ys) - n_dev], ys[:len(ys) - n_dev]
            out["x_dev"], out["y_dev"] = xs[len(ys) - n_dev:], ys[len(ys) - n_dev:]
        else:
            out["x_test"], out["y_test"] = xs, ys
    return out


def build_net(cfg: Any, data: dict[str, torch.Tensor]) -> nn.Sequential:
    """``Standardize`` then the chapter's network."""
    from lib.vision.models import build_model, small_cnn

    kwargs = dict(cfg.model_kwargs)
    if cfg.model == "small_cnn":
        net = small_cnn(image_size=cfg.image_size, in_channels=data["x_train"].shape[1],
                        **kwargs)
    else:
        net = build_model(cfg.model, **kwargs)
    return nn.Sequential(Standardize(data["mean"], data["std"]), net)


def attack_config(cfg: Any, eval_attack: bool = False, eps: float | None = None) -> PGDConfig:
    """Training PGD (``train_pgd_steps``) or evaluation PGD (``eval_pgd_steps``,
    ``eval_restarts``) at radius ``eps`` (default the chapter's)."""
    eps = cfg.eps if eps is None else eps
    if eval_attack:
        return PGDConfig(eps=eps, steps=cfg.eval_pgd_steps, restarts=cfg.eval_restarts)
    return PGDConfig(eps=eps, steps=cfg.train_pgd_steps)


def train_dense(net: nn.Module, data: dict[str, torch.Tensor], cfg: Any, seed: int,
                adv_weight: float, device: torch.device, ckpt_dir: Path | None = None,
                run_key: str | None = None) -> dict[str, Any]:
    """SGD with momentum and a cosine schedule on ``(1 - w) CE(x) + w CE(x_pgd)``."""
    x, y = data["x_train"].to(device), data["y_train"].to(device)
    batches = IndexBatches(len(y), cfg.batch_size, seed)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.dense_lr, momentum=0.9,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.dense_steps, 1))
    attack = attack_config(cfg)

    def step_fn(step: int) -> dict[str, float]:
        net.train()
        idx = batches.indices(step).to(device)
        g = pgd_generator(derive_seed(seed, "dense-pgd", step), device)
        loss = (adversarial_loss(net, x[idx], y[idx], attack, g, adv_weight) if adv_weight
                else F.cross_entropy(net(x[idx]), y[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return {"loss": loss.detach().item()}

    result = train_loop(step_fn, cfg.dense_steps, state={"model": net, "opt": opt,
                                                         "sched": sched},
                        ckpt_dir=ckpt_dir, run_key=run_key,
                        ckpt_every=max(1, cfg.dense_steps // 10) if ckpt_dir else 0,
                        log_every=10, desc=f"dense adv={adv_weight}")
    return {"history": result.history, "train_seconds": result.wall_time_s}


DENSE_FIELDS = ("model", "model_kwargs", "dataset", "n_train", "n_dev", "n_test", "image_size",
                "dense_steps", "dense_lr", "batch_size", "weight_decay", "eps",
                "train_pgd_steps", "data_root")


def dense_config(cfg: Any, kind: str, seed: int) -> dict[str, Any]:
    """What a dense model depends on (the natural one not on the attack)."""
    fields = [f for f in DENSE_FIELDS
              if kind == "adversarial" or f not in ("eps", "train_pgd_steps")]
    return {"kind": kind, "seed": seed, **{f: getattr(cfg, f) for f in fields}}


def dense_model(cfg: Any, kind: str, seed: int, device: torch.device,
                cache: ArtifactCache | None = None) -> tuple[nn.Module, str]:
    """The ``natural`` or ``adversarial`` dense model of ``seed`` (cached) and its key."""
    if kind not in ("natural", "adversarial"):
        raise ValueError(f"kind must be natural or adversarial, got {kind!r}")
    cache = cache or ArtifactCache()
    data = pixel_data(cfg, 0, cache)
    config = dense_config(cfg, kind, seed)
    depends_on: list[str] = []
    if kind == "adversarial":  # fine-tuned from the natural model of the same seed
        natural, natural_key = dense_model(cfg, "natural", seed, device, cache)
        depends_on = [natural_key]

    def build(ckpt_dir: Path, run_key: str) -> dict[str, Any]:
        seed_everything(seed)
        net = build_net(cfg, data).to(device)
        if kind == "adversarial":
            net.load_state_dict(natural.state_dict())
        info = train_dense(net, data, cfg, seed, 0.5 if kind == "adversarial" else 0.0,
                           device, ckpt_dir, run_key)
        return {"state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                **info}

    art = cache.get_or_train("atmc-dense", config, build, code=[dense_model],
                             depends_on=depends_on)
    net = build_net(cfg, data)
    net.load_state_dict(art["state_dict"])
    return net.to(device), cache.key("atmc-dense", config, code=[dense_model],
                                             depends_on=depends_on)
