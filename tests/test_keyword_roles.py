"""The one classification of env keywords (lrenv.keyword_roles) matches the env."""

from lrenv.env import env_defaults
from lrenv.keyword_roles import (
    CONTROLLER_INTERFACE_KEYS,
    RUNTIME_KEYS,
    SCHEDULER_SETTINGS,
    TASK_KEYS,
)


def test_every_classified_keyword_is_one_the_env_takes():
    known = set(env_defaults())
    for role in (TASK_KEYS, CONTROLLER_INTERFACE_KEYS, SCHEDULER_SETTINGS, RUNTIME_KEYS):
        assert set(role) <= known, set(role) - known


def test_runtime_keywords_change_nothing_a_task_or_controller_is_defined_by():
    others = {*TASK_KEYS, *CONTROLLER_INTERFACE_KEYS, *SCHEDULER_SETTINGS}
    assert not set(RUNTIME_KEYS) & others


def test_the_scheduler_reads_every_interface_keyword_or_the_contract_checks_it():
    """An interface keyword the scheduler does not take is one the controller contract
    checks against the user's optimizer, or one the scheduler refuses (beta_factor); a
    new interface keyword must be placed."""
    checked_by_the_contract = {"optimizer", "warmup_steps"}
    refused_by_the_scheduler = {"beta_factor", "beta_once"}
    assert set(CONTROLLER_INTERFACE_KEYS) - set(SCHEDULER_SETTINGS) == (
        checked_by_the_contract | refused_by_the_scheduler
    )
