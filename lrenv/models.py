"""The trainee architectures: a LeNet-5-style CNN, ResNet-18 with a CIFAR stem, MLPs.

``"mlp"`` is one hidden layer of 128 units; ``"mlp-WxD"`` is ``D`` hidden layers of ``W``
units each (``"mlp-32x1"``, ``"mlp-256x3"``), the widths and depths a task set spans.

Each model ends in an ``nn.Linear``: the paper's weight features read that final dense
layer (see :func:`final_linear`).
"""

from __future__ import annotations

import re

import torch
from torch import nn

MODELS = ("cnn", "resnet", "mlp", "mlp-WxD")
"""The model names; ``"mlp-WxD"`` stands for any width ``W`` and depth ``D`` (see
:func:`mlp_shape`)."""
_MLP_SHAPE = re.compile(r"mlp-([1-9][0-9]*)x([1-9][0-9]*)")
MAX_MLP_WIDTH = 4096
MAX_MLP_DEPTH = 8


def mlp_shape(name: str) -> tuple[int, ...] | None:
    """The hidden widths of the MLP called ``name`` (``"mlp"``: ``(128,)``, ``"mlp-64x2"``:
    ``(64, 64)``), or ``None`` when ``name`` is no MLP's."""
    if name == "mlp":
        return (128,)
    match = _MLP_SHAPE.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        return None
    width, depth = int(match[1]), int(match[2])
    if width > MAX_MLP_WIDTH or depth > MAX_MLP_DEPTH:
        return None
    return (width,) * depth


def check_model(name: str) -> None:
    """ValueError, naming what is allowed, for a model name that builds nothing."""
    if name in ("cnn", "resnet") or mlp_shape(name) is not None:
        return
    raise ValueError(
        f"unknown model {name!r}; choose cnn, resnet, mlp, or mlp-WxD for D hidden layers of "
        f"W units (W <= {MAX_MLP_WIDTH}, D <= {MAX_MLP_DEPTH}), e.g. mlp-64x2"
    )


class LeNet(nn.Module):
    """LeNet-5 style: conv-pool-conv-pool, then three dense layers (120, 84, classes)."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int) -> None:
        super().__init__()
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"LeNet needs images of at least 12x12 pixels, got {image_size}")
        # Pool before ReLU: the two commute (ReLU is monotone), so the network is LeNet's,
        # but ReLU then runs on a quarter of the values (12% faster a step; lrenv.bench).
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(6, 16, 5),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * side * side, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class MLP(nn.Module):
    """ReLU hidden layers of the given widths (default one of 128: the fastest trainee,
    for CPU presets), then a linear layer to the classes."""

    def __init__(
        self, in_features: int, num_classes: int, hidden: int | tuple[int, ...] = 128
    ) -> None:
        super().__init__()
        widths = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        layers: list[nn.Module] = [nn.Flatten()]
        for width in widths:
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        layers.append(nn.Linear(in_features, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def resnet18_cifar(in_channels: int, num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem: a 3x3 stride-1 first conv, no max-pool."""
    from torchvision.models import resnet18

    model = resnet18(num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def build_model(name: str, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Build a fresh model; its initialization draws from torch's current random state.

    Args:
        name: ``"cnn"``, ``"resnet"``, ``"mlp"`` or ``"mlp-WxD"``.
        image_shape: ``(channels, height, width)`` of the inputs.
        num_classes: number of output logits.
    """
    channels, height, width = image_shape
    if name == "cnn":
        return LeNet(channels, height, num_classes)
    if name == "resnet":
        return resnet18_cifar(channels, num_classes)
    check_model(name)
    return MLP(channels * height * width, num_classes, mlp_shape(name))


def final_linear(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of a model: the 'final dense layer' of the paper's features."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer to read features from")
    return last
