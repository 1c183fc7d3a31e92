"""GAN Slimming's channel slimming + 8-bit quantization, applied to a classifier.

``gan_slimming``'s library is built around an image-to-image generator (its ``gamma`` are
the scales of the generator's normalization layers, its loss a distillation of images and a
discriminator). The capstone applies the method's *steps* to ``lenet5_like`` from the lower
layers the chapter itself uses, not by copying its code:

1. a per-channel scale ``gamma`` (init 1) after every hidden conv/linear layer, the
   analogue of a norm layer's scale (``lenet5_like`` has no norm layers);
2. the weights fake-quantized to 8 bits in the forward pass (``lib.quant.fake_quant``,
   signed, per tensor, straight-through: GS's quantizer);
3. per batch, Adam on the weights and SGD on ``gamma`` on the smooth loss, then the
   proximal step of ``rho |gamma|_1``, ``gamma <- soft_threshold(gamma, rho lr_gamma)``
   (``lib.sparse.projections.soft_threshold``, GS's prox);
4. the smallest-``|gamma|`` channels (global over layers, never a width's last channel)
   zeroed until the 8-bit network meets the size budget (GS's ``magnitude_prune_to_macs``
   does the same with MACs), ``gamma`` folded into the weights, the dead channels masked
   (``lib.sparse.extract.attach_channel_mask``) and the slim network fine-tuned 8-bit with
   ``rho = 0``, as GS fine-tunes the extracted generator.

Our reading: the smooth loss is GS's distillation term on the classifier's output,
``beta |f(x) - f_0(x)|_1`` on the logits (no perceptual term: no images; no GAN term: a
discriminator of logits has no meaning here, GS's own "distill-only" variant); activations
stay float32 in training (the deployable int8 form calibrates them); GS's knobs
(``lr_w``, ``lr_gamma``, ``rho``, ``beta``, the slimming/fine-tuning split of the steps)
are the gan_slimming chapter's defaults at the matching scale.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lib.core import IndexBatches, derive_seed
from lib.quant.fake_quant import attach_fake_quant
from lib.sparse import bake, prunable_layers
from lib.sparse.extract import attach_channel_mask
from lib.sparse.projections import soft_threshold
from lib.vision.models import lenet5_like


class ChannelScale(nn.Module):
    """``y = gamma * x`` per channel (dim 1), the slimming gate of one layer."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1, -1] + [1] * (x.dim() - 2)
        return x * self.gamma.view(shape)


def with_scales(model: nn.Sequential) -> tuple[nn.Sequential, list[ChannelScale]]:
    """``model``'s layers (shared, not copied) with a ``ChannelScale`` after every hidden
    conv/linear layer (the output layer keeps its classes)."""
    hidden = {id(m) for _, m in prunable_layers(model)[:-1]}
    layers, scales = [], []
    for m in model:
        layers.append(m)
        if id(m) in hidden:
            scales.append(ChannelScale(m.weight.shape[0]).to(m.weight.device))
            layers.append(scales[-1])
    return nn.Sequential(*layers), scales


def slim_weights(model: nn.Module, keep: list[torch.Tensor]) -> int:
    """Weights of ``lenet5_like`` after removing the channels not in ``keep`` (hidden
    layers in order). Exact: the extracted network is ``lenet5_like`` at those widths."""
    w = [int(k.sum()) for k in keep]
    net = lenet5_like(widths=(w[0], w[1]), hidden=(w[2], w[3]))
    return sum(m.weight.numel() for _, m in prunable_layers(net))


def cut_to_budget(gammas: list[torch.Tensor], model: nn.Module, max_weights: int
                  ) -> list[torch.Tensor]:
    """Keep masks: zero-gamma channels dropped, then the smallest ``|gamma|`` globally
    until the slim network has at most ``max_weights`` weights; never a width's last
    channel (its largest gate stays)."""
    keep = [g.detach().abs() > 0 for g in gammas]
    for k, g in zip(keep, gammas, strict=True):
        if not bool(k.any()):
            k[int(g.detach().abs().argmax())] = True
    order = sorted(((float(g.detach().abs()[i]), li, i) for li, g in enumerate(gammas)
                    for i in range(g.numel()) if keep[li][i]))
    for _, li, i in order:
        if slim_weights(model, keep) <= max_weights:
            break
        if int(keep[li].sum()) > 1:
            keep[li][i] = False
    return keep


def _loss(model: nn.Module, teacher_logits: torch.Tensor, x: torch.Tensor, beta: float
          ) -> torch.Tensor:
    return beta * (model(x) - teacher_logits).abs().mean()


def gs_classifier(model: nn.Sequential, teacher: nn.Module, x_train: torch.Tensor, *,
                  steps: int, finetune_steps: int, batch_size: int, lr_w: float,
                  lr_gamma: float, rho: float, beta: float, bits: int, max_weights: int,
                  seed: int) -> dict[str, Any]:
    """GS on a classifier, in place on ``model`` (a ``lenet5_like``): ``steps`` slimming
    steps (prox of ``rho |gamma|_1``), the cut to ``max_weights`` weights, ``gamma``
    folded, ``finetune_steps`` 8-bit fine-tuning; returns the kept channels and the gates."""
    from lib.core import limit_steps

    batches = IndexBatches(len(x_train), batch_size, derive_seed(seed, "gs"))
    with torch.no_grad():
        teacher_logits = torch.cat([teacher(x_train[i:i + 1000])
                                    for i in range(0, len(x_train), 1000)])
    layers = prunable_layers(model)
    for _, layer in layers:
        attach_fake_quant(layer, bits, symmetric=True)
    gated, scales = with_scales(model)
    gammas = [s.gamma for s in scales]
    ids = {id(g) for g in gammas}
    opt_w = torch.optim.Adam([p for p in gated.parameters() if id(p) not in ids], lr=lr_w,
                             betas=(0.5, 0.999))
    opt_g = torch.optim.SGD(gammas, lr=lr_gamma)
    gated.train()
    for step in range(limit_steps(steps)):
        idx = batches.indices(step)
        loss = _loss(gated, teacher_logits[idx], x_train[idx], beta)
        opt_w.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_w.step()
        opt_g.step()
        with torch.no_grad():  # the proximal step of rho |gamma|_1
            for g in gammas:
                g.copy_(soft_threshold(g, rho * lr_gamma))
    gates = [g.detach().clone() for g in gammas]
    keep = cut_to_budget(gates, model, max_weights)
    bake(model)  # the 8-bit weights, then gamma folded into them (exact: before the ReLU)
    with torch.no_grad():
        for (_, layer), g, k in zip(layers, gates, keep, strict=False):
            scale = torch.where(k, g, torch.zeros_like(g))
            layer.weight.mul_(scale.view([-1] + [1] * (layer.weight.dim() - 1)))
            layer.bias.mul_(scale)
    for (_, layer), k in zip(layers, keep, strict=False):
        attach_channel_mask(layer, k)
    for _, layer in layers:
        attach_fake_quant(layer, bits, symmetric=True)
    opt = torch.optim.Adam(model.parameters(), lr=lr_w, betas=(0.5, 0.999))
    model.train()
    for step in range(limit_steps(finetune_steps)):
        idx = batches.indices(steps + step)
        loss = _loss(model, teacher_logits[idx], x_train[idx], beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    bake(model)
    model.eval()
    return {"keep": [k.tolist() for k in keep], "gates": gates,
            "gamma_zero": float(torch.cat([g == 0 for g in gates]).float().mean())}
