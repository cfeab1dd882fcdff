"""lrenv: learning-rate schedules learned with reinforcement learning.

``import lrenv`` registers the environments with Gymnasium:

- ``lrenv/LRSchedule-v0``: the general environment; every keyword of
  :class:`lrenv.env.LRScheduleEnv` may be passed to ``gym.make``.
- ``lrenv/FashionMNIST-CNN-v0``, ``lrenv/FashionMNIST-ResNet-v0``, ``lrenv/CIFAR10-CNN-v0``,
  ``lrenv/CIFAR10-ResNet-v0``: the paper's settings (batch 1000, 1000 SGD steps, a
  decision every 10 steps, initial rate drawn from {1e-2, 1e-3, 1e-4}).
- ``lrenv/FashionMNIST-MLP-v0``: the cpu preset's task (an MLP 784-128-10 at batch 128,
  500 SGD steps, a 2k validation subset), a training run in about a second on a CPU.
- ``lrenv/FashionMNIST-CNN-CPU-v0``, ``lrenv/CIFAR10-CNN-CPU-v0``: the paper's LeNet on its
  two datasets at CPU scale (the cpu-cnn and cpu-cifar presets' tasks): batch 128, 300 SGD
  steps, a decision every 10, a 1k validation subset; an episode in about 3 to 4 seconds on
  one CPU core.
- ``lrenv/Synthetic-v0``: a tiny in-memory task (an MLP, 200 SGD steps of batch 64) that
  runs an episode in about a second on a CPU; for tests and demos.
- ``lrenv/TaskSet-v0``: a task set (:mod:`lrenv.task_sets`): each episode one task of the
  set's ``split`` (``"train"`` or the held-out ``"test"``), drawn with the reset seed
  (:class:`lrenv.task_set_env.TaskSetEnv`).
"""

from __future__ import annotations

from typing import Any

from gymnasium.envs.registration import register

from lrenv.keyword_roles import TASK_KEYS

__all__ = ["FEATURE_NAMES", "PAPER_FEATURES", "TASK_KEYS", "TASK_SET_DEFAULTS"]
__version__ = "0.1.0"

_ENTRY_POINT = "lrenv.env:LRScheduleEnv"


def _paper_task(dataset: str, model: str) -> dict:
    """The paper's settings: batch 1000, 1000 SGD steps, a decision every 10, all 10k
    validation examples."""
    return {
        "dataset": dataset,
        "model": model,
        "batch_size": 1000,
        "total_steps": 1000,
        "steps_per_action": 10,
        "val_size": None,
    }


_VECTOR_ENTRY_POINT = "lrenv.vector:make_vector_env"


def _register(env_id: str, task: dict | None = None) -> None:
    """Register ``env_id`` with its pinned ``task`` keywords (none: the general env).

    Every id gets the batched vector entry point, so ``gym.make_vec(env_id, num_envs=N)``
    trains N trainees as one computation. A named id's spec carries its decisions per
    episode as ``max_episode_steps``: ``gym.make`` then adds a ``TimeLimit`` that ends the
    episode at the very step the env ends it itself. The general id's episode length is
    whatever its keywords say, so its spec claims none (a number there would cut longer
    episodes short, or be wrong for shorter ones).
    """
    register(
        id=env_id,
        entry_point=_ENTRY_POINT,
        vector_entry_point=_VECTOR_ENTRY_POINT,
        kwargs=task or {},
        max_episode_steps=None if task is None else task["total_steps"] // task["steps_per_action"],
    )


_register("lrenv/LRSchedule-v0")
_register("lrenv/FashionMNIST-CNN-v0", _paper_task("fashion_mnist", "cnn"))
_register("lrenv/FashionMNIST-ResNet-v0", _paper_task("fashion_mnist", "resnet"))
_register("lrenv/CIFAR10-CNN-v0", _paper_task("cifar10", "cnn"))
_register("lrenv/CIFAR10-ResNet-v0", _paper_task("cifar10", "resnet"))
# The cpu preset's task: an MLP 784-128-10 at batch 128, 500 SGD steps, a 2k validation subset.
_register(
    "lrenv/FashionMNIST-MLP-v0",
    {
        "dataset": "fashion_mnist",
        "model": "mlp",
        "batch_size": 128,
        "total_steps": 500,
        "steps_per_action": 10,
        "val_size": 2000,
    },
)


def _cpu_cnn_task(dataset: str) -> dict:
    """The paper's LeNet at CPU scale: batch 128, 300 SGD steps, a decision every 10, a 1k
    validation subset."""
    return {
        "dataset": dataset,
        "model": "cnn",
        "batch_size": 128,
        "total_steps": 300,
        "steps_per_action": 10,
        "val_size": 1000,
    }


_register("lrenv/FashionMNIST-CNN-CPU-v0", _cpu_cnn_task("fashion_mnist"))
_register("lrenv/CIFAR10-CNN-CPU-v0", _cpu_cnn_task("cifar10"))
_register(
    "lrenv/Synthetic-v0",
    {
        "dataset": "synthetic",
        "model": "mlp",
        "batch_size": 64,
        "total_steps": 200,
        "steps_per_action": 10,
        "val_size": None,
    },
)

# A task set: every episode one of many tasks (lrenv.task_sets). Its tasks differ in length,
# so the spec claims no episode length; no batched vector entry point (a batch trains one
# task), so gym.make_vec uses Gymnasium's sync or async vector envs.
TASK_SET_DEFAULTS = {"feature_transform": "relative", "progress_feature": True, "reward": "delta"}
"""What ``lrenv/TaskSet-v0`` registers beyond its set and split: observations that mean the
same on every task (losses relative to the start, log-scaled variances, progress) and the
reward that sums to the final loss."""
register(
    id="lrenv/TaskSet-v0",
    entry_point="lrenv.task_set_env:TaskSetEnv",
    kwargs={"task_set": "default", "split": "train", **TASK_SET_DEFAULTS},
)


def __getattr__(name: str) -> Any:
    """``FEATURE_NAMES`` and ``PAPER_FEATURES`` from :mod:`lrenv.features`, read on first
    use: ``import lrenv`` registers the ids without importing torch, so that a script can
    check its command line before the heavy imports."""
    if name in ("FEATURE_NAMES", "PAPER_FEATURES"):
        from lrenv import features

        return getattr(features, name)
    raise AttributeError(f"module 'lrenv' has no attribute {name!r}")
