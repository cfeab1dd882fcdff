"""How many CPU threads torch uses while an env trains its trainee.

torch starts with one intra-op thread per core. A trainee's small matrix products gain
little from more (two threads are 1.3-1.5x one on an idle two-core machine, see
docs/benchmarks.md#threads), but when other work holds the cores, threads that wait for
each other make training many times slower: a client that never called
``torch.set_num_threads`` ran 25x slower on a busy machine. So the env computes with
``torch_threads`` threads (default 1) and gives the caller's setting back after each call:
the caller's own torch code is unaffected.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

from lrenv.checks import check_integer

F = TypeVar("F", bound=Callable[..., Any])


def check_torch_threads(threads: Any) -> None:
    """ValueError unless ``threads`` is ``None`` or a positive integer."""
    if threads is not None:
        check_integer(threads, "torch_threads", allowed="None or a positive integer")


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Within: torch computes with ``threads`` intra-op threads; the count is restored after.

    ``None``, or the count already in effect, changes nothing (a change costs about a
    millisecond, as torch resizes its thread pool).
    """
    saved = torch.get_num_threads()
    if threads is None or threads == saved:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def with_torch_threads(method: F) -> F:
    """Decorate a method of an object with a ``torch_threads`` attribute: the method runs
    with that many torch threads (:func:`torch_threads`)."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with torch_threads(self.torch_threads):
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
