"""Image classifiers used by the compression chapters.

``small_cnn`` is the embedded-data model: a plain ``nn.Sequential`` (so channel extraction
applies) of two 3x3 conv blocks and two linear layers. The full-scale models are the ones of
Yang et al. (2020)'s experiments: Caffe's LeNet-5 for MNIST, the CIFAR ResNet-20 of He et
al. (2016; 16-32-64 channels, 3 stages of 3 basic blocks), the CIFAR ResNet-50 (bottleneck
blocks, 64-512 channels, 3-4-6-3 blocks, as in the official code) and torchvision's AlexNet.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def small_cnn(channels: tuple[int, int] = (16, 32), hidden: int = 64, image_size: int = 16,
              in_channels: int = 1, n_classes: int = 10) -> nn.Sequential:
    """conv3x3-ReLU-pool, conv3x3-ReLU-pool, flatten, linear-ReLU, linear."""
    if image_size % 4:
        raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
    c1, c2 = channels
    side = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * side * side, hidden), nn.ReLU(),
        nn.Linear(hidden, n_classes))


def lenet5_like(widths: tuple[int, int] = (16, 48), hidden: tuple[int, int] = (128, 96),
                image_size: int = 28, in_channels: int = 1,
                n_classes: int = 10) -> nn.Sequential:
    """The compression chapters' shared network for the embedded synthetic digits:
    conv 5x5 - ReLU - pool, conv 5x5 - ReLU - pool, three linear layers (LeNet-5's shape).

    With the defaults on 28x28 inputs it has 131 k weights in five layers of very different
    size and role (0.4 k, 19 k, 98 k, 12 k and 1 k), so a per-layer budget (sparsity, bits,
    energy, channels) has something to allocate, and 1.6 M multiply-accumulates an image.
    A plain ``nn.Sequential``: channel extraction and MAC counting apply directly.
    """
    if (image_size - 4) % 2 or ((image_size - 4) // 2 - 4) % 2 or image_size < 16:
        raise ValueError(f"image_size {image_size}: need (s - 4) / 2 - 4 even and >= 2 "
                         f"(28 and 32 work)")
    c1, c2 = widths
    h1, h2 = hidden
    side = ((image_size - 4) // 2 - 4) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(c2 * side * side, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(),
        nn.Linear(h2, n_classes))


def lenet5() -> nn.Sequential:
    """Caffe's LeNet-5 for 28x28 MNIST: conv 20 5x5, pool, conv 50 5x5, pool, fc 500, fc 10
    (431 k weights)."""
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(50 * 4 * 4, 500), nn.ReLU(), nn.Linear(500, 10))


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm; a 1x1 projection shortcut when the shape changes."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4), with BatchNorm and a projection shortcut."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes * 4:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes * 4, 1, stride, bias=False),
                                          nn.BatchNorm2d(planes * 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs: a 3x3 stem, stages of blocks, global average pool, linear."""

    def __init__(self, block: type[nn.Module], blocks: tuple[int, ...], widths: tuple[int, ...],
                 n_classes: int = 10):
        super().__init__()
        self.in_planes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages = []
        for i, (n, w) in enumerate(zip(blocks, widths, strict=True)):
            strides = [1 if i == 0 else 2] + [1] * (n - 1)
            layers = []
            for s in strides:
                layers.append(block(self.in_planes, w, s))
                self.in_planes = w * block.expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.linear = nn.Linear(self.in_planes, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(F.relu(self.bn1(self.conv1(x))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def resnet20(n_classes: int = 10) -> CifarResNet:
    """ResNet-20 for CIFAR (0.27 M weights)."""
    return CifarResNet(BasicBlock, (3, 3, 3), (16, 32, 64), n_classes)


def resnet50_cifar(n_classes: int = 10) -> CifarResNet:
    """ResNet-50 with bottlenecks for CIFAR, as in the official code (23.5 M weights)."""
    return CifarResNet(Bottleneck, (3, 4, 6, 3), (64, 128, 256, 512), n_classes)


def resnet34_cifar(n_classes: int = 10) -> CifarResNet:
    """ResNet-34 for 32x32 inputs (basic blocks 3-4-6-3, 21.3 M weights), ATMC's CIFAR
    network."""
    return CifarResNet(BasicBlock, (3, 4, 6, 3), (64, 128, 256, 512), n_classes)


class WideBasic(nn.Module):
    """Pre-activation wide block (Zagoruyko & Komodakis, 2016): BN-ReLU-conv3x3 twice, a
    1x1 convolution on the shortcut when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(in_planes, planes, 1, stride, bias=False)
                         if stride != 1 or in_planes != planes else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + skip


def wide_resnet(depth: int = 16, widen: int = 4, n_classes: int = 10) -> nn.Sequential:
    """WRN-``depth``-``widen`` for 32x32 inputs ((depth - 4) / 6 blocks a stage, widths 16k,
    32k, 64k); WRN-16-4 (2.7 M weights) is the usual SVHN network."""
    if (depth - 4) % 6:
        raise ValueError(f"depth must be 6n + 4, got {depth}")
    n = (depth - 4) // 6
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)]
    planes = 16
    for i, w in enumerate((16 * widen, 32 * widen, 64 * widen)):
        for j in range(n):
            layers.append(WideBasic(planes, w, 2 if i and not j else 1))
            planes = w
    layers += [nn.BatchNorm2d(planes), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
               nn.Linear(planes, n_classes)]
    return nn.Sequential(*layers)


def alexnet(n_classes: int = 1000, dropout: float = 0.5) -> nn.Module:
    """torchvision's AlexNet (61 M weights), randomly initialised."""
    from torchvision.models import alexnet as tv_alexnet

    return tv_alexnet(weights=None, num_classes=n_classes, dropout=dropout)


MODELS = {"small_cnn": small_cnn, "lenet5": lenet5, "lenet5_like": lenet5_like,
          "resnet20": resnet20, "resnet34": resnet34_cifar, "wide_resnet": wide_resnet,
          "resnet50": resnet50_cifar, "alexnet": alexnet}


def build_model(name: str, **kwargs) -> nn.Module:
    """A model by name (``MODELS``); unknown names list the valid ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models are {', '.join(MODELS)}")
    return MODELS[name](**kwargs)
