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
from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from lib.sparse.extract import Residual, extract_channel_pruned


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

    # the per-channel protocol of lib.sparse.extract.extract_channel_pruned
    def constant_channels(self) -> torch.Tensor:
        """``gamma_c = 0``: channel ``c`` is exactly zero whatever the input."""
        return self.gamma.detach() == 0

    def channel_constants(self, value: torch.Tensor) -> torch.Tensor:
        """A constant channel normalises to zero: the output is ``gamma * b``."""
        return (self.gamma * self.shift).detach().to(value.dtype)

    def extract_channels(self, keep: torch.Tensor) -> GatedInstanceNorm:
        new = GatedInstanceNorm(int(keep.sum())).to(self.gamma.device)
        with torch.no_grad():
            new.gamma.copy_(self.gamma[keep])
            new.shift.copy_(self.shift[keep])
        return new


class ActivationQuantizer(nn.Module):
    """Uniform unsigned fake quantization of an activation to ``bits`` over
    ``[0, max_value]`` (off while ``bits == 0``).

    ``torch.fake_quantize_per_tensor_affine`` rounds in the forward pass and passes the
    gradient straight through *inside* the range and zero outside it (the clipped
    straight-through estimator): right for an activation clamped to ``[0, 4]``, unlike the
    identity straight-through of ``lib.quant.fake_quantize`` used for weights.
    """

    elementwise = True  # for lib.sparse.extract

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


class ResidualBlock(Residual):
    """``x + N2(conv2(Q(relu(N1(conv1(x))))))`` (CycleGAN's block, reflection padding); a
    ``lib.sparse.extract.Residual``, so extraction prunes the stream consistently."""

    def __init__(self, channels: int, inner: int):
        super().__init__(nn.Sequential(OrderedDict(
            conv1=_conv(channels, inner, 3), norm1=GatedInstanceNorm(inner), relu1=nn.ReLU(),
            act1=ActivationQuantizer(), conv2=_conv(inner, channels, 3),
            norm2=GatedInstanceNorm(channels))))

    conv1 = property(lambda self: self.body.conv1)
    norm1 = property(lambda self: self.body.norm1)
    act1 = property(lambda self: self.body.act1)
    conv2 = property(lambda self: self.body.conv2)
    norm2 = property(lambda self: self.body.norm2)


def _stage(name: str, conv: nn.Module, width: int) -> list[tuple[str, nn.Module]]:
    return [(name, conv), (f"{name}_norm", GatedInstanceNorm(width)),
            (f"{name}_relu", nn.ReLU()), (f"{name}_act", ActivationQuantizer())]


class ResnetGenerator(nn.Module):
    """The CycleGAN ResNet generator (two stride-2 downsamplings, ``B`` residual blocks,
    two transposed-convolution upsamplings), widths given by ``widths``.

    Everything before the final ``tanh`` (and the input skip) is one ``nn.Sequential``,
    ``layers``, which ``lib.sparse.extract.extract_channel_pruned`` extracts; the named
    parts (``stem``, ``stem_norm``, ``blocks``, ``up1``, ``head``, ...) are views into it."""

    def __init__(self, widths: GeneratorWidths, input_skip: bool = False):
        super().__init__()
        w = self.widths = widths
        self.input_skip = bool(input_skip)
        parts = _stage("stem", _conv(3, w.c1, 7), w.c1)
        parts += _stage("down1", _conv(w.c1, w.c2, 3, 2), w.c2)
        parts += _stage("down2", _conv(w.c2, w.c3, 3, 2), w.c3)
        parts += [(f"block{k}", ResidualBlock(w.c3, m)) for k, m in enumerate(w.inner)]
        parts += _stage("up1", nn.ConvTranspose2d(w.c3, w.u1, 3, 2, padding=1,
                                                  output_padding=1, bias=False), w.u1)
        parts += _stage("up2", nn.ConvTranspose2d(w.u1, w.u2, 3, 2, padding=1,
                                                  output_padding=1, bias=False), w.u2)
        parts.append(("head", _conv(w.u2, 3, 7, bias=True)))
        self.layers = nn.Sequential(OrderedDict(parts))

    @classmethod
    def from_layers(cls, layers: nn.Sequential, input_skip: bool) -> ResnetGenerator:
        """The generator around ``layers`` (an extracted ``layers``: its widths are read
        from the convolutions)."""
        n = sum(1 for k in layers._modules if k.startswith("block"))
        widths = GeneratorWidths(
            c1=layers.stem.out_channels, c2=layers.down1.out_channels,
            c3=layers.down2.out_channels,
            inner=tuple(getattr(layers, f"block{k}").conv1.out_channels for k in range(n)),
            u1=layers.up1.out_channels, u2=layers.up2.out_channels)
        gen = cls(widths, input_skip)
        gen.layers = layers
        return gen

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            layers = self._modules.get("layers")
            if layers is not None and name in layers._modules:
                return layers._modules[name]
            raise

    @property
    def blocks(self) -> list[ResidualBlock]:
        return [m for k, m in self.layers.named_children() if k.startswith("block")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layers(x)
        if self.input_skip:  # the head predicts a correction of the input (before tanh)
            return torch.tanh(h + torch.atanh(x.clamp(-0.99, 0.99)))
        return torch.tanh(h)


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
    if not keep.any():  # keep one (zero) channel, as extraction does
        keep[0] = True
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
    output as ``gen``: ``lib.sparse.extract.extract_channel_pruned`` on ``gen.layers`` (the
    residual stream keeps the union of its gates). Weights are read through their
    parametrizations (a fake quantizer's grid values are baked in); activation quantizers
    keep their settings."""
    example = torch.zeros(1, 3, 16, 16, device=gen.head.weight.device)
    layers = extract_channel_pruned(gen.layers, example)
    return ResnetGenerator.from_layers(layers, gen.input_skip).train(gen.training)


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
