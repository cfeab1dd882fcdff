"""Integer and rate checks refuse bools everywhere (``isinstance(True, int)`` is True): a
``True`` where a count or a learning rate belongs raises instead of running as 1."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from agents.baselines import Plateau, ScheduleFree
from agents.pool import Runner
from lrenv.checks import check_integer, check_rate, is_integer
from lrenv.schedule_families import WSD, Constant, StepDecay
from lrenv.vector import BatchedEnvs


@pytest.mark.parametrize(
    "make",
    [
        lambda v: Constant(v),
        lambda v: WSD(v, cooldown=0.2),
        lambda v: StepDecay(0.1, v, 0.9),
        lambda v: Plateau(0.1, 0.5, v),
        lambda v: ScheduleFree(0.1, v),
        lambda v: Runner(workers=v),
        lambda v: Runner(max_batch=v),
        lambda v: BatchedEnvs(v, "lrenv/Synthetic-v0"),
        lambda v: gym.make("lrenv/Synthetic-v0", total_steps=v),
        lambda v: gym.make("lrenv/Synthetic-v0", val_size=v),
        lambda v: gym.make("lrenv/Synthetic-v0", torch_threads=v),
        lambda v: gym.make("lrenv/Synthetic-v0", optimizer="schedule_free", warmup_steps=v),
    ],
)
@pytest.mark.parametrize("value", [True, False])
def test_a_bool_is_neither_a_count_nor_a_rate(make, value):
    with pytest.raises(ValueError, match="must be"):
        make(value)


def test_check_integer_names_the_value_and_what_is_allowed():
    assert check_integer(3, "n") == 3 and check_integer(0, "k", 0) == 0
    assert check_integer(np.int64(4), "n", numpy_ints=True) == 4
    assert type(check_integer(np.int64(4), "n", numpy_ints=True)) is int
    for value, message in [
        (0, "n must be a positive integer, got 0"),
        (np.int64(4), "n must be a positive integer, got np.int64(4)"),
        (2.0, "n must be a positive integer, got 2.0"),
        ("3", "n must be a positive integer, got '3'"),
    ]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            check_integer(value, "n")
    with pytest.raises(ValueError, match=r"k must be an integer >= 2, got 1"):
        check_integer(1, "k", 2)
    assert not is_integer(np.True_, numpy_ints=True)
    check_rate(0.1)
    check_rate(1)
    for bad in (0, -0.1, float("nan"), float("inf"), True, "0.1", None):
        with pytest.raises(ValueError, match="a learning rate must be positive and finite"):
            check_rate(bad)
