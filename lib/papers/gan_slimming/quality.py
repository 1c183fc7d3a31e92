"""The chapter's feature networks, trained here on the task: the perceptual loss's network
(the tutorial's stand-in for VGG) and the network under FID and KID (the stand-in for
Inception, whose weights cannot be fetched offline).

Both are small convolutional classifiers trained to tell a cartoon crop from a photo crop on
the *train* split (disjoint images from dev and test). The FID/KID network has its own
architecture and seed, so the metric is not the distillation loss it judges. FID and KID
are torchmetrics' (``FrechetInceptionDistance`` / ``KernelInceptionDistance`` with a custom
``feature`` module): the formulas are the standard ones, the features are not Inception's,
so the values are not comparable with any published FID.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lib.core import ArtifactCache, derive_seed


def conv_body(width: int, depth: int) -> nn.Sequential:
    """``depth`` 3x3 convolutions (stride 1, then 2), each followed by a ReLU, widths
    ``width * 2^i``: the layout of ``lib.vision.gan.feature_network``."""
    layers: list[nn.Module] = []
    ch = 3
    for i in range(depth):
        layers += [nn.Conv2d(ch, width * 2 ** i, 3, 2 if i else 1, 1), nn.ReLU()]
        ch = width * 2 ** i
    return nn.Sequential(*layers)


class PooledFeatures(nn.Module):
    """The global-average-pooled last ReLU output of a trained body: an ``(N, d)`` feature
    matrix, as torchmetrics' custom ``feature`` expects. Input: images in ``[0, 1]`` (the
    metrics' ``normalize=True`` convention), mapped to the generator's ``[-1, 1]``. Each
    feature is standardized by a fixed ``mean`` and ``std`` (of the train cartoon crops): an
    affine map, so that FID reads in units of the features' spread."""

    def __init__(self, body: nn.Sequential, mean: torch.Tensor | None = None,
                 std: torch.Tensor | None = None):
        super().__init__()
        self.body = body
        self.num_features = [m for m in body if isinstance(m, nn.Conv2d)][-1].out_channels
        d = self.num_features
        self.register_buffer("mean", torch.zeros(d) if mean is None else mean.float())
        self.register_buffer("std", torch.ones(d) if std is None else std.float())

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return (self.body(imgs.float() * 2 - 1).mean((2, 3)) - self.mean) / self.std


def train_classifier(photo: torch.Tensor, cartoon: torch.Tensor, width: int, depth: int,
                     steps: int, seed: int, batch: int = 32, lr: float = 2e-3
                     ) -> dict[str, Any]:
    """A body + linear head trained (Adam, cross-entropy) to tell ``cartoon`` crops (label 1)
    from ``photo`` crops (label 0); returns the body's state and its train accuracy."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    body = conv_body(width, depth)
    head = nn.Linear(width * 2 ** (depth - 1), 2)
    opt = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=lr)
    x = torch.cat([photo, cartoon])
    y = torch.cat([torch.zeros(len(photo)), torch.ones(len(cartoon))]).long()
    for _ in range(steps):
        idx = torch.randint(len(x), (batch,), generator=g)
        loss = F.cross_entropy(head(body(x[idx]).mean((2, 3))), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        acc = float((head(body(x).mean((2, 3))).argmax(1) == y).float().mean())
    return {"body": {k: v.detach().clone() for k, v in body.state_dict().items()},
            "train_accuracy": acc}


def frozen_body(state: dict, width: int, depth: int) -> nn.Sequential:
    body = conv_body(width, depth)
    body.load_state_dict(state)
    body.eval()
    for p in body.parameters():
        p.requires_grad_(False)
    return body


#: (width, depth, seed tag) of the two networks
PERCEPTUAL = (16, 3, "perceptual")
FID_NET = (8, 3, "fid")


def feature_nets(cfg, task, cache: ArtifactCache | None = None) -> dict[str, Any]:
    """The trained perceptual body and FID body of ``cfg``'s task (cached), with their
    train accuracies. Embedded data only: the full scale has no paired cartoons (it keeps
    the fixed random network, ``lib.vision.gan.feature_network``)."""
    cache = cache or ArtifactCache()
    key = {"dataset": cfg.dataset, "crop": cfg.crop, "side": cfg.side, "n_train": cfg.n_train,
           "data_seed": cfg.data_seed, "feature_seed": cfg.feature_seed,
           "steps": cfg.perceptual_steps, "nets": [PERCEPTUAL, FID_NET]}

    def build() -> dict[str, Any]:
        out = {}
        for name, (width, depth, tag) in (("perceptual", PERCEPTUAL), ("fid", FID_NET)):
            out[name] = train_classifier(task.train, task.train_target, width, depth,
                                         cfg.perceptual_steps,
                                         derive_seed(cfg.feature_seed, tag))
        with torch.no_grad():  # the FID features' standardization, on train cartoons
            f = PooledFeatures(frozen_body(out["fid"]["body"], *FID_NET[:2]))
            feats = f((task.train_target + 1) / 2)
        out["fid"]["mean"], out["fid"]["std"] = feats.mean(0), feats.std(0).clamp_min(1e-6)
        return out

    art = cache.get_or_create("gan-slimming-features", key, build)
    return {"perceptual": frozen_body(art["perceptual"]["body"], *PERCEPTUAL[:2]),
            "fid": PooledFeatures(frozen_body(art["fid"]["body"], *FID_NET[:2]),
                                  art["fid"]["mean"], art["fid"]["std"]),
            "accuracy": {k: art[k]["train_accuracy"] for k in ("perceptual", "fid")},
            "key": cache.key("gan-slimming-features", key, code=[build])}


def fid_kid(features: nn.Module, real: torch.Tensor, fake: torch.Tensor,
            subset_size: int = 50, subsets: int = 50, seed: int = 0) -> dict[str, float]:
    """torchmetrics' FID and KID (mean and std over ``subsets`` random subsets) of ``fake``
    against ``real``, both images in ``[-1, 1]``, under ``features``."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    fid = FrechetInceptionDistance(feature=features, normalize=True, reset_real_features=True)
    n = min(len(real), len(fake))
    kid = KernelInceptionDistance(feature=features, normalize=True,
                                  subsets=subsets, subset_size=min(subset_size, n))
    to01 = [((t + 1) / 2).clamp(0, 1).float() for t in (real, fake)]
    for metric in (fid, kid):
        metric.update(to01[0], real=True)
        metric.update(to01[1], real=False)
    out = {"fid": float(fid.compute())}
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # KID draws its subsets with torch's global generator
    mean, std = kid.compute()
    torch.random.set_rng_state(state)
    out.update(kid=float(mean), kid_std=float(std))
    return out
