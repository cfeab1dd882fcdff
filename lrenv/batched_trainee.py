"""N trainees of one architecture as one batched computation; nothing here knows of RL.

- :class:`BatchedTrainee` trains N models of one architecture together
  (``torch.func.functional_call`` under ``torch.vmap``, a per-trainee learning rate, SGD
  written functionally; on the CPU, convolutional models loop over the slots instead,
  which is faster there). Slot ``i`` seeded like a :class:`~lrenv.trainee.Trainee` follows
  the same trajectory, within float tolerance: same initial weights, same batch order, same
  update.
- :class:`TraineeSlot` is one slot of a :class:`BatchedTrainee` behind the
  :class:`~lrenv.trainee.TraineeInterface`, so the env's logic runs on it unchanged.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from lrenv.checks import check_integer
from lrenv.data import Dataset, Split
from lrenv.models import build_model, final_linear
from lrenv.trainee import (
    EVAL_CHUNK,
    BatchOrder,
    Evaluation,
    autocast,
    check_precision,
    device_data,
    evaluate_module,
    fresh_model,
    resolve_device,
    summarize,
)


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
        check_integer(n, "n", allowed="a positive number of trainees")
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
        fresh = fresh_model(self.model_name, self.dataset, seed)
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

    def _sgd_loop(
        self,
        n: int,
        slot: int,
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        velocity: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """``n`` SGD steps on one slot's ``params`` in place, exactly as ``torch.optim.SGD``.

        Returns the summed training loss, ``(1,)``, on the device.
        """
        lr = self.lrs[slot]
        total = torch.zeros(1, device=self.device)
        self.module.train()
        for _ in range(n):
            batch = self.train_data.rows(self.orders[slot].next())
            with autocast(self.device, self.precision):
                loss = F.cross_entropy(self._logits(params, buffers, batch.images), batch.labels)
            grads = torch.autograd.grad(loss, list(params.values()))
            with torch.no_grad():
                for (k, p), g in zip(params.items(), grads, strict=True):
                    if self.momentum:
                        g = velocity[k].mul_(self.momentum).add_(g)
                    p.add_(g, alpha=-lr)
                total += loss.detach()
        return total

    def _sgd_vmap(
        self,
        n: int,
        slots: list[int],
        params: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        velocity: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        """``n`` SGD steps on the stacked ``params`` of ``slots`` in place, all at once.

        Returns the summed training losses, ``(len(slots),)``, on the device.
        """
        # vmap the network only: cross-entropy under vmap runs a slow Python decomposition
        forward = torch.vmap(self._logits, randomness="error")
        lr = torch.tensor([self.lrs[i] for i in slots], device=self.device)
        steps = {k: -lr.view(-1, *([1] * (v.dim() - 1))) for k, v in params.items()}
        total = torch.zeros(len(slots), device=self.device)
        self.module.train()
        for _ in range(n):
            idx = torch.stack([self.orders[i].next() for i in slots])
            batch = self.train_data.rows(idx)
            with autocast(self.device, self.precision):
                logits = forward(params, buffers, batch.images)
                losses = (  # each trainee's mean over its own batch
                    F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten(), reduction="none")
                    .view(idx.shape)
                    .mean(dim=1)
                )
            grads = torch.autograd.grad(losses.sum(), list(params.values()))
            with torch.no_grad():
                for (k, p), g in zip(params.items(), grads, strict=True):
                    if self.momentum:
                        g = velocity[k].mul_(self.momentum).add_(g)
                    p.addcmul_(g, steps[k])
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
                self._sgd_loop(
                    n,
                    i,
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
            total = self._sgd_vmap(n, slots, params, buffers, velocity)
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
            return summarize(logits, split.labels)

    def peek_train_loss(self, i: int) -> float:
        """Slot ``i``'s loss on its next training batch, without a step or consuming it."""
        idx = self.orders[i].peek()
        return self.evaluate(self.train_data.rows(idx), [i])[0].loss


class TraineeSlot:
    """Slot ``index`` of a :class:`BatchedTrainee`, behind
    :class:`~lrenv.trainee.TraineeInterface`.

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
