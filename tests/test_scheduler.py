"""lrenv/scheduler.py: a trained controller as a drop-in LR scheduler, checked against the env."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import schedulefree
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader, TensorDataset

from lrenv.controller import Controller, ControllerFileError
from lrenv.data import load_dataset
from lrenv.env import scaled_lr
from lrenv.models import MLP
from lrenv.scheduler import LearnedLRScheduler, trained_env_kwargs

SEED = 3
INITIAL_LR = 0.05
# A controller trained for seconds barely moves the rate (actions ~0.01); its action head
# is scaled up so that the schedule moves (actions ~0.1-0.8) and a decision taken at the
# wrong step, or on the wrong features, shows in the learning rates.
SHARPEN = 20.0
# residual control over schedule-free SGD at 0.05, the cpu preset's kind of controller
RESIDUAL_KWARGS = (
    '{"action_mode": "residual", "base_schedule": {"kind": "constant", "lr": 0.05}, '
    '"optimizer": "schedule_free", "warmup_steps": 10, "progress_feature": true, '
    '"feature_transform": "log", "reward": "delta"}'
)

# the same, observing scale-free features (the task sets' transform), which divide by
# the validation loss and the weights at reset
RELATIVE_KWARGS = RESIDUAL_KWARGS.replace('"log"', '"relative"')
# and one that also reads how many passes over its data a run makes
EPOCHS_KWARGS = RELATIVE_KWARGS.replace(
    '"progress_feature": true', '"progress_feature": true, "epochs_feature": true'
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def controller_paths(smoke_run_folders, train_smoke, tmp_path_factory):
    """The shared PPO (raw features, factor 2) and RecurrentPPO (log features, progress,
    factor 1.25) run folders, and three residual controllers over schedule-free SGD (log
    features, scale-free ones, and scale-free ones with the run's epochs), each trained for
    two synthetic episodes with train.py."""
    residual = train_smoke(
        tmp_path_factory.mktemp("controllers") / "residual", "--env-kwargs", RESIDUAL_KWARGS
    )
    relative = train_smoke(
        tmp_path_factory.mktemp("controllers") / "relative", "--env-kwargs", RELATIVE_KWARGS
    )
    epochs = train_smoke(
        tmp_path_factory.mktemp("controllers") / "epochs", "--env-kwargs", EPOCHS_KWARGS
    )
    # the run folders: the scheduler reads the code-free controller.safetensors in each
    return {**smoke_run_folders, "residual": residual, "relative": relative, "epochs": epochs}


def load_sharpened(path) -> Controller:
    controller = Controller.load(path)
    with torch.no_grad():
        controller.actor.action_net.weight.mul_(SHARPEN)  # the Gaussian's mean head
    return controller


@pytest.fixture(scope="module")
def controllers(controller_paths):
    return {kind: load_sharpened(path) for kind, path in controller_paths.items()}


def make_env(controller: Controller) -> gym.Env:
    """The controller's training env, at a fixed initial rate."""
    config = controller.config
    return gym.make(config["env_id"], **config["env_kwargs"], initial_lr=INITIAL_LR)


def run_env(env: gym.Env, controller: Controller) -> tuple[np.ndarray, np.ndarray]:
    """One episode: the observation at each decision, and the rate of every SGD step."""
    obs, _ = env.reset(seed=SEED)
    observations, rates = [], []
    state, episode_start = None, np.ones((1,), dtype=bool)
    while True:
        observations.append(obs)
        action, state = controller.predict(obs, state, episode_start, deterministic=True)
        episode_start = np.zeros((1,), dtype=bool)
        obs, _, terminated, truncated, info = env.step(action)
        assert not info["diverged"]
        rates += [info["lr"]] * env.unwrapped.steps_per_action
        if terminated or truncated:
            return np.array(observations), np.array(rates)


def run_scheduler(
    env: gym.Env, controller: Controller, start: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same trainee (weights, batch order, validation subset, from ``reset(seed)``)
    trained in a plain loop with the scheduler: observations at decisions, the rate of every
    step, and the step count at each decision."""
    env.reset(seed=SEED)
    trainee = env.unwrapped.trainee
    model, optimizer = trainee.model, trainee.optimizer
    total_steps = env.unwrapped.total_steps
    scheduler = LearnedLRScheduler(
        optimizer,
        controller,
        model=model,
        val_data=trainee.val_data,
        total_steps=total_steps,
        steps_per_epoch=len(trainee.train_data) / trainee.batch_size,  # read by "epochs"
    )
    if start:
        scheduler.start(trainee.peek_train_loss())
    observations, rates, decided_at = [], [], []
    seen = None
    images, labels = trainee.train_data.images, trainee.train_data.labels
    if hasattr(optimizer, "train"):  # schedule-free SGD trains at its own point
        optimizer.train()
    for step in range(total_steps):
        if scheduler.last_observation is not seen:
            seen = scheduler.last_observation
            observations.append(seen)
            decided_at.append(step)
        model.train()
        rates += train_steps(model, optimizer, scheduler, (images, labels), [trainee.order.next()])
    return np.array(observations), np.array(rates), np.array(decided_at)


@pytest.mark.parametrize("kind", ["ppo", "recurrent", "residual", "relative", "epochs"])
def test_scheduler_gives_the_env_trajectory(controllers, kind):
    controller = controllers[kind]
    assert controller.is_recurrent == (kind == "recurrent")
    env = make_env(controller)
    env_obs, env_rates = run_env(env, controller)
    obs, rates, decided_at = run_scheduler(env, controller, start=True)
    env.close()
    every = env.unwrapped.steps_per_action
    assert list(decided_at) == list(range(0, env.unwrapped.total_steps, every))
    np.testing.assert_allclose(obs, env_obs, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(rates, env_rates, rtol=1e-9)
    # the rate changes at (nearly) every decision, so a misaligned one would have shown
    decisions = len(decided_at)
    assert np.count_nonzero(np.diff(rates)) >= decisions - 2, rates[::every]
    if kind != "epochs":  # and it moves far (the epochs controller's spans 1.3x)
        assert rates.max() / rates.min() > 1.5


def test_without_start_the_first_step_makes_the_first_decision(controllers):
    controller = controllers["ppo"]
    env = make_env(controller)
    env_obs, env_rates = run_env(env, controller)
    obs, rates, decided_at = run_scheduler(env, controller, start=False)
    env.close()
    every = env.unwrapped.steps_per_action
    # the first step runs at the optimizer's rate; decisions then fall where the env's do
    assert rates[0] == INITIAL_LR
    assert list(decided_at) == [1, *range(every, env.unwrapped.total_steps, every)]
    # the first decision sees the env's reset observation (the first batch's loss in
    # train mode: the same for this MLP) and sets the env's first rate
    np.testing.assert_allclose(obs[0], env_obs[0], rtol=1e-5)
    np.testing.assert_allclose(rates[1:every], env_rates[1:every], rtol=1e-5)


# ----- any optimizer, any classifier -----------------------------------------------------


def synthetic_model(seed: int = 0) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    data = load_dataset("synthetic")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP(int(np.prod(data.image_shape)), data.num_classes, hidden=32)
    return model, (data.train.images, data.train.labels)


def batches(n: int, size: int = 32, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 2000, (size,), generator=generator) for _ in range(n)]


def train_steps(model, optimizer, scheduler, train_data, indices) -> list[float]:
    """Plain training steps; the first group's rate of each."""
    rates = []
    x, y = train_data
    for idx in indices:
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step(loss)
    return rates


def two_groups(model: nn.Module, optimizer_class, lr: float) -> torch.optim.Optimizer:
    head = model.net[-1]
    body = [p for name, p in model.named_parameters() if not name.startswith("net.3.")]
    return optimizer_class([{"params": body}, {"params": head.parameters(), "lr": lr / 10}], lr=lr)


@pytest.mark.parametrize("optimizer_class", [torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW])
def test_every_group_follows_the_first_keeping_its_ratio(controllers, optimizer_class):
    controller = controllers["ppo"]
    model, train_data = synthetic_model()
    optimizer = two_groups(model, optimizer_class, 0.01)
    val = load_dataset("synthetic").val
    scheduler = LearnedLRScheduler(
        optimizer, controller, model=model, val_data=(val.images, val.labels), every=5
    )
    assert isinstance(scheduler, LRScheduler)
    model.train()
    model.net[2].eval()  # a submodule the user keeps in eval mode stays so
    bounds = scheduler.settings["lr_bounds"]
    order = batches(20)
    x, y = train_data
    scheduler.start(F.cross_entropy(model(x[order[0]]), y[order[0]]))
    previous = 0.01
    for step in range(0, 20, 5):  # a decision, then the chunk of 5 steps it rules
        group0, group1 = (g["lr"] for g in optimizer.param_groups)
        assert scheduler.last_action != 0.0
        assert group0 == scaled_lr(previous, scheduler.last_action, 2.0, bounds)
        assert group1 == pytest.approx(group0 / 10, rel=1e-12)
        assert scheduler.get_last_lr() == [group0, group1]
        previous = group0
        rates = train_steps(model, optimizer, scheduler, train_data, order[step : step + 5])
        assert rates == [group0] * 5
    assert model.training and model.net[1].training and not model.net[2].training
    assert scheduler.last_epoch == 20
    assert tuple(scheduler.last_features) == scheduler.feature_names


def test_state_dict_resumes_exactly(controllers, tmp_path):
    """Stop mid-chunk, save everything with torch.save, resume in fresh objects: the same
    rates and weights as an uninterrupted run (recurrent controller: LSTM state too)."""
    controller = controllers["recurrent"]
    val = load_dataset("synthetic").val.head(200)
    indices = batches(45)

    def fresh():
        model, train_data = synthetic_model()
        optimizer = two_groups(model, torch.optim.Adam, 0.01)
        scheduler = LearnedLRScheduler(
            optimizer, controller, model=model, val_data=val, total_steps=60
        )
        return model, optimizer, scheduler, train_data

    uninterrupted, optimizer, scheduler, train_data = fresh()
    straight = train_steps(uninterrupted, optimizer, scheduler, train_data, indices)

    model, optimizer, scheduler, _ = fresh()
    first = train_steps(model, optimizer, scheduler, train_data, indices[:23])
    state = scheduler.state_dict()
    assert state["lstm_state"] is not None and state["loss_count"] == 3
    saved = tmp_path / "checkpoint.pt"
    torch.save({"model": model.state_dict(), "opt": optimizer.state_dict(), "sched": state}, saved)
    checkpoint = torch.load(saved, weights_only=True)
    model, optimizer, scheduler, _ = fresh()
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["opt"])
    scheduler.load_state_dict(checkpoint["sched"])
    rest = train_steps(model, optimizer, scheduler, train_data, indices[23:])
    assert first + rest == straight
    assert len(set(straight)) > 3  # the schedule moved, after the interruption too
    assert len(set(rest)) > 1
    for a, b in zip(uninterrupted.parameters(), model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_scale_free_controller_resumes_with_its_reference_at_reset(controllers, tmp_path):
    """feature_transform="relative" divides by the loss and weights before the first step;
    a scheduler made after the weights were restored must read them from the state, not
    from the trained model, or the resumed run observes (and sets) something else."""
    from schedulefree import SGDScheduleFree

    controller = controllers["relative"]
    val = load_dataset("synthetic").val.head(200)
    indices = batches(45)

    def run(indices, checkpoint=None):
        model, train_data = synthetic_model()
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"])
        optimizer = SGDScheduleFree(model.parameters(), lr=0.05, warmup_steps=10)
        if checkpoint is not None:
            optimizer.load_state_dict(checkpoint["opt"])
        optimizer.train()
        scheduler = LearnedLRScheduler(
            optimizer, controller, model=model, val_data=val, total_steps=60
        )
        if checkpoint is not None:
            scheduler.load_state_dict(checkpoint["sched"])
        rates = train_steps(model, optimizer, scheduler, train_data, indices)
        return rates, model, optimizer, scheduler

    straight, *_ = run(indices)
    first, model, optimizer, scheduler = run(indices[:23])
    saved = tmp_path / "checkpoint.pt"
    torch.save(
        {
            "model": model.state_dict(),
            "opt": optimizer.state_dict(),
            "sched": scheduler.state_dict(),
        },
        saved,
    )
    rest, *_ = run(indices[23:], torch.load(saved, weights_only=True))
    assert len(set(rest)) > 1  # the controller moved the rate after the interruption
    assert first + rest == straight


@pytest.mark.parametrize("val_form", ["tuple", "split", "numpy", "loader"], ids=lambda form: form)
def test_validation_data_forms_give_the_same_features(controllers, val_form):
    controller = controllers["ppo"]
    val = load_dataset("synthetic").val.head(100)
    forms = {
        "tuple": (val.images, val.labels),
        "split": val,
        "numpy": (val.images.numpy(), val.labels.numpy()),
        "loader": DataLoader(TensorDataset(val.images, val.labels), batch_size=30),
    }
    observations = []
    for form in ("tuple", val_form):
        model, _ = synthetic_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        scheduler = LearnedLRScheduler(optimizer, controller, model=model, val_data=forms[form])
        scheduler.start(2.3)
        observations.append(scheduler.last_observation)
    np.testing.assert_array_equal(observations[0], observations[1])


def test_a_named_layer_that_is_not_linear(controllers):
    controller = controllers["ppo"]
    val = load_dataset("synthetic").val.head(50)
    model = nn.Sequential(nn.Conv2d(1, 10, 16), nn.Flatten())  # (N, 10) logits, no Linear
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match=r"no nn\.Linear.*feature_layer"):
        LearnedLRScheduler(optimizer, controller, model=model, val_data=val)
    with pytest.raises(ValueError, match="not a submodule"):
        LearnedLRScheduler(optimizer, controller, model=model, val_data=val, feature_layer="9")
    scheduler = LearnedLRScheduler(
        optimizer, controller, model=model, val_data=val, feature_layer="0"
    )
    scheduler.start(2.3)
    weight = model[0].weight.detach().double()
    features = scheduler.last_features
    assert features["weight_mean"] == pytest.approx(weight.mean().item(), rel=1e-5)
    assert features["weight_var"] == pytest.approx(weight.var(unbiased=False).item(), rel=1e-5)


# ----- clear errors ----------------------------------------------------------------------


def test_a_file_that_is_not_a_controller(tmp_path):
    model, _ = synthetic_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    val = load_dataset("synthetic").val.head(50)
    text = tmp_path / "notes.txt"
    text.write_text("not a controller")
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("hello.txt", "hi")
    for path in (tmp_path / "missing.zip", text, other_zip):
        with pytest.raises(ControllerFileError):
            LearnedLRScheduler(optimizer, path, model=model, val_data=val)


@pytest.mark.parametrize(
    ("make_val", "message"),
    [
        (lambda v: (v.images, v.labels[:, None]), "1-D tensor of class indices"),
        (lambda v: (v.images, v.labels.float()), "class indices"),
        (lambda v: (v.images, v.labels[:-1]), "inputs but"),
        (lambda v: (v.images[:1], v.labels[:1]), "at least 2"),
        (lambda v: (v.images[:, :, :8], v.labels), "could not run"),
        (lambda v: (v.images, v.labels + 10), "logits"),
        (lambda v: v.images, "must be"),
    ],
    ids=["2d-labels", "float-labels", "lengths", "one-example", "image-size", "classes", "x-only"],
)
def test_validation_data_of_the_wrong_shape(controllers, make_val, message):
    model, _ = synthetic_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    val = load_dataset("synthetic").val.head(50)
    with pytest.raises(ValueError, match=message):
        LearnedLRScheduler(optimizer, controllers["ppo"], model=model, val_data=make_val(val))


def test_progress_needs_total_steps(controllers):
    model, _ = synthetic_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    val = load_dataset("synthetic").val.head(50)
    with pytest.raises(ValueError, match=r"needs total_steps.*trained on runs of 200 steps"):
        LearnedLRScheduler(optimizer, controllers["recurrent"], model=model, val_data=val)
    LearnedLRScheduler(
        optimizer, controllers["recurrent"], model=model, val_data=val, total_steps=100
    )


def test_the_run_epochs_need_steps_per_epoch(controllers):
    """A controller that reads the run's epochs needs both run lengths, and uses them."""
    model, _ = synthetic_model()
    optimizer = schedulefree.SGDScheduleFree(model.parameters(), lr=0.05, warmup_steps=10)
    val = load_dataset("synthetic").val.head(50)
    controller = controllers["epochs"]
    with pytest.raises(ValueError, match=r"needs total_steps and steps_per_epoch"):
        LearnedLRScheduler(optimizer, controller, model=model, val_data=val, total_steps=100)
    with pytest.raises(ValueError, match=r"needs total_steps"):  # it reads progress too
        LearnedLRScheduler(optimizer, controller, model=model, val_data=val, steps_per_epoch=50)
    with pytest.raises(ValueError, match=r"steps_per_epoch must be a positive number, got 0"):
        LearnedLRScheduler(
            optimizer, controller, model=model, val_data=val, total_steps=100, steps_per_epoch=0
        )
    scheduler = LearnedLRScheduler(
        optimizer, controller, model=model, val_data=val, total_steps=100, steps_per_epoch=12.5
    )
    assert scheduler.feature_names[-1] == "log2_run_epochs"
    scheduler.start(2.3)
    assert scheduler.last_features["log2_run_epochs"] == pytest.approx(np.log2(1 + 100 / 12.5))


def test_a_diverged_run_keeps_its_rate_and_steps_past_the_end_warn(controllers):
    model, _ = synthetic_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    val = load_dataset("synthetic").val.head(50)
    scheduler = LearnedLRScheduler(
        optimizer, controllers["ppo"], model=model, val_data=val, every=2, total_steps=6
    )
    scheduler.start(2.3)
    rate = scheduler.get_last_lr()
    scheduler.step(torch.tensor(float("nan")))
    with pytest.warns(RuntimeWarning, match="diverged"):
        scheduler.step(1.0)  # the decision at step 2 sees a NaN training loss
    assert scheduler.get_last_lr() == rate and np.isnan(scheduler.last_features["train_loss"])
    scheduler.step(1.0)
    scheduler.step(1.0)  # the decision at step 4 is made
    assert scheduler.get_last_lr() != rate
    rate = scheduler.get_last_lr()
    scheduler.step(1.0)
    scheduler.step(1.0)  # step 6 = total_steps: the episode's end, no decision
    assert scheduler.get_last_lr() == rate and scheduler.last_epoch == 6
    scheduler.step(1.0)
    with pytest.warns(UserWarning, match="past total_steps"):
        scheduler.step(1.0)
    assert scheduler.get_last_lr() == rate


def test_env_settings_come_from_the_training_config():
    defaults = trained_env_kwargs({})
    assert defaults["factor_base"] == 2.0 and defaults["lr_bounds"] == (1e-6, 1.0)
    assert defaults["steps_per_action"] == 10 and defaults["total_steps"] == 1000
    config = {"env_id": "lrenv:lrenv/Synthetic-v0", "env_kwargs": {"lr_bounds": [1e-5, 0.5]}}
    resolved = trained_env_kwargs(config)
    assert resolved["total_steps"] == 200 and resolved["dataset"] == "synthetic"  # registered
    assert resolved["lr_bounds"] == (1e-5, 0.5)  # env_kwargs over them
    with pytest.raises(ValueError, match="not a registered"):
        trained_env_kwargs({"env_id": "lrenv/NoSuchTask-v0"})


# ----- the user's rate is the scale; the optimizer family is checked ---------------------


def test_the_file_states_its_contract(controller_paths):
    controller = Controller.load(controller_paths["residual"])
    contract = controller.contract
    assert controller.description["contract"] == contract.to_dict()  # written by train.py
    assert contract.optimizer == "schedule_free" and contract.warmup_steps == 10
    assert contract.base_schedule == {"kind": "constant", "lr": 0.05}
    assert contract.reference_lr == 0.05 and contract.action_mode == "residual"
    assert "your lr x base(t) / 0.05 x 2 ** a" in contract.describe_action()
    plain = Controller.load(controller_paths["ppo"]).contract
    assert plain.optimizer == "sgd" and plain.reference_lr is None


@pytest.mark.parametrize("scale", [1.0, 10.0, 0.02])
def test_a_residual_controller_draws_its_base_at_your_rate(controllers, scale):
    """The rate of the first decision is the env's times (your rate / the base's peak): the
    controller sees the same features, its log-rate in its own units."""
    controller = controllers["residual"]
    env = make_env(controller)
    env_obs, env_rates = run_env(env, controller)
    env.reset(seed=SEED)
    trainee = env.unwrapped.trainee
    optimizer = trainee.optimizer
    for group in optimizer.param_groups:
        group["lr"] *= scale
    scheduler = LearnedLRScheduler(
        optimizer, controller, model=trainee.model, val_data=trainee.val_data, total_steps=200
    )
    env.close()
    assert scheduler.scale == pytest.approx(scale) and scheduler.base_lrs == [INITIAL_LR * scale]
    scheduler.start(trainee.peek_train_loss())
    np.testing.assert_allclose(scheduler.last_observation, env_obs[0], rtol=1e-6)
    assert scheduler.get_last_lr()[0] == pytest.approx(scale * env_rates[0], rel=1e-9)


def test_a_controller_refuses_the_other_optimizer_family(controllers):
    model, _ = synthetic_model()
    val = load_dataset("synthetic").val
    schedule_free = schedulefree.SGDScheduleFree(model.parameters(), lr=0.05)
    with pytest.raises(TypeError, match=r"trained on plain SGD .*pass torch\.optim\.SGD") as err:
        LearnedLRScheduler(schedule_free, controllers["ppo"], model=model, val_data=val)
    assert "\n" not in str(err.value)
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    with pytest.raises(TypeError, match=r"trained on schedule-free SGD \(warmup 10 steps\)"):
        LearnedLRScheduler(adam, controllers["residual"], model=model, val_data=val)


def load_example():
    path = Path(__file__).parent.parent / "examples" / "train_with_learned_scheduler.py"
    spec = importlib.util.spec_from_file_location("train_with_learned_scheduler", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_trains_with_a_controller_and_explains_a_missing_one(
    controller_paths, tmp_path, capsys
):
    example = load_example()
    threads = torch.get_num_threads()
    flags = ["--synthetic", "--steps", "30", "--optimizer", "adam", "--lr", "0.001"]
    assert example.main(["--controller", str(controller_paths["recurrent"]), *flags]) == 0
    torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "decides every 10 steps" in out and "test accuracy" in out
    assert len([line for line in out.splitlines() if line.split()[0] in ("10", "20")]) == 2
    assert example.main(["--controller", str(tmp_path / "missing.zip")]) == 2
    assert "python train.py --preset smoke" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_validation_pass_follows_the_model_to_the_gpu(controllers):
    """Built on the CPU, the model then moved to the GPU: the validation data follows."""
    model, train_data = synthetic_model()
    val = load_dataset("synthetic").val.head(100)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = LearnedLRScheduler(optimizer, controllers["ppo"], model=model, val_data=val)
    model.cuda()
    x, y = (t.cuda() for t in train_data)
    rates = train_steps(model, optimizer, scheduler, (x, y), [i.cuda() for i in batches(20)])
    assert scheduler.last_epoch == 20 and np.isfinite(scheduler.last_observation).all()
    assert len(set(rates)) == 3  # the initial rate, the first decision's, the second's
