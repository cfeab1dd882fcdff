"""The scheduler as a user meets it: the README's snippet as written,
the example script, and the error of a per-epoch ``step()``."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lrenv.data import make_synthetic
from lrenv.scheduler import LearnedLRScheduler

ROOT = Path(__file__).resolve().parent.parent


def scheduler_snippet(markdown: Path) -> str:
    """The python block of ``markdown`` that uses LearnedLRScheduler."""
    blocks = re.findall(r"```python\n(.*?)```", markdown.read_text(), flags=re.DOTALL)
    (block,) = [b for b in blocks if "LearnedLRScheduler(" in b]
    return block


@pytest.fixture
def user_setup():
    """What the snippet assumes a user has: a model, an optimizer, epochs, a train set."""
    torch.manual_seed(0)
    data = make_synthetic()
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 10))
    return {
        "model": model,
        "optimizer": torch.optim.SGD(model.parameters(), lr=0.05),
        "epochs": 1,
        "train_set": TensorDataset(data.train.images, data.train.labels),
    }


def test_readme_and_docs_snippets_are_one(tmp_path):
    assert scheduler_snippet(ROOT / "README.md") == scheduler_snippet(ROOT / "docs/scheduler.md")


def test_readme_snippet_runs_as_written(
    smoke_run_folders, user_setup, tmp_path, monkeypatch, recwarn
):
    """With a controller that reads training progress, as the cpu preset's (train.py's
    default) does: it needs total_steps, which the snippet gives."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "cpu").symlink_to(smoke_run_folders["recurrent"])
    monkeypatch.chdir(tmp_path)
    namespace = dict(user_setup)
    exec(scheduler_snippet(ROOT / "README.md"), namespace)
    scheduler = namespace["scheduler"]
    assert scheduler.settings["progress_feature"] and scheduler.total_steps == 15  # 1800 / 128
    assert scheduler.last_epoch == 15 and scheduler.last_action is not None
    assert not [w for w in recwarn if "diverged" in str(w.message)]


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("run", "optimizer"), [("ppo", "sgd"), ("recurrent", "adam")])
def test_scheduler_example_trains(smoke_run_folders, run, optimizer, capsys):
    example = load_example("scheduler_mnist")
    flags = ["--controller", str(smoke_run_folders[run]), "--data", "synthetic"]
    flags += ["--epochs", "2", "--batch-size", "64", "--optimizer", optimizer, "--lr", "0.01"]
    result = example.main(flags)
    out = capsys.readouterr().out
    assert "Validation set: Average loss" in out and "Test set: Average loss" in out
    assert 0 < result["test_loss"] < 10 and 0 <= result["test_accuracy"] <= 1
    assert result["lr"] != 0.01  # the controller set the rate


def test_per_epoch_step_says_what_to_do(smoke_run_folders, user_setup):
    data = make_synthetic()
    scheduler = LearnedLRScheduler(
        user_setup["optimizer"],
        smoke_run_folders["ppo"],
        model=user_setup["model"],
        val_data=(data.val.images, data.val.labels),
    )
    with pytest.raises(TypeError, match=r"scheduler.step\(loss\) right after every optimizer"):
        scheduler.step()
