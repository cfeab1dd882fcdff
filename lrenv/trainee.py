"""Networks trained with SGD on device-resident data; nothing here knows of RL.

The hot path follows airbench: the whole split is a tensor on the training device,
batches are indexed from a seeded permutation, and the only host synchronisation per
chunk of SGD steps is reading back the summed loss once at its end.

- :class:`Trainee` trains one ``nn.Module`` with ``torch.optim.SGD`` (the single env).
- :class:`BatchedTrainee` trains N models of one architecture as one batched computation
  (``torch.func.functional_call`` under ``torch.vmap``, a per-trainee learning rate, SGD
  written functionally; on the CPU, convolutional models loop over the slots instead,
  which is faster there). Slot ``i`` seeded like a :class:`Trainee` follows the same
  trajectory, within float tolerance: same initial weights, same batch order, same update.
- :class:`TraineeSlot` is one slot of a :class:`BatchedTrainee` behind the
  :class:`Trainee` interface, so the env's logic runs on it unchanged.
"""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

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


OPTIMIZERS = ("sgd", "schedule_free")


def check_optimizer(optimizer: str, warmup_steps: int = 0) -> None:
    """ValueError, naming what is allowed, for an unknown optimizer or a bad warmup."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"warmup_steps must be an integer >= 0, got {warmup_steps!r}")
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


def _summarize(logits: torch.Tensor, labels: torch.Tensor) -> list[Evaluation]:
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
        return _summarize(logits[None], split.labels)[0]


def _fresh_model(name: str, dataset: Dataset, seed: int) -> nn.Module:
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
        optimizer: ``"sgd"`` (``torch.optim.SGD``, the paper's) or ``"schedule_free"``
            (``schedulefree.SGDScheduleFree``, momentum 0.9; the baseline of that name).
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
        model = _fresh_model(self.model_name, self.dataset, seed).to(self.device)
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


class BatchedTrainee:
    """N models of one architecture, stacked, trained with SGD as one batched computation.

    Parameters and buffers live as stacked tensors (leading dimension N); a stateless copy
    of the model (on the ``meta`` device) runs them through ``torch.func.functional_call``.
    Each slot has its own learning rate, momentum buffer, batch order, step count and
    best-validation record. BatchNorm runs in training mode on each trainee's own batch and
    updates that trainee's running statistics.

    Two strategies compute the same thing:

    - ``"vmap"``: all slots at once, under ``torch.vmap`` (one kernel per layer for all N;
      convolutions become grouped convolutions). The point of batching, on a GPU.
    - ``"loop"``: slot after slot, each with the single trainee's kernels and memory layout
      (channels-last on the CPU). On a CPU a LeNet step at batch 1000 already keeps the
      cores busy, and oneDNN's grouped convolutions are several times slower than N plain
      ones (see ``python -m lrenv.bench``), so looping is the faster way there.

    ``"auto"`` is ``"vmap"`` on a GPU and for the MLP, ``"loop"`` for convolutional models
    on the CPU and for a single trainee (where vmap only adds its overhead).

    Slots are addressed by index lists: an operation on a subset of the slots leaves the
    others untouched (their weights, momentum, statistics and batch order).

    Args:
        dataset: the splits, on the CPU; moved to ``device`` once per process.
        model: ``"cnn"``, ``"resnet"`` or ``"mlp"``.
        batch_size: examples per SGD step, per trainee.
        n: number of trainees.
        momentum: SGD momentum, as ``torch.optim.SGD`` (dampening 0, no Nesterov).
        val_size: evaluate on the first ``val_size`` validation examples (``None``: all).
        device: where the models and data live.
        strategy: ``"auto"``, ``"vmap"`` or ``"loop"``.
        eval_rows: examples pushed through the batched model per validation forward pass,
            summed over trainees (a memory bound; ``"vmap"`` only).
        precision: ``"fp32"`` or ``"bf16"``, as :class:`Trainee`'s.
    """

    STRATEGIES = ("auto", "vmap", "loop")

    def __init__(
        self,
        dataset: Dataset,
        model: str,
        batch_size: int,
        n: int,
        momentum: float = 0.0,
        val_size: int | None = None,
        device: str | torch.device = "cpu",
        strategy: str = "auto",
        eval_rows: int = 16_000,
        precision: str = "fp32",
    ) -> None:
        if n < 1:
            raise ValueError(f"n must be a positive number of trainees, got {n}")
        if strategy not in self.STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {self.STRATEGIES}")
        self.device = resolve_device(device)
        check_precision(precision, self.device)
        self.precision = precision
        conv_on_cpu = model in ("cnn", "resnet") and self.device.type == "cpu"
        if strategy == "auto":
            strategy = "loop" if conv_on_cpu or n == 1 else "vmap"
        self.strategy = strategy
        # looping on the CPU: the single trainee's channels-last layout (Trainee's default)
        self.channels_last = strategy == "loop" and conv_on_cpu
        self.dataset = dataset
        self.model_name = model
        self.batch_size = batch_size
        self.n = n
        self.momentum = momentum
        self.eval_rows = eval_rows
        self.train_data, val_data = device_data(dataset, self.device, self.channels_last)
        self.val_data = val_data.head(val_size)
        with torch.device("meta"):  # shapes only, no initialisation work
            template = build_model(model, dataset.image_shape, dataset.num_classes)
        self.module = template  # stateless: functional_call fills it with each slot's tensors
        last_linear = final_linear(template)
        self.final_weight_name = next(
            f"{name}.weight" for name, module in template.named_modules() if module is last_linear
        )

        def stacked(t: torch.Tensor) -> torch.Tensor:
            if self.channels_last and t.dim() == 4:  # each slot's slice channels-last
                o, i, h, w = t.shape
                blank = torch.zeros((n, o, h, w, i), dtype=t.dtype, device=self.device)
                return blank.permute(0, 1, 4, 2, 3)
            return torch.zeros((n, *t.shape), dtype=t.dtype, device=self.device)

        with torch.no_grad():
            self.params = {k: stacked(v) for k, v in template.named_parameters()}
            self.buffers = {k: stacked(v) for k, v in template.named_buffers()}
            self.velocity = (
                {k: torch.zeros_like(v) for k, v in self.params.items()} if momentum else {}
            )
        self.lrs = [0.0] * n
        self.sgd_steps = [0] * n
        self.best_val_losses = [math.inf] * n
        self.best_states: list[dict[str, torch.Tensor] | None] = [None] * n
        self.orders: list[BatchOrder | None] = [None] * n
        self._all = list(range(n))

    # ----- per-slot state -----

    def reset_slot(self, i: int, seed: int, lr: float) -> None:
        """Slot ``i`` starts afresh, exactly as ``Trainee.reset(seed, lr)`` would."""
        fresh = _fresh_model(self.model_name, self.dataset, seed)
        with torch.no_grad():
            for k, v in fresh.named_parameters():
                self.params[k][i].copy_(v)
            for k, v in fresh.named_buffers():
                self.buffers[k][i].copy_(v)
            for v in self.velocity.values():
                v[i].zero_()  # zero velocity: the first update is the plain gradient, as SGD's
        self.orders[i] = BatchOrder(len(self.train_data), self.batch_size, seed, self.device)
        self.lrs[i] = float(lr)
        self.sgd_steps[i] = 0
        self.best_val_losses[i] = math.inf
        self.best_states[i] = None

    def state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """A copy of slot ``i``'s weights and buffers, keyed as the model's ``state_dict``."""
        return {k: v[i].detach().clone() for k, v in (*self.params.items(), *self.buffers.items())}

    def module_for(self, i: int, state: dict[str, torch.Tensor] | None = None) -> nn.Module:
        """A plain ``nn.Module`` holding slot ``i``'s weights (or ``state``)."""
        model = copy.deepcopy(self.module).to_empty(device=self.device)
        model.load_state_dict(self.state_dict(i) if state is None else state)
        return model

    def final_weight(self, i: int) -> torch.Tensor:
        """Slot ``i``'s final dense layer weight matrix."""
        return self.params[self.final_weight_name][i].detach()

    def record_validation(self, i: int, val_loss: float, keep_weights: bool) -> None:
        """Track slot ``i``'s best validation loss; with ``keep_weights`` copy its weights."""
        if val_loss < self.best_val_losses[i]:
            self.best_val_losses[i] = val_loss
            if keep_weights:
                self.best_states[i] = self.state_dict(i)

    # ----- batched computation -----

    def _gather(self, tensors: dict[str, torch.Tensor], slots: Sequence[int]):
        if list(slots) == self._all:
            return dict(tensors), None
        idx = torch.tensor(list(slots), device=self.device)
        return {k: v.index_select(0, idx) for k, v in tensors.items()}, idx

    def _logits(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.module, (params, buffers), (x,))

    def _sgd(
        self,
        n: int,
        slots: list[int],
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        velocity: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """``n`` SGD steps on ``params`` in place: one slot's (loop) or stacked (vmap).

        Returns the summed training losses, ``(len(slots),)``, on the device.
        """
        batched = self.strategy == "vmap"
        # vmap the network only: cross-entropy under vmap runs a slow Python decomposition
        forward = torch.vmap(self._logits, randomness="error") if batched else self._logits
        if batched:
            lr = torch.tensor([self.lrs[i] for i in slots], device=self.device)
            steps = {k: -lr.view(-1, *([1] * (v.dim() - 1))) for k, v in params.items()}
        total = torch.zeros(len(slots), device=self.device)
        self.module.train()
        for _ in range(n):
            if batched:
                idx = torch.stack([self.orders[i].next() for i in slots])
            else:
                idx = self.orders[slots[0]].next()
            batch = self.train_data.rows(idx)
            with autocast(self.device, self.precision):
                logits = forward(params, buffers, batch.images)
                if batched:  # each trainee's mean over its own batch
                    losses = (
                        F.cross_entropy(
                            logits.flatten(0, 1), batch.labels.flatten(), reduction="none"
                        )
                        .view(idx.shape)
                        .mean(dim=1)
                    )
                else:
                    losses = F.cross_entropy(logits, batch.labels)
            grads = torch.autograd.grad(losses.sum(), list(params.values()))
            with torch.no_grad():
                for (k, p), g in zip(params.items(), grads, strict=True):
                    if self.momentum:
                        g = velocity[k].mul_(self.momentum).add_(g)
                    if batched:
                        p.addcmul_(g, steps[k])
                    else:  # exactly torch.optim.SGD's update
                        p.add_(g, alpha=-self.lrs[slots[0]])
                total += losses.detach()
        return total

    def train_steps(self, n: int, slots: Sequence[int] | None = None) -> list[float]:
        """Run ``n`` SGD steps on each slot in ``slots`` (default all).

        Returns:
            Each slot's mean training loss over the steps (may be non-finite).
        """
        slots = self._all if slots is None else list(slots)
        if self.strategy == "loop":  # each slot's views into the stacks, updated in place
            totals = [
                self._sgd(
                    n,
                    [i],
                    {k: v[i].detach().requires_grad_() for k, v in self.params.items()},
                    {k: v[i] for k, v in self.buffers.items()},
                    {k: v[i] for k, v in self.velocity.items()},
                )
                for i in slots
            ]
            total = torch.cat(totals)
        else:
            params, idx = self._gather(self.params, slots)
            buffers, _ = self._gather(self.buffers, slots)
            velocity, _ = self._gather(self.velocity, slots)
            params = {k: v.detach().requires_grad_() for k, v in params.items()}
            total = self._sgd(n, slots, params, buffers, velocity)
            # the whole stack was updated in place (its leaves are views); a subset was
            # gathered into copies: write them back
            if idx is not None:
                with torch.no_grad():
                    for source, target in (
                        (params, self.params),
                        (buffers, self.buffers),
                        (velocity, self.velocity),
                    ):
                        for k, v in source.items():
                            target[k].index_copy_(0, idx, v.detach())
        for i in slots:
            self.sgd_steps[i] += n
        return [t / n for t in total.tolist()]

    def is_finite(self, slots: Sequence[int] | None = None) -> list[bool]:
        """Whether each slot's parameters are all finite (one host synchronisation)."""
        slots = self._all if slots is None else list(slots)
        params, _ = self._gather(self.params, slots)
        with torch.no_grad():
            flags = torch.stack([v.isfinite().flatten(1).all(dim=1) for v in params.values()])
            return flags.all(dim=0).tolist()

    def evaluate(
        self, split: Split | None = None, slots: Sequence[int] | None = None
    ) -> list[Evaluation]:
        """Each slot's loss, accuracy and predictions on ``split`` (default: validation)."""
        split = self.val_data if split is None else split
        slots = self._all if slots is None else list(slots)
        self.module.eval()
        with torch.inference_mode(), autocast(self.device, self.precision):
            if self.strategy == "loop":
                logits = torch.stack(
                    [
                        torch.cat(
                            [
                                self._logits(
                                    {k: v[i] for k, v in self.params.items()},
                                    {k: v[i] for k, v in self.buffers.items()},
                                    x,
                                )
                                for x in split.images.split(EVAL_CHUNK)
                            ]
                        )
                        for i in slots
                    ]
                )
            else:
                params, _ = self._gather(self.params, slots)
                buffers, _ = self._gather(self.buffers, slots)
                chunk = max(1, self.eval_rows // len(slots))
                forward = torch.vmap(self._logits, in_dims=(0, 0, None), randomness="error")
                logits = torch.cat(
                    [forward(params, buffers, x) for x in split.images.split(chunk)], dim=1
                )
            return _summarize(logits, split.labels)

    def peek_train_loss(self, i: int) -> float:
        """Slot ``i``'s loss on its next training batch, without a step or consuming it."""
        idx = self.orders[i].peek()
        return self.evaluate(self.train_data.rows(idx), [i])[0].loss


class TraineeSlot:
    """Slot ``index`` of a :class:`BatchedTrainee`, behind the :class:`Trainee` interface.

    An env holding one of these as its ``trainee`` runs exactly its usual logic; a vector
    env trains all slots at once between ``begin_step`` and ``finish_step``.
    """

    def __init__(self, batched: BatchedTrainee, index: int) -> None:
        self.batched = batched
        self.index = index
        self.device = batched.device
        self.dataset = batched.dataset
        self.model_name = batched.model_name
        self.batch_size = batched.batch_size
        self.momentum = batched.momentum
        self.train_data = batched.train_data
        self.val_data = batched.val_data

    def reset(self, seed: int, lr: float) -> None:
        """A freshly initialised model and a new batch order, as ``Trainee.reset``."""
        self.batched.reset_slot(self.index, seed, lr)

    @property
    def lr(self) -> float:
        """The learning rate in effect."""
        return self.batched.lrs[self.index]

    def set_lr(self, lr: float) -> None:
        """Set the learning rate."""
        self.batched.lrs[self.index] = float(lr)

    @property
    def sgd_step(self) -> int:
        """SGD steps taken since reset."""
        return self.batched.sgd_steps[self.index]

    @property
    def best_val_loss(self) -> float:
        """The best validation loss recorded since reset."""
        return self.batched.best_val_losses[self.index]

    @property
    def model(self) -> nn.Module:
        """A plain ``nn.Module`` copy of this slot's current weights (not a live view)."""
        return self.batched.module_for(self.index)

    def peek_train_loss(self) -> float:
        """The loss of the next training batch, without a step and without consuming it."""
        return self.batched.peek_train_loss(self.index)

    def train_steps(self, n: int) -> float:
        """Run ``n`` SGD steps on this slot alone; return their mean training loss."""
        return self.batched.train_steps(n, [self.index])[0]

    def evaluate(self, split: Split | None = None) -> Evaluation:
        """Loss, accuracy and softmax predictions on ``split`` (default: validation)."""
        return self.batched.evaluate(split, [self.index])[0]

    def final_weight(self) -> torch.Tensor:
        """The final dense layer's weight matrix."""
        return self.batched.final_weight(self.index)

    def is_finite(self) -> bool:
        """Whether every parameter is finite."""
        return self.batched.is_finite([self.index])[0]

    def record_validation(self, val_loss: float, keep_weights: bool) -> None:
        """Track the best validation loss; with ``keep_weights`` copy the weights there."""
        self.batched.record_validation(self.index, val_loss, keep_weights)

    def test_best(self) -> Evaluation:
        """Evaluate the best-validation checkpoint once on the test split."""
        state = self.batched.best_states[self.index]
        if state is None:
            raise RuntimeError("no checkpoint recorded: call record_validation during training")
        model = self.batched.module_for(self.index, state)
        test = self.dataset.test.to(self.device)
        return evaluate_module(model, test, precision=self.batched.precision)
