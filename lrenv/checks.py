"""Checks of plain values shared by the env, its schedules and the agents.

A bool is an ``int`` to Python (``isinstance(True, int)``), so a check that asks only for
an ``int`` takes ``True`` as the count 1 or the learning rate 1.0: a typo such as
``total_steps=True`` would then run instead of failing. Every integer and rate check goes
through this module so that all of them refuse bools alike.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np


def is_real(value: Any) -> bool:
    """Whether ``value`` is a real number (numpy scalars included), and not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_integer(value: Any, numpy_ints: bool = False) -> bool:
    """Whether ``value`` is a Python ``int`` (with ``numpy_ints``, a numpy integer too) and
    not a bool.

    Numpy integers are refused by default: values that end up in JSON files (configs,
    schedule descriptions) must be Python ints.
    """
    if isinstance(value, (bool, np.bool_)):
        return False
    return isinstance(value, numbers.Integral if numpy_ints else int)


def check_integer(
    value: Any,
    name: str,
    minimum: int = 1,
    allowed: str | None = None,
    numpy_ints: bool = False,
) -> int:
    """``value`` as an ``int``; ValueError naming ``name`` unless it is an integer (not a
    bool) of at least ``minimum``.

    Args:
        value: the value to check.
        name: what the message calls it.
        minimum: the smallest value allowed.
        allowed: how the message describes what is allowed (default: "a positive integer"
            for ``minimum=1``, else "an integer >= minimum").
        numpy_ints: accept numpy integers as well (:func:`is_integer`).

    Returns:
        ``int(value)``.

    Raises:
        ValueError: ``"{name} must be {allowed}, got {value!r}"``.
    """
    if not (is_integer(value, numpy_ints) and value >= minimum):
        if allowed is None:
            allowed = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def check_bool(value: Any, name: str) -> None:
    """ValueError naming ``name`` unless ``value`` is ``True`` or ``False`` (not 1 or 0)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_rate(lr: Any) -> None:
    """ValueError unless ``lr`` is a positive, finite ``int`` or ``float`` (not a bool)."""
    if not (isinstance(lr, int | float) and not isinstance(lr, bool) and math.isfinite(lr)):
        raise ValueError(f"a learning rate must be positive and finite, got {lr!r}")
    if lr <= 0:
        raise ValueError(f"a learning rate must be positive and finite, got {lr!r}")
