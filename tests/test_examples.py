"""The scheduler as a user meets it: the README's snippet as written, the example script,
and the error of a per-epoch ``step()``; on the user's own optimizer, with controllers of
train.py's default design (residual over a base chosen on validation), the snippet trains
no worse than that optimizer at its own rate, or refuses in one line."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import schedulefree
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from lrenv.data import make_synthetic
from lrenv.scheduler import LearnedLRScheduler

ROOT = Path(__file__).resolve().parent.parent
# the keywords of train.py's default design (the cpu preset) on top of the smoke preset;
# --residual-over adds the residual action over the chosen base
DEFAULT_DESIGN = '{"feature_transform": "log", "progress_feature": true, "reward": "delta"}'


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


@pytest.mark.parametrize("run", ["recurrent", "schedule_free"])
def test_readme_snippet_runs_as_written(
    smoke_run_folders, residual_runs, user_setup, run, tmp_path, monkeypatch, recwarn
):
    """With a controller that reads training progress, as the cpu preset's (train.py's
    default) does: it needs total_steps, which the snippet gives. One like train.py's
    default, residual over schedule-free SGD, on that optimizer as the README says to
    make it (in train mode); the recurrent one over plain SGD on the user's SGD."""
    folder = {**smoke_run_folders, **residual_runs}[run]
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "cpu").symlink_to(folder)
    monkeypatch.chdir(tmp_path)
    namespace = dict(user_setup)
    if run == "schedule_free":
        model = namespace["model"]
        optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=0.3, warmup_steps=10)
        optimizer.train()
        namespace["optimizer"] = optimizer
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


# ----- the user's own optimizer --------------------------------------------------------


@pytest.fixture(scope="module")
def residual_runs(train_smoke, tmp_path_factory) -> dict[str, Path]:
    """Controllers of train.py's default design in seconds: residual over warmup-stable-
    decay (trained on plain SGD) and over schedule-free SGD (the base train.py chose for
    the cpu preset), as ``train.py --preset smoke --residual-over FAMILY`` makes them."""
    root = tmp_path_factory.mktemp("residual-runs")
    return {
        base: train_smoke(root / base, "--residual-over", base, "--env-kwargs", DEFAULT_DESIGN)
        for base in ("wsd", "schedule_free")
    }


class OwnRate:
    """Stands in for the scheduler: the optimizer keeps the rate it was given."""

    def __init__(self, optimizer, *args, **kwargs) -> None:
        self.optimizer = optimizer

    def step(self, loss) -> None:
        pass


def run_readme_snippet(folder, tmp_path, monkeypatch, optimizer_class, lr, learned=True):
    """The README's snippet as written, on a fresh synthetic user setup with
    ``optimizer_class(lr)`` and 2 epochs, with the controller in ``folder`` as
    ``runs/cpu`` (or, with ``learned=False``, without the scheduler). Returns the test
    loss and the rate of every optimizer step."""
    runs = tmp_path / "runs"
    runs.mkdir(exist_ok=True)
    if not (runs / "cpu").exists():
        (runs / "cpu").symlink_to(folder)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    data = make_synthetic()
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = optimizer_class(model.parameters(), lr=lr)
    rates = []
    optimizer.register_step_pre_hook(lambda opt, *_: rates.append(opt.param_groups[0]["lr"]))
    code = scheduler_snippet(ROOT / "README.md")
    namespace = {
        "model": model,
        "optimizer": optimizer,
        "epochs": 2,
        "train_set": TensorDataset(data.train.images, data.train.labels),
    }
    if not learned:
        code = code.replace("from lrenv.scheduler import LearnedLRScheduler", "")
        namespace["LearnedLRScheduler"] = OwnRate
    exec(code, namespace)
    with torch.no_grad():
        test_loss = F.cross_entropy(model(data.test.images), data.test.labels).item()
    return test_loss, rates


@pytest.mark.parametrize(
    ("optimizer_class", "lr"), [(torch.optim.SGD, 0.05), (torch.optim.Adam, 0.01)]
)
def test_readme_snippet_on_your_optimizer_is_no_worse_than_its_own_rate(
    residual_runs, tmp_path, monkeypatch, optimizer_class, lr
):
    """A controller trained over WSD at 0.1 on plain SGD draws that schedule with the
    user's rate as its peak: on Adam at 0.01 it must not impose SGD's 0.1."""
    folder = residual_runs["wsd"]
    learned, rates = run_readme_snippet(folder, tmp_path, monkeypatch, optimizer_class, lr)
    own, own_rates = run_readme_snippet(
        folder, tmp_path, monkeypatch, optimizer_class, lr, learned=False
    )
    assert set(own_rates) == {lr}
    assert len(rates) == 30 and len(set(rates)) > 1  # the controller set the rates
    # your rate is the base's peak; one decision at most doubles it (factor_base 2)
    assert min(rates) > 0 and max(rates) <= 2 * lr * (1 + 1e-9)
    assert learned <= 1.01 * own


@pytest.mark.parametrize("optimizer_class", [torch.optim.SGD, torch.optim.Adam])
def test_readme_snippet_refuses_the_other_family_in_one_line(
    residual_runs, tmp_path, monkeypatch, optimizer_class
):
    """A controller trained over schedule-free SGD at 0.3 is no schedule for plain SGD or
    Adam: it is refused when the scheduler is made, naming what to pass."""
    with pytest.raises(TypeError) as refusal:
        run_readme_snippet(
            residual_runs["schedule_free"], tmp_path, monkeypatch, optimizer_class, 0.01
        )
    message = str(refusal.value)
    assert "\n" not in message
    assert "schedule-free SGD" in message and "pass schedulefree.SGDScheduleFree(" in message
    assert optimizer_class.__name__ in message


def test_the_example_runs_schedule_free_sgd_for_a_controller_trained_on_it(residual_runs, capsys):
    """train.py's default controller is residual over schedule-free SGD: the example's
    default optimizer is then that one, in train/eval modes, at the warmup it was trained
    with; the comparison run keeps the optimizer's own rate."""
    example = load_example("scheduler_mnist")
    flags = ["--data", "synthetic", "--epochs", "2", "--batch-size", "64", "--lr", "0.3"]
    learned = example.main(["--controller", str(residual_runs["schedule_free"]), *flags])
    own = example.main(["--scheduler", "none", "--optimizer", "schedule_free", *flags])
    out = capsys.readouterr().out
    assert "Test set: Average loss" in out
    assert learned["lr"] != 0.3 and own["lr"] == 0.3
    assert learned["test_loss"] <= 1.01 * own["test_loss"]


def test_the_example_refuses_another_optimizer_family_in_one_line(residual_runs):
    example = load_example("scheduler_mnist")
    flags = ["--controller", str(residual_runs["schedule_free"]), "--data", "synthetic"]
    with pytest.raises(SystemExit, match=r"pass schedulefree\.SGDScheduleFree") as refusal:
        example.main([*flags, "--optimizer", "adam"])
    assert "\n" not in str(refusal.value)
