"""What makes a learned controller win: train controllers for a set of design choices,
select on validation, and test them against tuned baselines.

    python -m agents.ablation --out runs/ablation              # ~60-90 min on 2 cores
    python -m agents.ablation --out runs/ablation-quick --quick # minutes

Every design is trained with ``train.py`` for each training seed, then run on the same
evaluation seeds as the baselines (step decay over the paper's 48-grid, cosine and
constant, each chosen on validation loss only) with its best-validation checkpoint
tested once. The table gives each design's test loss and accuracy (mean and std over
evaluation runs pooled over training seeds; the spread of the per-seed means), and the
t-test p-values against each baseline. Designs are ranked by validation loss, never test.

The run is resumable: finished trainings and evaluations are kept in ``--out`` and
skipped; an interrupted training continues from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.evaluation import (
    Job,
    Runner,
    RunResult,
    Task,
    candidates,
    select_baselines,
    t_test,
)
from lrenv.presets import get_preset

ROOT = Path(__file__).resolve().parent.parent
EVAL_SEED = 1000  # evaluation seeds: EVAL_SEED + i, shared by every method


@dataclass(frozen=True)
class Design:
    """One set of choices: env keywords and PPO settings over the preset's."""

    name: str
    summary: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    ppo: Mapping[str, Any] = field(default_factory=dict)


PAPER_ENV = {
    "action_mode": "scale",
    "lr_bounds": [1e-6, 1.0],
    "initial_lr": None,
    "factor_base": 2.0,
    "feature_transform": "raw",
    "progress_feature": False,
    "final_reward_weight": 0.0,
}

LOG_PROGRESS = {**PAPER_ENV, "feature_transform": "log", "progress_feature": True}
FROM_01 = {**LOG_PROGRESS, "factor_base": 1.5, "initial_lr": 0.1}
ABSOLUTE = {**LOG_PROGRESS, "action_mode": "absolute", "lr_bounds": [0.01, 1.0], "initial_lr": 0.1}
FINAL_TERM = {"final_reward_weight": 10.0}
# the ablation ran with PPO's usual discount; the cpu preset has since moved to gamma 1
# (README, "What matters"), which "absolute-gamma1" measures
DISCOUNTED = {"gamma": 0.99}
NARROW_STD = {"log_std_init": -1.0, **DISCOUNTED}

DESIGNS: dict[str, Design] = {
    design.name: design
    for design in (
        Design(
            "paper",
            "the paper literally: raw features, factor 2**a, initial rate from "
            "{1e-2, 1e-3, 1e-4}, per-step reward, initial log-std 0",
            env_kwargs=PAPER_ENV,
            ppo={"log_std_init": 0.0, **DISCOUNTED},
        ),
        Design(
            "probe",
            "the CPU probe's best: log features, progress feature, factor 1.25**a, "
            "initial rate from {1e-2, 1e-3, 1e-4}",
            env_kwargs={**LOG_PROGRESS, "factor_base": 1.25},
            ppo={"log_std_init": 0.0, **DISCOUNTED},
        ),
        Design(
            "start-0.1",
            "log features, progress, factor 1.5**a, initial rate 0.1 (the grid's largest), "
            "initial log-std -1",
            env_kwargs=FROM_01,
            ppo=NARROW_STD,
        ),
        Design(
            "start-0.1+final",
            "as start-0.1, plus a terminal reward of 10x the final validation loss",
            env_kwargs={**FROM_01, **FINAL_TERM},
            ppo=NARROW_STD,
        ),
        Design(
            "absolute",
            "the action sets the rate itself, log-uniformly over [0.01, 1] (no accumulation "
            "of exploration noise); log features, progress, initial log-std -1",
            env_kwargs=ABSOLUTE,
            ppo=NARROW_STD,
        ),
        Design(
            "absolute-gamma1",
            "as absolute, undiscounted (gamma 1): the cpu preset's design",
            env_kwargs=ABSOLUTE,
            ppo={**NARROW_STD, "gamma": 1.0},
        ),
        Design(
            "absolute+final",
            "as absolute, plus a terminal reward of 10x the final validation loss",
            env_kwargs={**ABSOLUTE, **FINAL_TERM},
            ppo=NARROW_STD,
        ),
        Design(
            "start-0.1-no-progress",
            "as start-0.1 without the progress feature",
            env_kwargs={**FROM_01, "progress_feature": False},
            ppo=NARROW_STD,
        ),
    )
}


@dataclass(frozen=True)
class Scale:
    """How much work: training budget, seeds and evaluation runs."""

    episodes: int
    training_seeds: int
    runs: int
    designs: tuple[str, ...]


FULL = Scale(episodes=250, training_seeds=2, runs=10, designs=tuple(DESIGNS))
QUICK = Scale(episodes=24, training_seeds=1, runs=3, designs=("paper", "start-0.1"))


def train_controller(design: Design, seed: int, episodes: int, preset: str, folder: Path) -> Path:
    """Train (or finish training) one controller with train.py; return controller.zip."""
    controller = folder / "controller.zip"
    if controller.exists():
        return controller
    if (folder / "config.json").exists():
        command = ["--resume", str(folder)]
    else:
        command = [
            "--preset",
            preset,
            "--out",
            str(folder),
            "--seed",
            str(seed),
            "--episodes",
            str(episodes),
            "--env-kwargs",
            json.dumps(dict(design.env_kwargs)),
            "--figure-every",
            "0",
        ]
        for key, value in design.ppo.items():
            command += [f"--{key.replace('_', '-')}", str(value)]
    subprocess.run([sys.executable, str(ROOT / "train.py"), *command, "--no-progress"], check=True)
    return controller


def cached_runs(path: Path, runner: Runner, jobs: Sequence[Job], desc: str) -> list[dict]:
    """Run records from ``path``, or run ``jobs`` and save their records there first."""
    if path.exists():
        return json.loads(path.read_text())
    records = [_record(r) for r in runner.run(jobs, desc=desc)]
    path.write_text(json.dumps(records, indent=1))
    return records


def _record(result: RunResult) -> dict[str, Any]:
    record = result.record()
    record["val_loss_curve"] = result.trajectory.val_loss
    record["lr_curve"] = result.trajectory.lr
    return record


def summarize_method(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean and std of validation and test numbers over a method's runs."""
    out: dict[str, float] = {"runs": len(records)}
    for key in ("best_val_loss", "test_loss", "test_accuracy"):
        values = np.array([r[key] for r in records], dtype=float)
        out[f"{key}_mean"] = float(values.mean())
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
    return out


def table(baselines: Mapping[str, list[dict]], designs: Mapping[str, dict[int, list[dict]]]) -> str:
    """The ablation table in Markdown: designs ranked by validation loss, baselines below."""
    header = (
        "| method | val loss | test loss | test accuracy | seed spread (test loss) "
        "| p vs step decay | p vs cosine | p vs constant |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
    )
    rows = []
    ranked = sorted(
        designs.items(),
        key=lambda kv: summarize_method([r for runs in kv[1].values() for r in runs])[
            "best_val_loss_mean"
        ],
    )
    for name, per_seed in ranked:
        pooled = [r for runs in per_seed.values() for r in runs]
        s = summarize_method(pooled)
        seed_means = [np.mean([r["test_loss"] for r in runs]) for runs in per_seed.values()]
        spread = f"{np.ptp(seed_means):.4f} over {len(seed_means)}" if len(seed_means) > 1 else "-"
        ps = []
        for method in ("step_decay", "cosine", "constant"):
            if method not in baselines:
                ps.append("-")
                continue
            test = t_test(
                [r["test_loss"] for r in pooled], [r["test_loss"] for r in baselines[method]]
            )
            star = "*" if test.pvalue < 0.05 else ""
            ps.append(f"{test.pvalue:.3g}{star} ({'better' if test.statistic < 0 else 'worse'})")
        rows.append(
            f"| {name} | {s['best_val_loss_mean']:.4f} | {s['test_loss_mean']:.4f} ± "
            f"{s['test_loss_std']:.4f} | {s['test_accuracy_mean']:.4f} ± "
            f"{s['test_accuracy_std']:.4f} | {spread} | {' | '.join(ps)} |"
        )
    for method, records in baselines.items():
        s = summarize_method(records)
        rows.append(
            f"| baseline: {method} ({records[0]['description']}) | {s['best_val_loss_mean']:.4f} "
            f"| {s['test_loss_mean']:.4f} ± {s['test_loss_std']:.4f} | "
            f"{s['test_accuracy_mean']:.4f} ± {s['test_accuracy_std']:.4f} | - | - | - | - |"
        )
    return header + "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Run (or resume) the ablation and write ``table.md`` and ``ablation.json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/ablation", help="folder for everything")
    parser.add_argument("--preset", default="cpu", help="the task and budget to start from")
    parser.add_argument("--quick", action="store_true", help="a few minutes: 2 designs, 1 seed")
    parser.add_argument("--designs", nargs="*", help=f"subset of {', '.join(DESIGNS)}")
    parser.add_argument("--episodes", type=int, help="training episodes per controller")
    parser.add_argument("--workers", type=int, default=2, help="evaluation processes")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    designs = args.designs or list(scale.designs)
    unknown = set(designs) - set(DESIGNS)
    if unknown:
        parser.error(f"unknown designs {sorted(unknown)}; choose from {', '.join(DESIGNS)}")
    episodes = args.episodes or scale.episodes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    preset = get_preset(args.preset)
    base_task = Task(preset.env_id, dict(preset.env_kwargs))
    seeds = [EVAL_SEED + i for i in range(scale.runs)]

    with Runner(workers=args.workers, threads=1) as runner:
        families = candidates(
            preset.evaluation.step_decay_grid,
            preset.evaluation.constant_lrs,
            preset.evaluation.cosine_lrs,
        )
        selection_path = out / "selection.json"
        if not selection_path.exists():
            selections = select_baselines(runner, families, base_task, [0])
            selection_path.write_text(
                json.dumps({m: s.to_dict() for m, s in selections.items()}, indent=1)
            )
        baselines = {}
        for method, selection in json.loads(selection_path.read_text()).items():
            jobs = [Job(method, base_task, s, schedule=selection["chosen"]) for s in seeds]
            records = cached_runs(out / f"baseline-{method}.json", runner, jobs, method)
            description = next(
                c["description"]
                for c in selection["scores"]
                if c["schedule"] == selection["chosen"]
            )
            baselines[method] = [{**r, "description": description} for r in records]

        results: dict[str, dict[int, list[dict]]] = {}
        for name in designs:
            design = DESIGNS[name]
            results[name] = {}
            for seed in range(scale.training_seeds):
                folder = out / "controllers" / f"{name}-seed{seed}"
                controller = train_controller(design, seed, episodes, args.preset, folder)
                task = Task(preset.env_id, {**preset.env_kwargs, **design.env_kwargs})
                jobs = [Job("controller", task, s, controller=str(controller)) for s in seeds]
                results[name][seed] = cached_runs(
                    folder / "evaluation.json", runner, jobs, f"{name} seed {seed}"
                )
                (out / "table.md").write_text(table(baselines, results))

    report = table(baselines, results)
    (out / "table.md").write_text(report)
    (out / "ablation.json").write_text(
        json.dumps(
            {
                "preset": args.preset,
                "episodes": episodes,
                "scale": scale.__dict__,
                "designs": {n: DESIGNS[n].__dict__ for n in designs},
                "baselines": baselines,
                "controllers": results,
            },
            indent=1,
            default=dict,
        )
    )
    print(report)


if __name__ == "__main__":
    main()
