"""What evaluate.py writes: results.json, results.md, trajectories.json and the figures.

Everything here reads a finished :class:`agents.comparison.Comparison`; nothing runs a
trainee.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from agents.baselines import schedule_from_dict
from agents.comparison import Comparison
from agents.jobs import RunResult, finite_or_none
from agents.statistics import SIGNIFICANCE
from agents.tasks import METHOD_LABELS, METHODS
from lrenv.trace import EpisodeTrace


def write_report(comparison: Comparison, out: str | os.PathLike) -> list[Path]:
    """Write results.json, results.md, trajectories.json and the figures into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "results.json", out / "results.md", out / "trajectories.json"]
    paths[0].write_text(json.dumps(comparison.to_dict(), indent=2, default=_jsonable) + "\n")
    paths[1].write_text(results_markdown(comparison))
    trajectories = [
        {"method": r.method, "seed": r.seed, **_trace_record(r.trajectory)}
        for r in comparison.results
    ]
    paths[2].write_text(json.dumps(finite_or_none(trajectories)) + "\n")
    paths.append(plot_validation_loss(comparison, out / "val_loss.png"))
    paths.append(plot_lr_schedules(comparison, out / "lr_schedule.png"))
    return paths


def _trace_record(trace: EpisodeTrace) -> dict[str, Any]:
    """A trace as trajectories.json holds it; ``beta`` only where a controller set it."""
    record = asdict(trace)
    if not record["beta"]:
        del record["beta"]
    return record


def _mean_std(entry: Mapping[str, float], key: str) -> str:
    mean, std = entry[f"{key}_mean"], entry[f"{key}_std"]
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def _p(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    text = f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"
    return text + ("*" if value < SIGNIFICANCE else "")


def _schedule_text(comparison: Comparison, method: str) -> str:
    if method == "controller":
        saved = comparison.config.get("controller_config") or {}
        kind = "RecurrentPPO, LSTM" if saved.get("recurrent") else "PPO, MLP"
        episodes = saved.get("episodes_done", saved.get("episodes"))
        trained = f", {episodes} training episodes" if episodes else ""
        return f"learned ({kind}{trained}), deterministic actions"
    return schedule_from_dict(comparison.selections[method].best).describe()


def results_markdown(comparison: Comparison) -> str:
    """results.md: the paper's Table 1 / Table 2 row and the per-method table with p-values."""
    c = comparison
    s = c.summary
    ref = c.reference
    seeds = sorted({r.seed for r in c.results})
    transfer = not c.baseline_task.same_task_as(c.task)
    lines = [
        f"# Evaluation on {c.task.label}",
        "",
        f"- **Evaluation task:** `{c.task.describe()}`.",
    ]
    if "controller" in s:
        trained = "unknown (not saved with the controller)"
        if c.controller_task is not None:
            same = c.controller_task.same_task_as(c.task)
            trained = f"`{c.controller_task.describe()}`" + (
                " (the evaluation task)" if same else " (transfer)"
            )
        lines.append(f"- **Controller tuned (trained) on:** {trained}.")
    if c.selections:
        where = f"`{c.baseline_task.describe(controller_keys=False)}`" + (
            " (transfer: chosen there, re-run here)" if transfer else " (the evaluation task)"
        )
        lines.append(
            f"- **Baselines tuned on:** {where}, by best validation loss only; each runs "
            "plain SGD at its own rates (schedule-free SGD its own optimizer), whatever the "
            "controller's interface keywords."
        )
    lines += [
        f"- **Runs:** {len(seeds)} per method on seeds {seeds[0]}-{seeds[-1]}, the same for "
        "every method; each run's best-validation checkpoint is tested once.",
        "",
    ]

    if "controller" in s and "step_decay" in s:
        p = c.p_values["step_decay"]
        base, ours = s["step_decay"], s["controller"]

        def mark(key: str) -> str:
            return "*" if p[key]["p"] < SIGNIFICANCE else ""

        lines += [
            "## Paper format (Table 2)" if transfer else "## Paper format (Table 1)",
            "",
            "Test loss / accuracy, mean over runs; `*` the learned controller differs from "
            "the step-decay baseline at p < 0.05.",
            "",
            "| task | step-decay baseline | learned |",
            "| --- | --- | --- |",
            f"| {c.task.describe()} | {base['test_loss_mean']:.4f} / "
            f"{base['test_accuracy_mean']:.4f} | {ours['test_loss_mean']:.4f}"
            f"{mark('test_loss')} / {ours['test_accuracy_mean']:.4f}{mark('test_accuracy')} |",
            "",
            verdict(c),
            "",
        ]

    lines += [
        "## All methods",
        "",
        f"Test loss and accuracy, mean ± sample std over runs; p: two-sided t-tests against "
        f"the {METHOD_LABELS[ref]}, Student's / Welch's (`*` p < 0.05).",
        "",
        "| method | schedule | tuned on | runs | test loss | test accuracy | p (loss) | "
        "p (accuracy) | diverged |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method in _ordered(s):
        entry = s[method]
        if method == "controller":
            tuned = c.controller_task.env_id if c.controller_task else "?"
        else:
            tuned = c.baseline_task.env_id
        pv = c.p_values.get(method)
        p_loss = "—" if pv is None else _p_pair(pv["test_loss"])
        p_acc = "—" if pv is None else _p_pair(pv["test_accuracy"])
        lines.append(
            f"| {METHOD_LABELS[method]} | {_schedule_text(c, method)} | {tuned} | "
            f"{entry['runs']} | {_mean_std(entry, 'test_loss')} | "
            f"{_mean_std(entry, 'test_accuracy')} | {p_loss} | {p_acc} | {entry['diverged']} |"
        )

    if "controller" in s and len(s) > 1:
        lines += ["", against_every_family(c)]
    if "schedule_free" in s:
        lines += [
            "",
            "Schedule-free SGD (`schedulefree.SGDScheduleFree`, momentum 0.9) changes the "
            "optimizer, not only the rate: it trains at an interpolation of two weight "
            "sequences and is evaluated at their running average. Every validation pass, the "
            "best-validation checkpoint and its test pass use that average (the optimizer's "
            "eval mode); its rate is constant after the optimizer's own warmup. Every other "
            "method trains with plain SGD (momentum 0).",
        ]
    if c.selections:
        lines += [
            "",
            "## Baseline selection (validation only)",
            "",
            f"On {c.baseline_task.label} (each schedule sets the rate of plain SGD exactly; "
            "schedule-free SGD runs its own optimizer; a controller's keywords such as its "
            "base schedule do not apply), seeds "
            f"{', '.join(map(str, next(iter(c.selections.values())).seeds))}; score: best "
            "validation loss of the run (mean over seeds). Each family's grid is every "
            "combination of the values listed. All scores are in results.json.",
            "",
            "| family | grid | candidates | chosen | its best validation loss | runner-up |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for method, sel in c.selections.items():
            ranked = sorted(sel.scores, key=lambda x: x["best_val_loss"])
            runner_up = (
                f"{ranked[1]['description']} ({ranked[1]['best_val_loss']:.4f})"
                if len(ranked) > 1
                else "—"
            )
            lines.append(
                f"| {METHOD_LABELS[method]} | {_grid_text(sel.scores)} | {len(sel.scores)} | "
                f"{ranked[0]['description']} | {ranked[0]['best_val_loss']:.4f} | {runner_up} |"
            )
    lines += [
        "",
        "Figures: `val_loss.png` (validation loss over SGD steps, mean ± std over runs), "
        "`lr_schedule.png` (learning rates over SGD steps).",
        "",
    ]
    return "\n".join(lines)


def against_every_family(comparison: Comparison) -> str:
    """One sentence per outcome: which baseline families the controller beats, ties and loses
    to, on mean test loss, where "beats" needs p < 0.05 by Student's and by Welch's test."""
    s, tests = comparison.summary, comparison.p_values
    beats, loses, ties = [], [], []
    for method in _ordered(s):
        if method == "controller":
            continue
        diff = s["controller"]["test_loss_mean"] - s[method]["test_loss_mean"]
        p = tests[method]["test_loss"]
        significant = max(p["p"], p["welch_p"]) < SIGNIFICANCE
        text = f"{METHOD_LABELS[method]} ({diff:+.4f}, p = {p['p']:.2g} / {p['welch_p']:.2g})"
        (beats if significant and diff < 0 else loses if significant else ties).append(text)
    parts = [
        f"{label}: {', '.join(items)}"
        for label, items in (("beats", beats), ("ties", ties), ("loses to", loses))
        if items
    ]
    return (
        "**Against every family** (difference of mean test loss, controller minus baseline; "
        "p Student's / Welch's; a win or loss needs both below 0.05). The controller "
        + "; ".join(parts)
        + "."
    )


def _p_pair(test: Mapping[str, float]) -> str:
    return f"{_p(test['p'])} / {_p(test.get('welch_p', math.nan))}"


def _grid_text(scores: Sequence[Mapping[str, Any]]) -> str:
    """The values tried per parameter, e.g. ``peak_lr 0.5, 0.3; cooldown 0.1, 0.2``."""
    values: dict[str, list[Any]] = {}
    for score in scores:
        for key, value in score["schedule"].items():
            if key != "kind" and value not in values.setdefault(key, []):
                values[key].append(value)
    return "; ".join(f"{k} {', '.join(f'{v:g}' for v in vs)}" for k, vs in values.items())


def verdict(comparison: Comparison) -> str:
    """One honest sentence on the controller against the step-decay baseline."""
    s, p = comparison.summary, comparison.p_values["step_decay"]["test_loss"]["p"]
    diff = s["controller"]["test_loss_mean"] - s["step_decay"]["test_loss_mean"]
    direction = "lower (better)" if diff < 0 else "higher (worse)"
    if math.isnan(p):
        judged = "no t-test is possible with fewer than two runs"
    elif p < SIGNIFICANCE:
        judged = f"significant at p < {SIGNIFICANCE} (p = {p:.2g})"
    else:
        judged = f"not significant (p = {p:.2g})"
    return (
        f"The learned controller's mean test loss is {abs(diff):.4f} {direction} than the "
        f"best step-decay schedule's; {judged}."
    )


_COLORS = {
    "controller": "C3",
    "step_decay": "C0",
    "constant": "C7",
    "cosine": "C2",
    "linear": "C8",
    "wsd": "C1",
    "plateau": "C4",
    "schedule_free": "C9",
}


def _curves(runs: Sequence[RunResult], steps_key: str, values_key: str):
    """Common x, and a (runs, x) array of values with NaN where a run has none."""
    xs = sorted({x for r in runs for x in getattr(r.trajectory, steps_key)})
    index = {x: i for i, x in enumerate(xs)}
    values = np.full((len(runs), len(xs)), np.nan)
    for row, r in enumerate(runs):
        steps, values_of = getattr(r.trajectory, steps_key), getattr(r.trajectory, values_key)
        for x, v in zip(steps, values_of, strict=True):
            values[row, index[x]] = v
    return np.array(xs), values


def _nan_mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and std over the finite entries (NaN where a column has none)."""
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    filled = np.where(finite, values, 0.0)
    some = count > 0  # NaN where no run is left (all diverged before)
    mean = np.divide(filled.sum(axis=0), count, out=np.full(count.shape, np.nan), where=some)
    squares = (np.where(finite, values - mean, 0.0) ** 2).sum(axis=0)
    var = np.divide(squares, count, out=np.full(count.shape, np.nan), where=some)
    return mean, np.sqrt(var)


def _figure(width: float = 7.0, height: float = 4.5):
    from matplotlib.figure import Figure  # the object API: no pyplot, no GUI backend

    fig = Figure(figsize=(width, height), dpi=120, layout="constrained")
    return fig, fig.subplots()


def _log_y(ax: Any) -> None:
    """A log y axis labelled with plain numbers (0.3, 0.5, 1) rather than powers of ten."""
    from matplotlib.ticker import LogLocator, ScalarFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter(useOffset=False))
    ax.yaxis.get_minor_formatter().set_scientific(False)
    ax.tick_params(axis="y", which="minor", labelleft=False)


def _legend_label(comparison: Comparison, method: str) -> str:
    if method == "controller":
        return METHOD_LABELS[method]
    return f"{METHOD_LABELS[method]} ({_schedule_text(comparison, method)})"


def plot_validation_loss(comparison: Comparison, path: str | os.PathLike) -> Path:
    """Write :func:`validation_loss_figure` to ``path``."""
    validation_loss_figure(comparison).savefig(path)
    return Path(path)


def validation_loss_figure(comparison: Comparison):
    """Validation loss (log scale) over SGD steps: mean line and ± std band per method."""
    fig, ax = _figure()
    for method in _ordered(comparison.summary):
        runs = [r for r in comparison.results if r.method == method]
        xs, values = _curves(runs, "val_steps", "val_loss")
        mean, std = _nan_mean_std(values)
        color = _COLORS[method]
        ax.plot(xs, mean, color=color, lw=2, label=_legend_label(comparison, method))
        low = np.maximum(mean - std, mean * 0.5)  # keep the band positive on a log axis
        ax.fill_between(xs, low, mean + std, color=color, alpha=0.2, lw=0)
    _log_y(ax)
    ax.set_xlabel("SGD step")
    ax.set_ylabel("validation loss (log scale)")
    n = len({r.seed for r in comparison.results})
    ax.set_title(f"Validation loss, mean ± std over {n} runs\n{comparison.task.label}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def plot_lr_schedules(comparison: Comparison, path: str | os.PathLike) -> Path:
    """Write :func:`lr_schedule_figure` to ``path``."""
    lr_schedule_figure(comparison).savefig(path)
    return Path(path)


def lr_schedule_figure(comparison: Comparison):
    """Learning rate (log scale) over SGD steps: one line per method whose runs share their
    rates (a fixed schedule), every run's line where they differ (the controller's, and
    reduce-on-plateau's, which follow each run's validation loss)."""
    fig, ax = _figure()
    for method in _ordered(comparison.summary):
        runs = [r for r in comparison.results if r.method == method]
        color = _COLORS[method]
        lines = {tuple(map(tuple, r.trajectory.rate_line())) for r in runs}
        if len(lines) > 1:  # rates that differ by run: the controller's, plateau's
            for i, r in enumerate(runs):
                steps, lrs = r.trajectory.rate_line()
                label = (
                    f"{_legend_label(comparison, method)} ({len(runs)} runs)" if i == 0 else None
                )
                ax.plot(steps, lrs, color=color, lw=1, alpha=0.6, label=label)
        else:  # a fixed schedule: every run has the same rates
            steps, lrs = runs[0].trajectory.rate_line()
            ax.plot(steps, lrs, color=color, lw=2, ls="--", label=_legend_label(comparison, method))
    ax.set_yscale("log")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("learning rate (log scale)")
    ax.set_title(f"Learning-rate schedules\n{comparison.task.label}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def _ordered(summary: Mapping[str, Any]) -> list[str]:
    return [m for m in METHODS if m in summary]


def _jsonable(value: Any) -> Any:
    """numpy scalars and arrays (e.g. in a saved controller's config) as plain JSON values."""
    if isinstance(value, np.generic | np.ndarray):
        return finite_or_none(value.tolist())
    return str(value)
