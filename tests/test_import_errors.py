"""An id Gymnasium cannot find, here or in a worker, says `import lrenv` or "lrenv:"
(a bare "namespace lrenv not found" does not say what to do)."""

from __future__ import annotations

import functools

import pytest

from agents.env_factory import make_env, subproc_vec_env
from agents.tasks import Task
from lrenv.vector import max_episode_steps


@pytest.mark.parametrize("env_id", ["lrenvs/Synthetic-v0", "lrenv/Synthetic-v9"])
def test_unknown_id_lists_lrenv_ids(env_id):
    says = rf"'{env_id}' is not a registered environment; lrenv's ids: .*lrenv/Synthetic-v0"
    with pytest.raises(ValueError, match=says):
        max_episode_steps(env_id, {})
    with pytest.raises(ValueError, match=says):
        Task(env_id).make(keep_best=False)


@pytest.mark.slow  # spawns two worker processes: about 10 s on a busy two-core machine
def test_a_dead_subproc_worker_reports_its_error():
    """Not the parent's ConnectionResetError: the error the worker met."""
    factory = functools.partial(make_env, "lrenv/Synthetic-v0", {"dataset": "nope"})
    with pytest.raises(ValueError, match="unknown dataset 'nope'"):
        subproc_vec_env(factory, 2)
