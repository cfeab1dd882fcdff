"""The trainee architectures: a LeNet-5-style CNN, ResNet-18 with a CIFAR stem, an MLP.

Each model ends in an ``nn.Linear``: the paper's weight features read that final dense
layer (see :func:`final_linear`).
"""

from __future__ import annotations

import torch
from torch import nn

MODELS = ("cnn", "resnet", "mlp")


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
    """One hidden layer of 128 ReLU units: the fastest trainee, for CPU presets."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

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
        name: ``"cnn"``, ``"resnet"`` or ``"mlp"``.
        image_shape: ``(channels, height, width)`` of the inputs.
        num_classes: number of output logits.
    """
    channels, height, width = image_shape
    if name == "cnn":
        return LeNet(channels, height, num_classes)
    if name == "resnet":
        return resnet18_cifar(channels, num_classes)
    if name == "mlp":
        return MLP(channels * height * width, num_classes)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


def final_linear(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of a model: the 'final dense layer' of the paper's features."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last = module
    if last is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer to read features from")
    return last
