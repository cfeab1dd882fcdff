"""Advantages standardised within each task family of a rollout (``family_advantages``).

On a task set, one controller trains on families of tasks whose returns spread very
differently: in the ``cpu-multi`` preset's runs the return's standard deviation over a
quarter of training was 0.2-0.36 on the CIFAR-10 MLPs and 0.02-0.1 on the CIFAR-10 LeNets,
0.05-0.14 on the digits MLPs. PPO standardises advantages over a whole minibatch, so the
families whose returns spread most set the direction of every update, and a consistent
but small signal in another family (on the Fashion-MNIST MLPs a lower schedule-free beta
went with a lower return in every run) is drowned out.

:class:`FamilyAdvantages` records each step's ``info["task_family"]`` (what
``lrenv/TaskSet-v0`` reports) while a rollout is collected and, once stable-baselines3 has
computed the rollout's advantages, standardises them within each family (mean 0, standard
deviation 1), so that every family weighs alike in the update. The critic's targets (the
returns) are left as they are. stable-baselines3 still standardises each minibatch after
this, as always. A family with a single episode in a rollout keeps only the differences
between that episode's decisions.
"""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

FAMILY_KEY = "task_family"
"""The info key naming a step's task family (set by ``lrenv/TaskSet-v0``)."""


def standardized_by_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``values`` standardised within each group: mean 0 and standard deviation 1 per group.

    Args:
        values: any array.
        groups: a label per entry of ``values``, of the same shape.

    Returns:
        A new float array of ``values``' shape; a group whose values are all equal (one
        entry, say) becomes zeros.
    """
    values = np.asarray(values, dtype=np.float64)
    groups = np.asarray(groups)
    if values.shape != groups.shape:
        raise ValueError(f"values {values.shape} and groups {groups.shape} differ in shape")
    out = np.empty_like(values)
    for group in np.unique(groups):
        member = groups == group
        chunk = values[member]
        out[member] = (chunk - chunk.mean()) / (chunk.std() + 1e-8)
    return out


class FamilyAdvantages(BaseCallback):
    """Standardise a rollout's advantages within each task family (see the module doc).

    Raises:
        ValueError: at the first step whose info does not name a task family (an env that
            is not a task set).
    """

    def __init__(self) -> None:
        super().__init__()
        self._families: list[list[str]] = []

    def _on_rollout_start(self) -> None:
        self._families = []

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        missing = [i for i, info in enumerate(infos) if FAMILY_KEY not in info]
        if missing:
            raise ValueError(
                f"family_advantages needs each step's info[{FAMILY_KEY!r}], which env "
                f"{missing[0]} did not report: train on a task set (lrenv/TaskSet-v0) or "
                "leave family_advantages off"
            )
        self._families.append([str(info[FAMILY_KEY]) for info in infos])
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        families = np.array(self._families)
        if families.shape != buffer.advantages.shape:
            raise RuntimeError(
                f"recorded {families.shape} task families for a rollout buffer of "
                f"{buffer.advantages.shape} advantages"
            )
        buffer.advantages[:] = standardized_by_group(buffer.advantages, families)
