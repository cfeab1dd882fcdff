"""A fuzz of train.py's and evaluate.py's command lines (hypothesis over argv).

Every good invocation parses and passes the checks; every bad one (one flag given a bad
value, an unknown flag, a flag without its value) exits with code 2 and one line on stderr,
no traceback, writes nothing, and does so in well under a few seconds. In-process:
``train.check`` / ``evaluate.check`` are what ``main`` runs before any work starts. The
invocations the scripts once got wrong are run as real processes in the slow test at the
end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evaluate
import train

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 3.0  # the most one check may take in-process

# flag -> (good values, bad values): a good value is good with any other flag's good value
# (smoke's rollout of 2 episodes, 8 episodes or a number given that both 1 and 2 envs
# divide), a bad one bad with any
TRAIN_FLAGS: dict[str, tuple[list[str], list[str]]] = {
    "--preset": (["smoke"], ["nope", "", "SMOKE"]),
    "--env-id": (["lrenv/Synthetic-v0"], ["lrenv/Nope-v0", "Synthetic-v0", "nomodule:x"]),
    "--env-kwargs": (
        ['{"total_steps": 40}', "{}", '{"reward": "delta", "divergence_loss": 5}'],
        ["{", "[1]", '{"stepz": 1}', '{"total_steps": -1}', '{"divergence_loss": 0.1}', "1"],
    ),
    "--episodes": (["2", "4", "8"], ["-5", "0", "x", "1.5"]),
    "--n-envs": (["1", "2"], ["0", "-1", "3", "two"]),
    "--seed": (["0", "7"], ["-1", "99999999999", "s"]),
    "--select-every": (["0", "2"], ["-1", "x"]),
    "--select-seeds": (["1", "2"], ["0", "-2"]),
    "--residual-over": (["", "wsd", "wsd,schedule_free"], ["foo", "plateau", "wsd,nope"]),
    "--checkpoint-every": (["0", "2"], ["-1", "x"]),
    "--figure-every": (["0", "4"], ["-4"]),
    "--threads": (["1", "2"], ["0", "-1", "x"]),
    "--ray": (["local", "ray://head:10001"], ["localhost:6379", "", "ray:/x"]),
    "--device": (["cpu"], ["tpu", "", "cpux"]),
    "--hidden": (["8", "32"], ["0", "-3", "8.5"]),
    "--actor-lr": (["0.001", "1e-4"], ["-1", "0", "nan", "inf", "2"]),
    "--critic-lr": (["0.005"], ["-0.1", "0", "nan"]),
    "--episodes-per-rollout": (["2"], ["0", "-2"]),
    "--n-epochs": (["1", "10"], ["0", "-1"]),
    "--minibatches": (["1", "2"], ["0", "-1", "7"]),
    "--gamma": (["0.99", "1.0", "0"], ["5", "-0.1", "nan", "1.01"]),
    "--gae-lambda": (["0.95", "1"], ["2", "-1", "inf"]),
    "--clip-range": (["0.2", "0.1"], ["-0.2", "0", "nan", "3"]),
    "--ent-coef": (["0", "0.01"], ["-1", "inf"]),
    "--log-std-init": (["0", "-1.5"], ["nan", "-inf", "50"]),
    "--sde-draw": (["rollout"], ["sometimes", "", "episodes"]),
}
TRAIN_SWITCHES = ["--recurrent", "--no-recurrent", "--no-progress", "--normalize-rewards"]

EVALUATE_FLAGS: dict[str, tuple[list[str], list[str]]] = {
    "--preset": (["smoke", "cpu"], ["nope", ""]),
    "--env-id": (["lrenv/Synthetic-v0"], ["lrenv/Nope-v0", "x"]),
    "--env-kwargs": (['{"total_steps": 40}', "{}"], ["{", "[]", '{"model": "vgg"}']),
    "--runs": (["1", "3"], ["-3", "0", "x"]),
    "--baseline-from": (["lrenv/Synthetic-v0"], ["lrenv/Nope-v0"]),
    "--baseline-env-kwargs": (["{}"], ['{"batch_size": 0}', "nope"]),
    "--baselines": (["constant", "wsd,cosine", "none"], ["foo", "wsd,foo"]),
    "--grid-seeds": (["1", "2"], ["0", "-1"]),
    "--seed": (["0", "3"], ["-1", "x"]),
    "--workers": (["1", "2"], ["0", "-2"]),
    "--threads": (["1"], ["0"]),
    "--max-batch": (["4"], ["0"]),
    "--ray": (["local"], ["nowhere"]),
    "--controller": ([], ["/no/such/run", "/dev/null/x"]),
}
EVALUATE_SWITCHES = ["--no-progress", "--no-batched", "--progress"]


def invocations(flags: dict, switches: list[str], base: list[str]) -> st.SearchStrategy:
    """``(argv, good)``: some flags with good values; half the time one made bad."""
    good_flags = [name for name, (good, _) in flags.items() if good]
    chosen = st.lists(st.sampled_from(good_flags), unique=True, max_size=6)

    @st.composite
    def build(draw: st.DrawFn) -> tuple[list[str], bool]:
        argv = list(base)
        for name in draw(chosen):
            argv += [name, draw(st.sampled_from(flags[name][0]))]
        argv += draw(st.lists(st.sampled_from(switches), unique=True, max_size=2))
        if not draw(st.booleans()):
            return argv, True
        how = draw(st.sampled_from(["value", "value", "value", "unknown", "missing"]))
        if how == "value":
            name = draw(st.sampled_from([n for n, (_, bad) in flags.items() if bad]))
            argv += [name, draw(st.sampled_from(flags[name][1]))]
        elif how == "unknown":
            argv += [draw(st.sampled_from(["--episodez", "--no-such-flag", "-x", "extra"]))]
        else:
            argv += [draw(st.sampled_from([n for n in flags if n != "--controller"]))]
        return argv, False

    return build()


def run_check(check, argv: list[str], capsys) -> tuple[int, str, float]:
    """Exit code (0 when the checks passed), stderr and seconds of ``check(argv)``."""
    capsys.readouterr()
    started = time.monotonic()
    try:
        check(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err, time.monotonic() - started


def assert_outcome(code: int, err: str, seconds: float, good: bool, argv, out: Path) -> None:
    assert seconds < SECONDS, (argv, seconds)
    assert "Traceback" not in err, (argv, err)
    assert not out.exists(), argv  # nothing written, good or bad
    if good:
        assert code == 0, (argv, err)
        return
    lines = err.strip().splitlines()
    assert code == 2, (argv, code, err)
    assert len(lines) == 1 and ": error: " in lines[0] and "--help" in lines[0], (argv, err)


FUZZ = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(invocations(TRAIN_FLAGS, TRAIN_SWITCHES, ["--preset", "smoke"]))
def test_train_command_lines(tmp_path, capsys, case):
    argv, good = case
    out = tmp_path / "run"
    argv = [*argv, "--out", str(out)]
    assert_outcome(*run_check(train.check, argv, capsys), good, argv, out)


@FUZZ
@given(invocations(EVALUATE_FLAGS, EVALUATE_SWITCHES, ["--preset", "smoke"]))
def test_evaluate_command_lines(tmp_path, capsys, case):
    argv, good = case
    out = tmp_path / "eval"
    argv = [*argv, "--out", str(out)]
    assert_outcome(*run_check(evaluate.check, argv, capsys), good, argv, out)


# What the scripts once got wrong: each is one line, exit code 2, within seconds, in a
# real process.
BAD = [
    ("train.py", "--gamma", "5"),
    ("train.py", "--clip-range", "-0.2"),
    ("train.py", "--actor-lr", "-1"),
    ("train.py", "--n-epochs", "0"),
    ("train.py", "--minibatches", "0"),
    ("train.py", "--threads", "0"),
    ("train.py", "--preset", "laptop"),
    ("train.py", "--env-kwargs", "{bad"),
    ("train.py", "--episodes", "-5"),
    ("train.py", "--env-id", "lrenv/Nope-v0"),
    ("train.py", "--residual-over", "foo"),
    ("train.py", "--residual-over", "plateau"),
    ("train.py", "--env-kwargs", '{"reward": "delta", "divergence_loss": 0.5}'),
    ("train.py", "--env-kwargs", '{"beta_factor": 5}'),
    ("train.py", "--sde-draw", "episode"),  # without --use-sde
    ("evaluate.py", "--env-id", "lrenv/Nope-v0"),
    ("evaluate.py", "--runs", "-3"),
    ("evaluate.py", "--workers", "0"),
    ("evaluate.py", "--grid-seeds", "0"),
    ("evaluate.py", "--baselines", "foo"),
    ("evaluate.py", "--controller", "/no/such/run"),
]


@pytest.mark.slow
@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a) for a in BAD])
def test_the_invocations_once_wrong_fail_at_once_in_one_line(tmp_path, argv):
    script, *flags = argv
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(ROOT / script), *flags, "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.monotonic() - started
    lines = done.stderr.strip().splitlines()
    print(f"\n{' '.join(argv)}: exit {done.returncode}, {len(lines)} line(s), {seconds:.1f} s")
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("incomplete", [{"preset": "smoke"}, {"config": {"preset": "smoke"}}])
def test_resume_of_an_incomplete_config_names_what_is_missing(tmp_path, capsys, incomplete):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(incomplete))
    code, err, _ = run_check(train.check, ["--resume", str(run)], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "TrainConfig" not in err and str(run) in err


@pytest.mark.parametrize("script", [train, evaluate])
def test_help_fits_100_columns_on_a_wide_terminal(monkeypatch, capsys, script):
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as exit_info:
        script.check(["--help"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100


def test_train_help_shows_what_a_plain_run_uses(capsys):
    with pytest.raises(SystemExit):
        train.check(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    # the cpu preset's (a plain run's), not the paper's 0.99 and 0
    assert "Discount factor. (cpu: 1.0)" in text
    assert "Gaussian policy. (cpu: -1.5)" in text


def test_evaluate_help_describes_the_evaluation_settings_of_each_preset(capsys):
    with pytest.raises(SystemExit):
        evaluate.check(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "smoke: task lrenv/Synthetic-v0" in text and "runs=3 per method" in text
    assert "select_every" not in text and "ppo:" not in text  # training fields
