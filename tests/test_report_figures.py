"""What evaluate.py's figures draw, not only that PNG files appear: each method's line is
its runs' data."""

from __future__ import annotations

import numpy as np
import pytest

from agents.comparison import candidates, run_comparison
from agents.pool import Runner
from agents.report import lr_schedule_figure, validation_loss_figure
from agents.tasks import Task

GRIDS = {
    "constant": {"lr": (0.05,)},
    "step_decay": {"initial_lr": (0.1,), "every": (50,), "factor": (0.5,)},
    "plateau": {"initial_lr": (0.1,), "factor": (0.5,), "patience": (1,)},
}


@pytest.fixture(scope="module")
def comparison():
    task = Task("lrenv/Synthetic-v0", {"device": "cpu", "total_steps": 100})
    with Runner(1, progress=False) as runner:
        return run_comparison(runner, task, task, candidates(GRIDS), runs=2, seed=0)


def _lines(figure):
    (ax,) = figure.axes
    return {line.get_label(): line for line in ax.get_lines()}


def test_the_schedule_figure_draws_each_baseline_rate_over_its_sgd_steps(comparison):
    lines = _lines(lr_schedule_figure(comparison))
    step_decay = next(line for label, line in lines.items() if label.startswith("step decay"))
    steps, rates = step_decay.get_data()
    # 0.1 for SGD steps 1-50, then halved: each rate drawn over the steps it applied to
    assert steps[0] == 0 and steps[-1] == 100
    at = dict(zip(np.asarray(steps)[1::2], np.asarray(rates)[1::2], strict=True))
    assert at[50] == pytest.approx(0.1) and at[60] == pytest.approx(0.05)
    constant = next(line for label, line in lines.items() if label.startswith("constant"))
    assert set(np.round(constant.get_ydata(), 12)) == {0.05}


def test_the_validation_figure_draws_each_methods_mean_curve(comparison):
    lines = _lines(validation_loss_figure(comparison))
    for method, label_start in (("constant", "constant"), ("step_decay", "step decay")):
        runs = [r for r in comparison.results if r.method == method]
        mean = np.mean([r.trajectory.val_loss for r in runs], axis=0)
        line = next(line for label, line in lines.items() if label.startswith(label_start))
        np.testing.assert_allclose(line.get_ydata(), mean, rtol=1e-12)


def test_runs_whose_rates_differ_are_drawn_one_line_each(comparison):
    """Reduce-on-plateau's rates follow each run's validation loss: one line per distinct
    run, not the first run's line standing for all."""
    runs = [r for r in comparison.results if r.method == "plateau"]
    distinct = {tuple(map(tuple, r.trajectory.rate_line())) for r in runs}
    (ax,) = lr_schedule_figure(comparison).axes
    color = next(line.get_color() for line in ax.get_lines() if "plateau" in line.get_label())
    drawn = [line for line in ax.get_lines() if line.get_color() == color]
    assert len(distinct) > 1  # the fixture's plateau runs did cut their rates differently
    assert len(drawn) == len(runs)
