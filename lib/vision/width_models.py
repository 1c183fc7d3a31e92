"""ImageNet networks of any layer widths, as plain ``nn.Sequential`` (channel extraction and
width measurement apply): MobileNet (v1, Howard et al., 2017) and AlexNet.

``widths`` lists the hidden widths between dense layers, the ones a width-compression method
changes (ECC's ``s_1 .. s_{L-1}``); the input channels (3) and the classes are fixed. The
dense defaults are the papers' networks: MobileNet's 32-64-128-128-256-256-512x6-1024-1024
channels (its 13 depthwise-separable blocks; the depthwise convolution of a block follows the
width of its input) and AlexNet's 64-192-384-256-256 channels and 4096-4096 hidden units
(torchvision's layout, so torchvision's weights load by name).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

MOBILENET_WIDTHS = (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)
MOBILENET_STRIDES = (2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
ALEXNET_WIDTHS = (64, 192, 384, 256, 256, 4096, 4096)


def _check(widths: Sequence[int], n: int, name: str) -> tuple[int, ...]:
    widths = tuple(int(w) for w in widths)
    if len(widths) != n or min(widths) < 1:
        raise ValueError(f"{name} takes {n} positive widths, got {widths}")
    return widths


def mobilenet_v1(widths: Sequence[int] = MOBILENET_WIDTHS, n_classes: int = 1000,
                 in_channels: int = 3) -> nn.Sequential:
    """MobileNet v1 (224x224 inputs): conv 3x3 stride 2, 13 blocks of depthwise 3x3 +
    pointwise 1x1 convolutions (each with BatchNorm and ReLU), global pool, linear."""
    w = _check(widths, len(MOBILENET_WIDTHS), "mobilenet_v1")
    layers: list[nn.Module] = [nn.Conv2d(in_channels, w[0], 3, MOBILENET_STRIDES[0], 1,
                                         bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True)]
    for i in range(1, len(w)):
        inp, out, stride = w[i - 1], w[i], MOBILENET_STRIDES[i]
        layers += [nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
                   nn.BatchNorm2d(inp), nn.ReLU(inplace=True),
                   nn.Conv2d(inp, out, 1, 1, 0, bias=False), nn.BatchNorm2d(out),
                   nn.ReLU(inplace=True)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w[-1], n_classes)]
    return nn.Sequential(*layers)


def alexnet_widths(widths: Sequence[int] = ALEXNET_WIDTHS, n_classes: int = 1000,
                   dropout: float = 0.5) -> nn.Sequential:
    """AlexNet as torchvision builds it (same parameter names), with any widths."""
    w = _check(widths, len(ALEXNET_WIDTHS), "alexnet_widths")
    features = nn.Sequential(
        nn.Conv2d(3, w[0], 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(w[0], w[1], 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(w[1], w[2], 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(w[2], w[3], 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(w[3], w[4], 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2))
    classifier = nn.Sequential(
        nn.Dropout(dropout), nn.Linear(w[4] * 36, w[5]), nn.ReLU(inplace=True),
        nn.Dropout(dropout), nn.Linear(w[5], w[6]), nn.ReLU(inplace=True),
        nn.Linear(w[6], n_classes))
    return nn.Sequential(OrderedDict(features=features, avgpool=nn.AdaptiveAvgPool2d(6),
                                     flatten=nn.Flatten(), classifier=classifier))
