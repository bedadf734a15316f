"""The models, built by name for a dataset's input shape and class count.

Every convolutional model works on 1-D signals (`n x c x L`, e.g. MNIST-1D) with ``Conv1d``
and on images (`n x c x H x W`) with ``Conv2d``: the layer types follow the input's rank.

* ``cnn``: the MNIST-1D CNN of Greydanus (2020): three convolutions (kernels 5, 3, 3, stride 2,
  padding 1, ``channels`` = 25 each, ReLU) and a linear layer; 5,210 parameters on MNIST-1D.
* ``mlp``: the MNIST-1D MLP: ``depth`` hidden layers of ``hidden`` = 100 units with ReLU.
* ``convnet``: the NOS surrogate ConvNet: Conv3x3(base) -> BN -> Swish, Conv3x3(2 base, stride 2)
  -> BN -> Swish, Conv3x3(4 base, stride 2) -> BN -> Swish, global average pooling, dropout 0.2,
  linear. ``base`` = 48 gives 0.212M parameters on CIFAR-10, as in the paper.
* ``resnet20``: He et al. (2016) CIFAR ResNet-20: 3 stages of 3 basic blocks, 16/32/64 channels,
  option-A (zero-padding) shortcuts.
* ``vgg16``: VGG-16 with BatchNorm for 32x32 inputs, one linear classifier.
* ``resnet34``: ResNet-34 (basic blocks 3-4-6-3, 64..512 channels), 3x3 stem, for 32x32 inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MODELS: tuple[str, ...] = ("cnn", "mlp", "convnet", "resnet20", "vgg16", "resnet34")


def build_model(
    name: str, input_shape: tuple[int, ...], num_classes: int, **options: Any
) -> nn.Module:
    """Build a model for inputs of ``input_shape`` (one example, channels first).

    Args:
        name: One of ``MODELS``.
        input_shape: ``(channels, length)`` for signals or ``(channels, height, width)``;
            ``(features,)`` for tabular data (the ``mlp`` only).
        num_classes: Number of outputs (classes, or regression targets).
        **options: Model-specific: ``channels`` (cnn), ``hidden`` and ``depth`` (mlp), ``base``
            and ``dropout`` (convnet), ``width`` (resnet20).

    Raises:
        ValueError: Unknown ``name`` (the message lists the known ones), an unsupported input
            rank, or an option the model does not take.

    Example:
        >>> m = build_model("cnn", (1, 40), 10)
        >>> sum(p.numel() for p in m.parameters())
        5210
    """
    if name not in _BUILDERS:
        raise ValueError(f"Unknown model {name!r}; known models: {', '.join(MODELS)}.")
    if len(input_shape) not in (2, 3) and not (name == "mlp" and len(input_shape) == 1):
        raise ValueError(
            f"`input_shape` must be (channels, length) or (channels, height, width) "
            f"(or (features,) for the mlp), but got input_shape={tuple(input_shape)!r}."
        )
    builder, allowed = _BUILDERS[name]
    unknown = set(options) - set(allowed)
    if unknown:
        raise ValueError(
            f"Model {name!r} takes the options {sorted(allowed)}, but got {sorted(unknown)}."
        )
    return builder(tuple(input_shape), num_classes, **options)


# ---------------------------------------------------------------------------------------------
# Layers by input rank
# ---------------------------------------------------------------------------------------------


def _conv(ndim: int) -> type[nn.Module]:
    return nn.Conv1d if ndim == 1 else nn.Conv2d


def _bn(ndim: int) -> type[nn.Module]:
    return nn.BatchNorm1d if ndim == 1 else nn.BatchNorm2d


def _feature_size(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).numel())


# ---------------------------------------------------------------------------------------------
# MNIST-1D models
# ---------------------------------------------------------------------------------------------


class MNIST1DCNN(nn.Module):
    """Greydanus's MNIST-1D ``ConvBase``: 3 strided convolutions and a linear read-out."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, channels: int = 25):
        super().__init__()
        conv = _conv(len(input_shape) - 1)
        c_in = input_shape[0]
        self.features = nn.Sequential(
            conv(c_in, channels, 5, stride=2, padding=1),
            nn.ReLU(),
            conv(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            conv(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.linear = nn.Linear(_feature_size(self.features, input_shape), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.features(x))


class MLP(nn.Module):
    """Greydanus's MNIST-1D MLP: ``depth`` hidden layers of ``hidden`` units with ReLU."""

    def __init__(
        self, input_shape: tuple[int, ...], num_classes: int, hidden: int = 100, depth: int = 2
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


# ---------------------------------------------------------------------------------------------
# The NOS surrogate ConvNet
# ---------------------------------------------------------------------------------------------


class ConvNet(nn.Module):
    """The NOS surrogate: 3 conv layers with BN and Swish; layers 2 and 3 have stride 2 and
    double the channels; global average pooling, dropout, linear."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        base: int = 48,
        dropout: float = 0.2,
    ):
        super().__init__()
        ndim = len(input_shape) - 1
        conv, bn = _conv(ndim), _bn(ndim)
        pool = nn.AdaptiveAvgPool1d(1) if ndim == 1 else nn.AdaptiveAvgPool2d(1)
        c = input_shape[0]
        self.features = nn.Sequential(
            conv(c, base, 3, padding=1, bias=True),
            bn(base),
            nn.SiLU(),
            conv(base, 2 * base, 3, stride=2, padding=1, bias=True),
            bn(2 * base),
            nn.SiLU(),
            conv(2 * base, 4 * base, 3, stride=2, padding=1, bias=True),
            bn(4 * base),
            nn.SiLU(),
            pool,
            nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(4 * base, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.dropout(self.features(x)))


# ---------------------------------------------------------------------------------------------
# ResNets and VGG
# ---------------------------------------------------------------------------------------------


class _BasicBlock(nn.Module):
    def __init__(self, ndim: int, c_in: int, c_out: int, stride: int, shortcut: str):
        super().__init__()
        conv, bn = _conv(ndim), _bn(ndim)
        self.conv1 = conv(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = bn(c_out)
        self.conv2 = conv(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = bn(c_out)
        self.shortcut: Callable[[Tensor], Tensor]
        if stride == 1 and c_in == c_out:
            self.shortcut = nn.Identity()
        elif shortcut == "pad":  # He et al.'s option A for CIFAR: subsample and zero-pad
            pad = c_out - c_in
            self.shortcut = _PadShortcut(stride, pad)
        else:  # option B: 1x1 projection
            self.shortcut = nn.Sequential(
                conv(c_in, c_out, 1, stride=stride, bias=False), bn(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _PadShortcut(nn.Module):
    def __init__(self, stride: int, pad: int):
        super().__init__()
        self.stride, self.pad = stride, pad

    def forward(self, x: Tensor) -> Tensor:
        x = x[(..., *([slice(None, None, self.stride)] * (x.ndim - 2)))]
        half = self.pad // 2
        zeros = [0, 0] * (x.ndim - 2) + [half, self.pad - half]
        return F.pad(x, zeros)


class ResNet(nn.Module):
    """A ResNet of basic blocks for small inputs (3x3 stem, no max-pool)."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        blocks: tuple[int, ...],
        widths: tuple[int, ...],
        shortcut: str,
    ):
        super().__init__()
        ndim = len(input_shape) - 1
        conv, bn = _conv(ndim), _bn(ndim)
        pool = nn.AdaptiveAvgPool1d(1) if ndim == 1 else nn.AdaptiveAvgPool2d(1)
        layers: list[nn.Module] = [
            conv(input_shape[0], widths[0], 3, padding=1, bias=False),
            bn(widths[0]),
            nn.ReLU(),
        ]
        c = widths[0]
        for stage, (n, w) in enumerate(zip(blocks, widths)):
            for b in range(n):
                stride = 2 if (stage > 0 and b == 0) else 1
                layers.append(_BasicBlock(ndim, c, w, stride, shortcut))
                c = w
        layers += [pool, nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.features(x))


_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    """VGG-16 with BatchNorm for small inputs; a max-pool is skipped once the feature map is
    down to one element, so short signals and small images work too."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        ndim = len(input_shape) - 1
        conv, bn = _conv(ndim), _bn(ndim)
        maxpool = nn.MaxPool1d if ndim == 1 else nn.MaxPool2d
        layers: list[nn.Module] = []
        c, size = input_shape[0], min(input_shape[1:])
        for v in _VGG16:
            if v == "M":
                if size >= 2:
                    layers.append(maxpool(2))
                    size //= 2
                continue
            layers += [conv(c, v, 3, padding=1), bn(v), nn.ReLU()]
            c = int(v)
        pool = nn.AdaptiveAvgPool1d(1) if ndim == 1 else nn.AdaptiveAvgPool2d(1)
        layers += [pool, nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(c, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.features(x))


def _resnet20(input_shape: tuple[int, ...], num_classes: int, width: int = 16) -> nn.Module:
    return ResNet(input_shape, num_classes, (3, 3, 3), (width, 2 * width, 4 * width), "pad")


def _resnet34(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    return ResNet(input_shape, num_classes, (3, 4, 6, 3), (64, 128, 256, 512), "projection")


_BUILDERS: dict[str, tuple[Callable[..., nn.Module], tuple[str, ...]]] = {
    "cnn": (MNIST1DCNN, ("channels",)),
    "mlp": (MLP, ("hidden", "depth")),
    "convnet": (ConvNet, ("base", "dropout")),
    "resnet20": (_resnet20, ("width",)),
    "vgg16": (VGG, ()),
    "resnet34": (_resnet34, ()),
}


def model_options(name: str) -> tuple[str, ...]:
    """The options a named model takes (``build_model``'s keyword arguments).

    Raises:
        ValueError: Unknown ``name``.

    Example:
        >>> model_options("mlp")
        ('hidden', 'depth')
    """
    if name not in _BUILDERS:
        raise ValueError(f"Unknown model {name!r}; known models: {', '.join(MODELS)}.")
    return _BUILDERS[name][1]
