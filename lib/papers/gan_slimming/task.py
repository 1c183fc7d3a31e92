"""The chapter's data and dense teacher generator (kept free of the method, so that
editing ``method.py`` does not retrain the teacher).

Embedded (tutorial, smoke): photo -> cartoon crops (``lib.vision.cartoon``); the teacher is
trained on the pairs by l1 to the cartoon target (the filter is deterministic, so the pairs
are the supervision), optionally with an LSGAN term. Full scale: CycleGAN's unpaired
folders; the teacher is trained one-sided, LSGAN against ``trainB`` plus an l1 content term
to its own input (**our reading**, not CycleGAN's two-generator cycle loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lib.core import ArtifactCache, IndexBatches, derive_seed, seed_everything, train_loop
from lib.core.paths import data_dir
from lib.vision.cartoon import cartoon_crops, cyclegan_folder, load_folder_crops
from lib.vision.gan import (
    GeneratorWidths,
    ResnetGenerator,
    deepcopy_frozen,
    lsgan_loss,
    patch_discriminator,
)


@dataclass
class Task:
    """Crops in [-1, 1] (``*_target``: the cartoon, embedded only) and the teacher."""

    train: torch.Tensor
    train_target: torch.Tensor | None
    real_b: torch.Tensor | None      # unpaired target-domain images (full scale)
    dev: torch.Tensor
    dev_target: torch.Tensor | None
    test: torch.Tensor
    test_target: torch.Tensor | None
    widths: GeneratorWidths
    teacher_state: dict
    teacher_info: dict
    teacher_key: str
    batch_size: int
    input_skip: bool

    def teacher(self, device: torch.device) -> ResnetGenerator:
        g = ResnetGenerator(self.widths, self.input_skip).to(device)
        g.load_state_dict(self.teacher_state)
        return deepcopy_frozen(g)

    def batch(self, step: int, seed: int, device: torch.device) -> torch.Tensor:
        """Batch ``step`` of a seeded epoch order, with seeded horizontal flips."""
        idx = IndexBatches(len(self.train), self.batch_size, seed).indices(step)
        x = self.train[idx]
        g = torch.Generator().manual_seed(derive_seed(seed, "flip", step))
        flip = torch.rand(len(idx), generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x.to(device)


def load_data(cfg) -> dict[str, Any]:
    if cfg.dataset == "cartoon":
        out = {}
        for split, n in (("train", cfg.n_train), ("dev", cfg.n_dev), ("test", cfg.n_test)):
            c = cartoon_crops(split, n, cfg.crop, cfg.side, derive_seed(cfg.data_seed, split),
                              saturation=cfg.saturation, tone_gamma=cfg.tone_gamma)
            out[split], out[f"{split}_target"] = c.photo, c.cartoon
        out["real_b"] = None
        return out
    root = cyclegan_folder(cfg.data_root or data_dir(), cfg.dataset)
    n_a = len(list((root / "trainA").glob("*.jpg")))
    a = load_folder_crops(root / "trainA", min(cfg.n_train, n_a), cfg.load_size, cfg.crop,
                          cfg.data_seed)
    b = load_folder_crops(root / "trainB", min(cfg.n_train, n_a), cfg.load_size, cfg.crop,
                          derive_seed(cfg.data_seed, "B"))
    n_files = len(list((root / "testA").glob("*.jpg")))  # each test image once
    test = load_folder_crops(root / "testA", min(cfg.n_test, n_files), cfg.crop, cfg.crop, 0,
                             flip=False)
    n_dev = max(1, min(cfg.n_dev, len(a) // 5))
    return {"train": a[n_dev:], "train_target": None, "dev": a[:n_dev], "dev_target": None,
            "test": test, "test_target": None, "real_b": b}


def train_teacher(cfg, data: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The dense teacher: Adam on ``teacher_content * l1 + teacher_gan * LSGAN``."""
    seed_everything(derive_seed(cfg.data_seed, "teacher"))
    widths = GeneratorWidths.dense(cfg.ngf, cfg.n_blocks)
    gen = ResnetGenerator(widths, cfg.input_skip).to(device)
    disc = patch_discriminator(cfg.ndf, cfg.d_layers).to(device)
    opt = torch.optim.Adam(gen.parameters(), lr=cfg.teacher_lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.teacher_lr, betas=(0.5, 0.999))
    x_all = data["train"]
    y_all = data["train_target"] if data["train_target"] is not None else data["train"]
    sampler = IndexBatches(len(x_all), cfg.batch_size, derive_seed(cfg.data_seed, "tb"))
    b_sampler = (IndexBatches(len(data["real_b"]), cfg.batch_size, 1)
                 if data["real_b"] is not None else None)

    def step_fn(step: int) -> dict[str, float]:
        idx = sampler.indices(step)
        x, y = x_all[idx].to(device), y_all[idx].to(device)
        if step % 2:
            x, y = x.flip(-1), y.flip(-1)
        out = gen(x)
        loss = cfg.teacher_content * (out - y).abs().mean()
        if cfg.teacher_gan:
            loss = loss + cfg.teacher_gan * lsgan_loss(disc(out), real=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if cfg.teacher_gan:
            real = (data["real_b"][b_sampler.indices(step)].to(device)
                    if b_sampler is not None else y)
            ld = 0.5 * (lsgan_loss(disc(real), True) + lsgan_loss(disc(out.detach()), False))
            opt_d.zero_grad(set_to_none=True)
            ld.backward()
            opt_d.step()
        return {"loss": float(loss.detach())}

    res = train_loop(step_fn, cfg.teacher_steps, state={"gen": gen, "opt": opt},
                     log_every=max(1, cfg.teacher_steps // 20), desc="teacher",
                     show_progress=False)
    gen.eval()
    info: dict[str, Any] = {"curve": [(h["step"], h["loss"]) for h in res.history]}
    if data["test_target"] is not None:
        with torch.no_grad():
            out = gen(data["test"].to(device)).cpu()
        info["test_l1_to_target"] = float((out - data["test_target"]).abs().mean())
    return {"state": {k: v.detach().cpu() for k, v in gen.state_dict().items()}, "info": info}


def teacher_config(cfg) -> dict[str, Any]:
    keys = ("dataset", "crop", "side", "load_size", "n_train", "n_dev", "n_test", "data_seed",
            "ngf", "n_blocks", "input_skip", "ndf", "d_layers", "teacher_steps", "teacher_lr",
            "teacher_content", "teacher_gan", "batch_size", "saturation", "tone_gamma")
    return {k: getattr(cfg, k) for k in keys}


def make_task(cfg, device: torch.device, cache: ArtifactCache | None = None) -> Task:
    """The data and the cached teacher of ``cfg``."""
    cache = cache or ArtifactCache()
    data = load_data(cfg)
    tcfg = teacher_config(cfg)

    def build() -> dict[str, Any]:
        return train_teacher(cfg, data, device)

    art = cache.get_or_create("gan-slimming-teacher", tcfg, build)
    key = cache.key("gan-slimming-teacher", tcfg, code=[build])
    return Task(train=data["train"], train_target=data["train_target"], real_b=data["real_b"],
                dev=data["dev"], dev_target=data["dev_target"], test=data["test"],
                test_target=data["test_target"],
                widths=GeneratorWidths.dense(cfg.ngf, cfg.n_blocks),
                teacher_state=art["state"], teacher_info=art["info"], teacher_key=key,
                batch_size=cfg.batch_size, input_skip=cfg.input_skip)
