"""Networks trained with SGD on device-resident data; nothing here knows of RL.

The hot path follows airbench: the whole split is a tensor on the training device,
batches are indexed from a seeded permutation, and the only host synchronisation per
chunk of SGD steps is reading back the summed loss once at its end.

- :class:`TraineeInterface` is what the env asks of a trainee.
- :class:`Trainee` trains one ``nn.Module`` with ``torch.optim.SGD`` (the single env).
- :func:`device_data` and :class:`BatchOrder`: the data on the device, shared by every
  trainee of a process, and the seeded batch order every trainee follows.
- The batched trainee, N of them as one computation, lives in :mod:`lrenv.batched_trainee`
  behind the same interface.
"""

from __future__ import annotations

import copy
import math
import weakref
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from lrenv.checks import check_integer
from lrenv.data import Dataset, Split
from lrenv.models import build_model, final_linear

EVAL_CHUNK = 2000  # validation examples per forward pass of one model
PRECISIONS = ("fp32", "bf16")


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; anything else is passed to torch."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but CUDA is not available; use 'cpu'")
    return resolved


def check_precision(precision: str, device: torch.device | None = None) -> None:
    """Raise ``ValueError`` unless ``precision`` is one of :data:`PRECISIONS` (and, given a
    ``device``, one it supports)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if device is None:
        return
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("this GPU has no bfloat16 support; use precision='fp32'")


OPTIMIZERS = ("sgd", "schedule_free", "prodigy", "dadapt_sgd")
"""The trainee's optimizers: plain SGD (the paper's), and the tuning-free ones a learned
controller is compared with. The learning rate is the optimizer's ``lr`` in every case; for
Prodigy and D-Adaptation it multiplies the step size they estimate (1 is their default)."""


def check_optimizer(optimizer: str, warmup_steps: int = 0) -> None:
    """ValueError, naming what is allowed, for an unknown optimizer or a bad warmup."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    check_integer(warmup_steps, "warmup_steps", 0)
    if warmup_steps and optimizer != "schedule_free":
        raise ValueError(
            "warmup_steps is schedule-free SGD's own warmup: use it with "
            "optimizer='schedule_free' (plain SGD warms up through its schedule)"
        )


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The forward pass's precision: ``"bf16"`` is bfloat16 autocast, ``"fp32"`` is plain.

    Under bf16 autocast convolutions and matrix products run in bfloat16 (on the matrix
    units of a GPU, or of a CPU with AMX), while the weights, their gradients, the SGD
    update and the loss stay in float32: mixed precision, not a bfloat16 model.
    """
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@dataclass(frozen=True)
class Evaluation:
    """Loss, accuracy and softmax predictions of the model on one split."""

    loss: float
    accuracy: float
    probs: torch.Tensor


# --- data on the device, shared ---------------------------------------------------------------

_DEVICE_DATA: dict[int, dict[tuple[str, bool], tuple[Split, Split]]] = {}


class TraineeInterface(Protocol):
    """What :class:`~lrenv.env.LRScheduleEnv` asks of its trainee.

    :class:`Trainee` and :class:`lrenv.batched_trainee.TraineeSlot` implement it; a test
    checks that both have every member (``tests/test_vector.py``).
    """

    device: torch.device
    dataset: Dataset
    val_data: Split

    def reset(self, seed: int, lr: float) -> None:
        """A freshly initialised model and a new batch order, all from ``seed``."""

    @property
    def lr(self) -> float:
        """The learning rate in effect."""

    def set_lr(self, lr: float) -> None:
        """Set the learning rate for the next SGD steps."""

    @property
    def sgd_step(self) -> int:
        """SGD steps taken since reset."""

    @property
    def best_val_loss(self) -> float:
        """The best validation loss recorded since reset."""

    def peek_train_loss(self) -> float:
        """The next training batch's loss, without a step and without consuming it."""

    def train_steps(self, n: int) -> float:
        """Run ``n`` SGD steps; return their mean training loss (may be non-finite)."""

    def evaluate(self, split: Split | None = None) -> Evaluation:
        """Loss, accuracy and predictions on ``split`` (default: validation)."""

    def final_weight(self) -> torch.Tensor:
        """The final dense layer's weight matrix (the paper's weight features)."""

    def is_finite(self) -> bool:
        """Whether every parameter is finite."""

    def record_validation(self, val_loss: float, keep_weights: bool) -> None:
        """Track the best validation loss; with ``keep_weights`` copy the weights there."""

    def test_best(self) -> Evaluation:
        """Evaluate the best-validation checkpoint once on the test split."""


def device_data(
    dataset: Dataset, device: torch.device, channels_last: bool = False
) -> tuple[Split, Split]:
    """The train and validation splits of ``dataset`` on ``device``, one copy per process.

    Many trainees (a ``DummyVecEnv`` of single envs, or a batched env) share one copy:
    without this, each env would hold its own copy of the data on the GPU (or, with
    ``channels_last`` on the CPU, of the re-laid-out training images).
    """
    per_dataset = _DEVICE_DATA.get(id(dataset))
    if per_dataset is None:
        per_dataset = _DEVICE_DATA[id(dataset)] = {}
        weakref.finalize(dataset, _DEVICE_DATA.pop, id(dataset), None)
    key = (str(device), channels_last)
    if key not in per_dataset:
        train = dataset.train.to(device)
        if channels_last:
            train = Split(train.images.contiguous(memory_format=torch.channels_last), train.labels)
        per_dataset[key] = (train, dataset.val.to(device))
    return per_dataset[key]


class BatchOrder:
    """A seeded stream of batch indices: a fresh permutation each epoch.

    A short remainder at the end of an epoch is dropped. Every trainee, single or batched,
    draws its batches from one of these, so a seed fixes the batch order everywhere.
    """

    def __init__(self, num_examples: int, batch_size: int, seed: int, device: torch.device) -> None:
        self.num_examples = num_examples
        self.batch_size = batch_size
        self.device = device
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long)
        self._cursor = 0

    def next(self) -> torch.Tensor:
        """The indices of the next batch, ``(batch_size,)`` on the device."""
        if self._cursor + self.batch_size > len(self._order):
            self._order = torch.randperm(self.num_examples, generator=self.generator).to(
                self.device
            )
            self._cursor = 0
        idx = self._order[self._cursor : self._cursor + self.batch_size]
        self._cursor += self.batch_size
        return idx

    def peek(self) -> torch.Tensor:
        """The indices :meth:`next` will return, without consuming them."""
        idx = self.next()
        self._cursor -= self.batch_size
        return idx


def summarize(logits: torch.Tensor, labels: torch.Tensor) -> list[Evaluation]:
    """Evaluations from logits ``(M, V, C)`` and labels ``(V,)``; one host sync for all M."""
    logits = logits.float()
    m, v, c = logits.shape
    losses = F.cross_entropy(logits.reshape(m * v, c), labels.repeat(m), reduction="none")
    accuracy = (logits.argmax(dim=-1) == labels).float().mean(dim=1)
    scalars = torch.stack([losses.view(m, v).mean(dim=1), accuracy]).tolist()
    probs = logits.softmax(dim=-1)
    return [Evaluation(scalars[0][i], scalars[1][i], probs[i]) for i in range(m)]


def evaluate_module(
    model: nn.Module, split: Split, chunk: int = EVAL_CHUNK, precision: str = "fp32"
) -> Evaluation:
    """Loss, accuracy and softmax predictions of ``model`` on ``split``, in eval mode."""
    model.eval()
    with torch.inference_mode(), autocast(split.images.device, precision):
        logits = torch.cat([model(x) for x in split.images.split(chunk)])
        return summarize(logits[None], split.labels)[0]


def fresh_model(name: str, dataset: Dataset, seed: int) -> nn.Module:
    """``build_model`` seeded with ``seed``, leaving the global random state untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(name, dataset.image_shape, dataset.num_classes)


# --- one trainee ----------------------------------------------------------------------------


class Trainee:
    """A model, its SGD optimizer and its data; trains in chunks of SGD steps.

    Args:
        dataset: the splits, on the CPU; they are moved to ``device`` once per process.
        model: ``"cnn"``, ``"resnet"`` or ``"mlp"``.
        batch_size: examples per SGD step.
        momentum: SGD momentum (0 is the paper's plain SGD).
        val_size: evaluate on the first ``val_size`` validation examples (``None``: all).
        device: where the model and data live.
        compile: run the model through ``torch.compile``: ``False`` (the default),
            ``True`` (training and validation) or ``"eval"`` (validation only). Measured on
            a CPU (``python -m lrenv.bench --compile``): the LeNet validation pass about 2x
            faster, its training step slower; compiling takes 10-30 s per process.
        channels_last: keep images and convolution weights channels-last; ``None`` (the
            default) does so for the CNN and the ResNet on the CPU, where it is faster.
        precision: ``"fp32"`` (the default) or ``"bf16"``, bfloat16 mixed precision for the
            forward passes (see :func:`autocast`). On a CPU with AMX it made the ResNet-18
            step 2.6x faster and the LeNet step 1.15-1.3x (``python -m lrenv.bench``).
        optimizer: ``"sgd"`` (``torch.optim.SGD``, the paper's), ``"schedule_free"``
            (``schedulefree.SGDScheduleFree``, momentum 0.9; the baseline of that name),
            ``"prodigy"`` (``prodigyopt.Prodigy``) or ``"dadapt_sgd"``
            (``dadaptation.DAdaptSGD``), each with its package's defaults.
            Schedule-free SGD trains at an interpolation of two sequences and is evaluated
            at their average: every validation and test pass, the best-validation
            checkpoint and the weight features read the averaged weights (eval mode).
        warmup_steps: schedule-free SGD's own linear warmup, in SGD steps (0 for ``"sgd"``).
    """

    def __init__(
        self,
        dataset: Dataset,
        model: str,
        batch_size: int,
        momentum: float = 0.0,
        val_size: int | None = None,
        device: str | torch.device = "cpu",
        compile: bool | str = False,
        channels_last: bool | None = None,
        precision: str = "fp32",
        optimizer: str = "sgd",
        warmup_steps: int = 0,
    ) -> None:
        check_optimizer(optimizer, warmup_steps)
        self.optimizer_name = optimizer
        self.warmup_steps = warmup_steps
        self.device = resolve_device(device)
        check_precision(precision, self.device)
        self.precision = precision
        self.dataset = dataset
        self.model_name = model
        self.batch_size = batch_size
        self.momentum = momentum
        if compile not in (False, True, "eval"):
            raise ValueError(f"compile must be False, True or 'eval', got {compile!r}")
        self.compile = compile
        if channels_last is None:  # measurably faster convolutions on the CPU (lrenv.bench)
            channels_last = model in ("cnn", "resnet") and self.device.type == "cpu"
        self.channels_last = channels_last
        self.train_data, val_data = device_data(dataset, self.device, self.channels_last)
        self.val_data = val_data.head(val_size)
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_val_loss = math.inf
        self.sgd_step = 0
        self._forward: Any = None
        self._eval_forward: Any = None

    def reset(self, seed: int, lr: float) -> None:
        """A freshly initialised model and optimizer, and a new batch order, all from ``seed``."""
        model = fresh_model(self.model_name, self.dataset, seed).to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        # static shapes: validation chunks and the peeked batch are a few fixed sizes
        compiled = torch.compile(model, dynamic=False) if self.compile else model
        self._forward = compiled if self.compile is True else model
        self._eval_forward = compiled
        if self.optimizer_name == "schedule_free":
            import schedulefree  # only its baseline needs it

            self.optimizer = schedulefree.SGDScheduleFree(
                model.parameters(), lr=lr, warmup_steps=self.warmup_steps
            )
        elif self.optimizer_name == "prodigy":
            import prodigyopt  # Mishchenko and Defazio 2024; the package's defaults

            self.optimizer = prodigyopt.Prodigy(model.parameters(), lr=lr)
        elif self.optimizer_name == "dadapt_sgd":
            import dadaptation  # Defazio and Mishchenko 2023, its SGD variant; defaults

            self.optimizer = dadaptation.DAdaptSGD(model.parameters(), lr=lr)
        else:
            self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=self.momentum)
        self.order = BatchOrder(len(self.train_data), self.batch_size, seed, self.device)
        self.sgd_step = 0
        self.best_state = None
        self.best_val_loss = math.inf

    @property
    def generator(self) -> torch.Generator:
        """The generator of the batch order."""
        return self.order.generator

    @property
    def lr(self) -> float:
        """The learning rate of the first parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every parameter group."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    @property
    def beta(self) -> float:
        """Schedule-free SGD's beta (the library's ``momentum``) of the first group."""
        return float(self.optimizer.param_groups[0]["momentum"])

    def set_beta(self, beta: float) -> None:
        """Set schedule-free SGD's beta in every group, for the steps that follow.

        The optimizer first moves the weights to the averaged iterate (its eval mode) with
        the beta they were formed with, so that its next switch to training forms the
        gradient point from the new beta: a change between steps keeps the iterates exact.
        """
        if self.optimizer_name != "schedule_free":
            raise RuntimeError(
                f"beta is schedule-free SGD's; this trainee trains with {self.optimizer_name!r}"
            )
        if not 0 < beta < 1:
            raise ValueError(f"schedule-free SGD's beta must lie in (0, 1), got {beta}")
        self._optimizer_mode("eval")
        for group in self.optimizer.param_groups:
            group["momentum"] = beta

    def peek_train_loss(self) -> float:
        """The loss of the next training batch, without a step and without consuming it."""
        idx = self.order.peek()
        return self.evaluate(self.train_data.rows(idx)).loss

    def train_steps(self, n: int) -> float:
        """Run ``n`` SGD steps; return their mean training loss (may be non-finite)."""
        self.model.train()
        self._optimizer_mode("train")
        total = torch.zeros((), device=self.device)
        for _ in range(n):
            idx = self.order.next()
            batch = self.train_data.rows(idx)
            with autocast(self.device, self.precision):
                loss = F.cross_entropy(self._forward(batch.images), batch.labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach()
        self.sgd_step += n
        return total.item() / n

    def evaluate(self, split: Split | None = None, model: nn.Module | None = None) -> Evaluation:
        """Loss, accuracy and softmax predictions on ``split`` (default: the validation subset)."""
        split = self.val_data if split is None else split
        if model is None:
            self._optimizer_mode("eval")  # schedule-free: the averaged weights
            self.model.eval()  # the compiled forward shares the module and its mode
            model = self._eval_forward
        return evaluate_module(model, split, precision=self.precision)

    def final_weight(self) -> torch.Tensor:
        """The final dense layer's weight matrix."""
        return final_linear(self.model).weight.detach()

    def _optimizer_mode(self, mode: str) -> None:
        """Schedule-free SGD's weights for training (``"train"``) or evaluation (``"eval"``);
        nothing for plain SGD."""
        switch = getattr(self.optimizer, mode, None) if self.optimizer_name != "sgd" else None
        if switch is not None:
            switch()

    def is_finite(self) -> bool:
        """Whether every parameter is finite (one host synchronisation, not one per tensor)."""
        with torch.no_grad():
            return bool(torch.stack([p.isfinite().all() for p in self.model.parameters()]).all())

    def record_validation(self, val_loss: float, keep_weights: bool) -> None:
        """Track the best validation loss; with ``keep_weights`` copy the weights there."""
        if val_loss < self.best_val_loss:
            self.best_val_loss = val_loss
            if keep_weights:
                self.best_state = {
                    k: v.detach().clone() for k, v in self.model.state_dict().items()
                }

    def test_best(self) -> Evaluation:
        """Evaluate the best-validation checkpoint once on the test split.

        The test split is moved to the device only here, so training never reads it.
        """
        if self.best_state is None:
            raise RuntimeError("no checkpoint recorded: call record_validation during training")
        model = copy.deepcopy(self.model)
        model.load_state_dict(self.best_state)
        return evaluate_module(model, self.dataset.test.to(self.device), precision=self.precision)


# --- many trainees as one computation --------------------------------------------------------
