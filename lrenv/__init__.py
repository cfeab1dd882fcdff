"""lrenv: learning-rate schedules learned with reinforcement learning.

``import lrenv`` registers the environments with Gymnasium:

- ``lrenv/LRSchedule-v0``: the general environment; every keyword of
  :class:`lrenv.env.LRScheduleEnv` may be passed to ``gym.make``.
- ``lrenv/FashionMNIST-CNN-v0``, ``lrenv/FashionMNIST-ResNet-v0``, ``lrenv/CIFAR10-CNN-v0``,
  ``lrenv/CIFAR10-ResNet-v0``: the paper's settings (batch 1000, 1000 SGD steps, a
  decision every 10 steps, initial rate drawn from {1e-2, 1e-3, 1e-4}).
- ``lrenv/Synthetic-v0``: a tiny in-memory task (an MLP, 200 SGD steps of batch 64) that
  runs an episode in about a second on a CPU; for tests and demos.
"""

from __future__ import annotations

from gymnasium.envs.registration import register

from lrenv.features import FEATURE_NAMES, PAPER_FEATURES

__all__ = ["FEATURE_NAMES", "PAPER_FEATURES"]
__version__ = "0.1.0"

_ENTRY_POINT = "lrenv.env:LRScheduleEnv"

register(id="lrenv/LRSchedule-v0", entry_point=_ENTRY_POINT)
register(
    id="lrenv/FashionMNIST-CNN-v0",
    entry_point=_ENTRY_POINT,
    kwargs={"dataset": "fashion_mnist", "model": "cnn"},
)
register(
    id="lrenv/FashionMNIST-ResNet-v0",
    entry_point=_ENTRY_POINT,
    kwargs={"dataset": "fashion_mnist", "model": "resnet"},
)
register(
    id="lrenv/CIFAR10-CNN-v0",
    entry_point=_ENTRY_POINT,
    kwargs={"dataset": "cifar10", "model": "cnn"},
)
register(
    id="lrenv/CIFAR10-ResNet-v0",
    entry_point=_ENTRY_POINT,
    kwargs={"dataset": "cifar10", "model": "resnet"},
)
register(
    id="lrenv/Synthetic-v0",
    entry_point=_ENTRY_POINT,
    kwargs={"dataset": "synthetic", "model": "mlp", "batch_size": 64, "total_steps": 200},
)
