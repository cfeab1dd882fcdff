"""What makes a learned controller win: train controllers for a set of design choices,
select on validation, and test them against tuned baselines.

    python -m agents.ablation --out runs/ablation              # ~60-90 min on 2 cores
    python -m agents.ablation --out runs/ablation-quick --quick # minutes

Every design is trained with train.py's own session
(:func:`agents.training.train_controller`, in this process) for each training seed, then
run on the same evaluation seeds as the baselines (step decay over the paper's 48-grid, cosine and
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.comparison import candidates, evaluate_methods, run_comparison
from agents.jobs import RunResult
from agents.pool import Runner
from agents.presets import get_preset
from agents.run_folder import RunDir
from agents.statistics import mean_std, t_test
from agents.tasks import Task
from agents.train_options import TrainOptions
from agents.training import train_controller

EVAL_SEED = 1000  # evaluation seeds: EVAL_SEED + i, shared by every method
GRID_SEEDS = 2  # selection seeds per candidate, as evaluate.py's default


@dataclass(frozen=True)
class Design:
    """One set of choices: env keywords and PPO settings over the preset's."""

    name: str
    summary: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    ppo: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=lambda: dict(AS_TRAINED))
    """train.py flags over the preset's (default: no base or snapshot selection)."""


# The first wave's designs, from before residual control and snapshot selection existed,
# train the last policy, with the env keywords as given.
AS_TRAINED = {"residual_over": "", "select_every": 0}


PAPER_ENV = {
    "action_mode": "scale",
    "lr_bounds": [1e-6, 1.0],
    "initial_lr": None,
    "factor_base": 2.0,
    "feature_transform": "raw",
    "progress_feature": False,
    "final_reward_weight": 0.0,
    "reward": "loss",
}

LOG_PROGRESS = {**PAPER_ENV, "feature_transform": "log", "progress_feature": True}
FROM_01 = {**LOG_PROGRESS, "factor_base": 1.5, "initial_lr": 0.1}
ABSOLUTE = {**LOG_PROGRESS, "action_mode": "absolute", "lr_bounds": [0.01, 1.0], "initial_lr": 0.1}
FINAL_TERM = {"final_reward_weight": 10.0}
# the first ablation ran with PPO's usual discount; the cpu preset then moved to gamma 1
# (docs/history.md), which "absolute-gamma1" measures
DISCOUNTED = {"gamma": 0.99}
NARROW_STD = {"log_std_init": -1.0, **DISCOUNTED}

# Residual control (the last policy of a run proved unreliable): the action scales the best
# baseline family's chosen schedule (evaluate.py's selection at the cpu preset, on
# validation only: WSD at 0.3 with a linear cooldown over the last 20% of steps), so that
# action 0 is that baseline exactly.
WSD_BASE = {"kind": "wsd", "peak_lr": 0.3, "cooldown": 0.2, "warmup": 0.0}
RESIDUAL = {**LOG_PROGRESS, "action_mode": "residual", "base_schedule": WSD_BASE}
# ... and over the strongest family, schedule-free SGD (chosen likewise: rate 1.5, its own
# warmup over 50 steps): the controller then drives schedule-free SGD's rate.
SCHEDULE_FREE = {"optimizer": "schedule_free", "warmup_steps": 50}
RESIDUAL_SF = {**RESIDUAL, **SCHEDULE_FREE, "base_schedule": {"kind": "constant", "lr": 1.5}}
DELTA = {"reward": "delta"}
RESIDUAL_PPO = {"log_std_init": -1.5, "gamma": 1.0}

DESIGNS: dict[str, Design] = {
    design.name: design
    for design in (
        Design(
            "cpu-preset",
            "the cpu preset: residual over the best of WSD and schedule-free SGD on "
            "validation, delta reward, 600 episodes, the best snapshot on validation kept",
            train={},
        ),
        Design(
            "residual-sf-delta+select",
            "residual-sf-delta, keeping the snapshot (every 50 episodes) with the best "
            "validation loss",
            env_kwargs={**RESIDUAL_SF, **DELTA},
            ppo=RESIDUAL_PPO,
            train={"residual_over": "", "select_every": 50},
        ),
        Design(
            "residual-wsd-delta",
            "the action scales the tuned WSD schedule's rate by 2**a (action 0: WSD itself); "
            "reward L_{t-1} - L_t (sums to the final loss); log features, progress; initial "
            "log-std -1.5, gamma 1",
            env_kwargs={**RESIDUAL, **DELTA},
            ppo=RESIDUAL_PPO,
        ),
        Design(
            "residual-sf-delta",
            "as residual-wsd-delta over schedule-free SGD at its tuned rate (1.5, warmup 50 "
            "steps): the controller scales schedule-free SGD's rate",
            env_kwargs={**RESIDUAL_SF, **DELTA},
            ppo=RESIDUAL_PPO,
        ),
        Design(
            "residual-wsd-delta+select",
            "residual-wsd-delta, keeping the snapshot (every 50 episodes, the untrained one "
            "included) with the best validation loss",
            env_kwargs={**RESIDUAL, **DELTA},
            ppo=RESIDUAL_PPO,
            train={"residual_over": "", "select_every": 50},
        ),
        Design(
            "residual-wsd-loss",
            "as residual-wsd-delta with the paper's per-step reward -L_t (the area under "
            "the validation curve)",
            env_kwargs=RESIDUAL,
            ppo=RESIDUAL_PPO,
        ),
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
            "as absolute, undiscounted (gamma 1): the first wave's cpu preset design",
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


def train_design(
    design: Design,
    seed: int,
    episodes: int | None,
    preset: str,
    folder: Path,
    n_envs: int | None = None,
) -> Path:
    """Train (or finish training) one controller with train.py's own session
    (:func:`agents.training.train_controller`); return its controller.zip.

    A run counts as done when its last checkpoint says it finished, not when its
    controller.zip exists: train.py writes that file before the steps that end a run (the
    snapshot chosen on validation replaces it), so a run killed in between is resumed.
    """
    run = RunDir(folder)
    controller = run.controller
    if run.config_path.exists():
        checkpoint = run.last_checkpoint()
        if checkpoint is not None and checkpoint.progress.get("finished"):
            return controller
        options = TrainOptions(resume=str(folder), progress=False)
        train_controller(options, command=["train.py", "--resume", str(folder)])
        return controller
    options = TrainOptions(
        preset=preset,
        out=str(folder),
        seed=seed,
        episodes=episodes,
        env_kwargs=dict(design.env_kwargs),
        figure_every=0,
        n_envs=n_envs,
        progress=False,
        **design.train,
    )
    command = ["train.py", "--preset", preset, "--out", str(folder), "--seed", str(seed)]
    train_controller(options, dict(design.ppo), command=command)
    return controller


def _record(result: RunResult) -> dict[str, Any]:
    record = result.record()
    record["val_loss_curve"] = result.trajectory.val_loss
    record["lr_curve"] = result.trajectory.lr
    return record


def summarize_method(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean and std of validation and test numbers over a method's runs."""
    out: dict[str, float] = {"runs": len(records)}
    for key in ("best_val_loss", "test_loss", "test_accuracy"):
        out[f"{key}_mean"], out[f"{key}_std"] = mean_std(r[key] for r in records)
    return out


def table(baselines: Mapping[str, list[dict]], designs: Mapping[str, dict[int, list[dict]]]) -> str:
    """The ablation table in Markdown: designs ranked by validation loss, then the baselines.

    For each design: validation and test loss (runs pooled over training seeds), the range
    of the per-seed mean test losses, and against each baseline family the sign of the
    difference and the p-values of Student's and Welch's t-tests (``*``: both < 0.05).
    """
    families = list(baselines)
    header = (
        "| method | val loss | test loss | test accuracy | seed range (test loss) | "
        + " | ".join(f"vs {m}" for m in families)
        + " |\n"
        + "| --- " * (5 + len(families))
        + "|\n"
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
        spread = (
            f"{min(seed_means):.4f}-{max(seed_means):.4f} ({len(seed_means)} seeds)"
            if len(seed_means) > 1
            else "1 seed"
        )
        ps = []
        for method in families:
            ours = [r["test_loss"] for r in pooled]
            theirs = [r["test_loss"] for r in baselines[method]]
            student, welch = t_test(ours, theirs), t_test(ours, theirs, equal_var=False)
            star = "*" if student.significant and welch.significant else ""
            side = "better" if student.statistic < 0 else "worse"
            ps.append(f"{side} {student.pvalue:.2g} / {welch.pvalue:.2g}{star}")
        rows.append(
            f"| {name} | {s['best_val_loss_mean']:.4f} | {s['test_loss_mean']:.4f} ± "
            f"{s['test_loss_std']:.4f} | {s['test_accuracy_mean']:.4f} ± "
            f"{s['test_accuracy_std']:.4f} | {spread} | {' | '.join(ps)} |"
        )
    for method, records in baselines.items():
        s = summarize_method(records)
        rows.append(
            f"| {method}: {records[0]['description']} | {s['best_val_loss_mean']:.4f} "
            f"| {s['test_loss_mean']:.4f} ± {s['test_loss_std']:.4f} | "
            f"{s['test_accuracy_mean']:.4f} ± {s['test_accuracy_std']:.4f} | - |"
            + " - |"
            * len(families)
        )
    return header + "\n".join(rows) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Run (or resume) the ablation and write ``table.md`` and ``ablation.json``.

    The baselines go through evaluate.py's protocol (:func:`run_comparison`: its selection
    seeds, grids and evaluation seeds), once, cached in ``baselines.json``; every controller
    is evaluated on the same seeds with :func:`evaluate_methods`.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/ablation", help="folder for everything")
    parser.add_argument("--preset", default="cpu", help="the task and budget to start from")
    parser.add_argument("--quick", action="store_true", help="a few minutes: 2 designs, 1 seed")
    parser.add_argument("--designs", nargs="*", help=f"subset of {', '.join(DESIGNS)}")
    parser.add_argument("--episodes", type=int, help="training episodes per controller")
    parser.add_argument("--training-seeds", type=int, nargs="*", help="training seeds to run")
    parser.add_argument("--n-envs", type=int, help="trainees per training run (default preset's)")
    parser.add_argument("--workers", type=int, default=2, help="evaluation processes")
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    designs = args.designs or list(scale.designs)
    unknown = set(designs) - set(DESIGNS)
    if unknown:
        parser.error(f"unknown designs {sorted(unknown)}; choose from {', '.join(DESIGNS)}")
    episodes = args.episodes or scale.episodes
    training_seeds = args.training_seeds or list(range(scale.training_seeds))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    preset = get_preset(args.preset)
    base_task = Task(preset.env_id, dict(preset.env_kwargs))
    seeds = [EVAL_SEED + i for i in range(scale.runs)]

    with Runner(workers=args.workers, threads=1) as runner:
        baselines = cached_baselines(out / "baselines.json", runner, preset, base_task, scale.runs)
        results: dict[str, dict[int, list[dict]]] = {}
        for name in designs:
            design = DESIGNS[name]
            results[name] = {}
            for seed in training_seeds:
                folder = out / "controllers" / f"{name}-seed{seed}"
                controller = train_design(design, seed, episodes, args.preset, folder, args.n_envs)
                # the controller's own task: what train.py resolved (a residual base chosen
                # on validation included), as evaluate.py reads it from the controller
                trained = json.loads((folder / "config.json").read_text())["config"]
                task = Task(trained["env_id"], trained["env_kwargs"])
                path = folder / "evaluation.json"
                if not path.exists():
                    runs = evaluate_methods(runner, task, seeds, {}, str(controller))
                    path.write_text(json.dumps([_record(r) for r in runs], indent=1))
                results[name][seed] = json.loads(path.read_text())
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


def cached_baselines(
    path: Path, runner: Runner, preset: Any, task: Task, runs: int
) -> dict[str, list[dict]]:
    """Every baseline family, chosen and evaluated as evaluate.py does; read from ``path``
    when an earlier run of the ablation saved them there."""
    if not path.exists():
        comparison = run_comparison(
            runner,
            task,
            task,
            candidates(preset.evaluation.grids),
            runs=runs,
            seed=EVAL_SEED,
            grid_seeds=GRID_SEEDS,
        )
        described = {
            method: next(
                c["description"] for c in selection.scores if c["schedule"] == selection.best
            )
            for method, selection in comparison.selections.items()
        }
        records = {
            method: [
                {**_record(r), "description": described[method]}
                for r in comparison.results
                if r.method == method
            ]
            for method in comparison.selections
        }
        path.write_text(json.dumps(records, indent=1))
    return json.loads(path.read_text())


if __name__ == "__main__":
    main()
