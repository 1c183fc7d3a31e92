"""Image-to-image GAN parts: a CycleGAN-style ResNet generator whose normalization layers
carry channel scales ``gamma``, a PatchGAN discriminator, the LSGAN loss, an image replay
buffer, an activation fake quantizer, a perceptual (feature + Gram) loss, and the
physical extraction of a channel-pruned generator.

The generator (Zhu et al., 2017; Johnson et al., 2016), for widths ``c1, c2, c3`` (the
residual stream), ``m_k`` (block ``k``'s inner width) and ``u1, u2``::

    x -> c7s1-c1 -> d-c2 -> d-c3 -> [R_k: c3 -> m_k -> c3, added to the stream] x B
      -> u-u1 (ConvTranspose) -> u-u2 (ConvTranspose) -> c7s1-3 -> tanh

Every convolution but the last is followed by a :class:`GatedInstanceNorm`,
``y = gamma (x_hat + b)`` with ``x_hat`` the instance-normalised input: ``gamma`` is the
channel's scale factor, and ``gamma_c = 0`` makes channel ``c`` exactly zero, so it can be
removed. (**Our reading**: torch's affine ``InstanceNorm2d`` computes ``gamma x_hat + beta``
with an independent ``beta``; a zero-gamma channel then still emits the constant
``relu(beta)``, which folds into the next layer's bias exactly only under reflection
padding, not through a transposed convolution. Scaling the shift by ``gamma`` keeps the
same function class while any ``gamma != 0`` and makes a pruned channel exactly zero.)

A stream channel of the residual part is zero only when the gates of ``d-c3`` and of every
block's output all are: extraction keeps the union (residual-aware), and the extracted
network computes exactly what the masked one does.

``input_skip`` (**our reading**, off in CycleGAN): the output is
``tanh(head(h) + atanh(x))``, a correction of the input. Instance normalization removes each
crop's mean colour at the first layer; on the tutorial's 32-pixel crops the plain generator
cannot recover it (its held-out error then exceeds the identity's), the skip hands it on.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


# --------------------------------------------------------------------------- layers
class GatedInstanceNorm(nn.Module):
    """``gamma * (InstanceNorm(x) + b)`` per channel: ``gamma`` the channel scale."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.gamma = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma.view(1, -1, 1, 1) * (self.norm(x) + self.shift.view(1, -1, 1, 1))


class ActivationQuantizer(nn.Module):
    """Uniform unsigned fake quantization of an activation to ``bits`` over
    ``[0, max_value]`` (off while ``bits == 0``).

    ``torch.fake_quantize_per_tensor_affine`` rounds in the forward pass and passes the
    gradient straight through *inside* the range and zero outside it (the clipped
    straight-through estimator): right for an activation clamped to ``[0, 4]``, unlike the
    identity straight-through of ``lib.quant.fake_quantize`` used for weights.
    """

    def __init__(self, bits: int = 0, max_value: float = 4.0):
        super().__init__()
        self.bits, self.max_value = int(bits), float(max_value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.bits:
            return x
        q_max = 2 ** self.bits - 1
        return torch.fake_quantize_per_tensor_affine(x, self.max_value / q_max, 0, 0, q_max)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, max_value={self.max_value}"


@dataclass(frozen=True)
class GeneratorWidths:
    """Channel counts of a :class:`ResnetGenerator` (``inner``: one per residual block)."""

    c1: int
    c2: int
    c3: int
    inner: tuple[int, ...]
    u1: int
    u2: int

    @classmethod
    def dense(cls, ngf: int, n_blocks: int) -> GeneratorWidths:
        return cls(ngf, 2 * ngf, 4 * ngf, (4 * ngf,) * n_blocks, 2 * ngf, ngf)

    def as_dict(self) -> dict[str, int]:
        d = {"stem": self.c1, "down1": self.c2, "stream": self.c3}
        d.update({f"block{k}.inner": m for k, m in enumerate(self.inner)})
        d.update({"up1": self.u1, "up2": self.u2})
        return d


def _conv(cin: int, cout: int, k: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=bias,
                     padding_mode="reflect" if stride == 1 else "zeros")


class ResidualBlock(nn.Module):
    """``x + N2(conv2(Q(relu(N1(conv1(x))))))`` (CycleGAN's block, reflection padding)."""

    def __init__(self, channels: int, inner: int):
        super().__init__()
        self.conv1, self.norm1 = _conv(channels, inner, 3), GatedInstanceNorm(inner)
        self.act1 = ActivationQuantizer()
        self.conv2, self.norm2 = _conv(inner, channels, 3), GatedInstanceNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(F.relu(self.norm1(self.conv1(x))))
        return x + self.norm2(self.conv2(h))


class ResnetGenerator(nn.Module):
    """The CycleGAN ResNet generator (two stride-2 downsamplings, ``B`` residual blocks,
    two transposed-convolution upsamplings), widths given by ``widths``."""

    def __init__(self, widths: GeneratorWidths, input_skip: bool = False):
        super().__init__()
        w = self.widths = widths
        self.input_skip = bool(input_skip)
        self.stem, self.stem_norm = _conv(3, w.c1, 7), GatedInstanceNorm(w.c1)
        self.down1, self.down1_norm = _conv(w.c1, w.c2, 3, 2), GatedInstanceNorm(w.c2)
        self.down2, self.down2_norm = _conv(w.c2, w.c3, 3, 2), GatedInstanceNorm(w.c3)
        self.blocks = nn.ModuleList(ResidualBlock(w.c3, m) for m in w.inner)
        self.up1 = nn.ConvTranspose2d(w.c3, w.u1, 3, 2, padding=1, output_padding=1,
                                      bias=False)
        self.up1_norm = GatedInstanceNorm(w.u1)
        self.up2 = nn.ConvTranspose2d(w.u1, w.u2, 3, 2, padding=1, output_padding=1,
                                      bias=False)
        self.up2_norm = GatedInstanceNorm(w.u2)
        self.head = _conv(w.u2, 3, 7, bias=True)
        self.acts = nn.ModuleDict({k: ActivationQuantizer()
                                   for k in ("stem", "down1", "down2", "up1", "up2")})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.acts
        h = a["stem"](F.relu(self.stem_norm(self.stem(x))))
        h = a["down1"](F.relu(self.down1_norm(self.down1(h))))
        h = a["down2"](F.relu(self.down2_norm(self.down2(h))))
        for block in self.blocks:
            h = block(h)
        h = a["up1"](F.relu(self.up1_norm(self.up1(h))))
        h = a["up2"](F.relu(self.up2_norm(self.up2(h))))
        if self.input_skip:  # the head predicts a correction of the input (before tanh)
            return torch.tanh(self.head(h) + torch.atanh(x.clamp(-0.99, 0.99)))
        return torch.tanh(self.head(h))


def resnet_generator(ngf: int = 8, n_blocks: int = 3, input_skip: bool = False
                     ) -> ResnetGenerator:
    return ResnetGenerator(GeneratorWidths.dense(ngf, n_blocks), input_skip)


def gates(gen: ResnetGenerator) -> dict[str, GatedInstanceNorm]:
    """Every channel gate of ``gen`` by name (``block{k}.out`` sit on the stream)."""
    out = {"stem": gen.stem_norm, "down1": gen.down1_norm, "down2": gen.down2_norm}
    for k, b in enumerate(gen.blocks):
        out[f"block{k}.inner"] = b.norm1
        out[f"block{k}.out"] = b.norm2
    out.update({"up1": gen.up1_norm, "up2": gen.up2_norm})
    return out


def gamma_parameters(gen: ResnetGenerator) -> list[nn.Parameter]:
    return [g.gamma for g in gates(gen).values()]


def set_activation_bits(gen: nn.Module, bits: int, max_value: float = 4.0) -> None:
    """Turn every activation quantizer of ``gen`` on (``bits``) or off (``0``)."""
    for m in gen.modules():
        if isinstance(m, ActivationQuantizer):
            m.bits, m.max_value = int(bits), float(max_value)


def _nonzero(g: torch.Tensor) -> torch.Tensor:
    keep = g.detach() != 0
    if not keep.any():  # keep one (zero) channel: a layer of width 0 cannot be built
        keep[int(g.detach().abs().argmax())] = True
    return keep


def kept_channels(gen: ResnetGenerator) -> dict[str, torch.Tensor]:
    """Boolean masks of the channels extraction keeps, by width name of
    :meth:`GeneratorWidths.as_dict` (the stream: the union over its gates)."""
    stream = gen.down2_norm.gamma.detach() != 0
    for b in gen.blocks:
        stream = stream | (b.norm2.gamma.detach() != 0)
    if not stream.any():
        stream[0] = True
    keep = {"stem": _nonzero(gen.stem_norm.gamma), "down1": _nonzero(gen.down1_norm.gamma),
            "stream": stream}
    for k, b in enumerate(gen.blocks):
        keep[f"block{k}.inner"] = _nonzero(b.norm1.gamma)
    keep["up1"] = _nonzero(gen.up1_norm.gamma)
    keep["up2"] = _nonzero(gen.up2_norm.gamma)
    return keep


@torch.no_grad()
def extract_slim_generator(gen: ResnetGenerator) -> ResnetGenerator:
    """A physically smaller generator without the zero-gamma channels, computing the same
    output as ``gen``. Weights are read through their parametrizations (a fake quantizer's
    grid values are baked in); activation quantizers keep their settings."""
    keep = kept_channels(gen)
    widths = GeneratorWidths(
        c1=int(keep["stem"].sum()), c2=int(keep["down1"].sum()), c3=int(keep["stream"].sum()),
        inner=tuple(int(keep[f"block{k}.inner"].sum()) for k in range(len(gen.blocks))),
        u1=int(keep["up1"].sum()), u2=int(keep["up2"].sum()))
    slim = ResnetGenerator(widths, gen.input_skip).to(gen.head.bias.device)
    rgb = torch.ones(3, dtype=torch.bool, device=keep["stem"].device)

    def conv(dst: nn.Conv2d, src: nn.Conv2d, out_keep, in_keep) -> None:
        dst.weight.copy_(src.weight.detach()[out_keep][:, in_keep])
        if src.bias is not None:
            dst.bias.copy_(src.bias.detach()[out_keep])

    def convt(dst: nn.ConvTranspose2d, src: nn.ConvTranspose2d, out_keep, in_keep) -> None:
        dst.weight.copy_(src.weight.detach()[in_keep][:, out_keep])  # (in, out, k, k)

    def norm(dst: GatedInstanceNorm, src: GatedInstanceNorm, k) -> None:
        dst.gamma.copy_(src.gamma.detach()[k])
        dst.shift.copy_(src.shift.detach()[k])

    conv(slim.stem, gen.stem, keep["stem"], rgb)
    norm(slim.stem_norm, gen.stem_norm, keep["stem"])
    conv(slim.down1, gen.down1, keep["down1"], keep["stem"])
    norm(slim.down1_norm, gen.down1_norm, keep["down1"])
    conv(slim.down2, gen.down2, keep["stream"], keep["down1"])
    norm(slim.down2_norm, gen.down2_norm, keep["stream"])
    for k, (bs, bg) in enumerate(zip(slim.blocks, gen.blocks, strict=True)):
        inner = keep[f"block{k}.inner"]
        conv(bs.conv1, bg.conv1, inner, keep["stream"])
        norm(bs.norm1, bg.norm1, inner)
        conv(bs.conv2, bg.conv2, keep["stream"], inner)
        norm(bs.norm2, bg.norm2, keep["stream"])
    convt(slim.up1, gen.up1, keep["up1"], keep["stream"])
    norm(slim.up1_norm, gen.up1_norm, keep["up1"])
    convt(slim.up2, gen.up2, keep["up2"], keep["up1"])
    norm(slim.up2_norm, gen.up2_norm, keep["up2"])
    conv(slim.head, gen.head, rgb, keep["up2"])
    src_q = [m for m in gen.modules() if isinstance(m, ActivationQuantizer)]
    dst_q = [m for m in slim.modules() if isinstance(m, ActivationQuantizer)]
    for d, s in zip(dst_q, src_q, strict=True):
        d.bits, d.max_value = s.bits, s.max_value
    return slim


def generator_macs(widths: GeneratorWidths, size: int) -> int:
    """Multiply-accumulates of one ``size x size`` image through a generator of
    ``widths`` (closed form; ``lib.energy.layer_costs`` measures the same)."""
    w, s2, s4 = widths, (size // 2) ** 2, (size // 4) ** 2
    full = size * size
    macs = 3 * w.c1 * 49 * full + w.c1 * w.c2 * 9 * s2 + w.c2 * w.c3 * 9 * s4
    macs += sum(2 * w.c3 * m * 9 * s4 for m in w.inner)
    macs += w.c3 * w.u1 * 9 * s4 + w.u1 * w.u2 * 9 * s2  # transposed: per input position
    macs += w.u2 * 3 * 49 * full
    return macs


def with_widths(widths: GeneratorWidths, **changes) -> GeneratorWidths:
    return replace(widths, **changes)


# --------------------------------------------------------------------------- discriminator
def patch_discriminator(ndf: int = 16, n_layers: int = 2) -> nn.Sequential:
    """PatchGAN (Isola et al., 2017): 4x4 convolutions, stride 2 then 1, leaky ReLUs, one
    real/fake score per overlapping patch."""
    layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
    ch = ndf
    for i in range(1, n_layers + 1):
        nxt = ndf * min(2 ** i, 8)
        layers += [nn.Conv2d(ch, nxt, 4, 2 if i < n_layers else 1, 1, bias=False),
                   nn.InstanceNorm2d(nxt, affine=True), nn.LeakyReLU(0.2)]
        ch = nxt
    layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
    return nn.Sequential(*layers)


def lsgan_loss(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al., 2017): ``mean((D - 1)^2)`` for real,
    ``mean(D^2)`` for fake."""
    return ((scores - (1.0 if real else 0.0)) ** 2).mean()


class ImagePool:
    """CycleGAN's replay buffer of generated images: the discriminator sees, per image, with
    probability 1/2 an older generated image (which the new one replaces in the buffer)."""

    def __init__(self, size: int, seed: int):
        self.size, self.images = int(size), []
        self.gen = torch.Generator().manual_seed(seed)

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for img in batch.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif float(torch.rand((), generator=self.gen)) < 0.5:
                i = int(torch.randint(len(self.images), (), generator=self.gen))
                out.append(self.images[i].clone())
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)


# --------------------------------------------------------------------------- perceptual
def feature_network(seed: int, width: int = 16, depth: int = 3) -> nn.Sequential:
    """A small fixed convolutional feature network (seeded random weights, frozen): the
    tutorial's stand-in for VGG in the perceptual loss (random convolutional features carry
    texture statistics well enough for Gram-matrix losses: Ustyuzhaninov et al., 2017)."""
    g = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    ch = 3
    for i in range(depth):
        conv = nn.Conv2d(ch, width * 2 ** i, 3, 2 if i else 1, 1)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=g)
                              * (2.0 / (ch * 9)) ** 0.5)
            conv.bias.zero_()
        layers += [conv, nn.ReLU()]
        ch = width * 2 ** i
    net = nn.Sequential(*layers).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _features(net: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for layer in net:
        x = layer(x)
        if isinstance(layer, nn.ReLU):
            out.append(x)
    return out


def gram(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def perceptual_loss(net: nn.Sequential, x: torch.Tensor, target: torch.Tensor,
                    style: float = 1.0) -> torch.Tensor:
    """Feature (content) plus Gram-matrix (style) distance of ``x`` to ``target``
    (Johnson et al., 2016), summed over the ReLU outputs of ``net``."""
    loss = x.new_zeros(())
    with torch.no_grad():
        ft = _features(net, target)
    for fx, fy in zip(_features(net, x), ft, strict=True):
        loss = loss + F.mse_loss(fx, fy) + style * F.mse_loss(gram(fx), gram(fy))
    return loss


def deepcopy_frozen(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m
