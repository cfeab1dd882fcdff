"""One network trained with SGD on device-resident data; it knows nothing of RL.

The hot path follows airbench: the whole split is a tensor on the training device,
batches are indexed from a seeded permutation, and the only host synchronisation per
chunk of SGD steps is reading back the summed loss once at its end.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lrenv.data import Dataset, Split
from lrenv.models import build_model, final_linear


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; anything else is passed to torch."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but CUDA is not available; use 'cpu'")
    return resolved


@dataclass(frozen=True)
class Evaluation:
    """Loss, accuracy and softmax predictions of the model on one split."""

    loss: float
    accuracy: float
    probs: torch.Tensor


class Trainee:
    """A model, its SGD optimizer and its data; trains in chunks of SGD steps.

    Args:
        dataset: the splits, on the CPU; they are moved to ``device`` once.
        model: ``"cnn"``, ``"resnet"`` or ``"mlp"``.
        batch_size: examples per SGD step.
        momentum: SGD momentum (0 is the paper's plain SGD).
        val_size: evaluate on the first ``val_size`` validation examples (``None``: all).
        device: where the model and data live.
    """

    def __init__(
        self,
        dataset: Dataset,
        model: str,
        batch_size: int,
        momentum: float = 0.0,
        val_size: int | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = resolve_device(device)
        self.dataset = dataset
        self.model_name = model
        self.batch_size = batch_size
        self.momentum = momentum
        self.train_data = dataset.train.to(self.device)
        self.val_data = dataset.val.head(val_size).to(self.device)
        self.channels_last = model in ("cnn", "resnet") and self.device.type == "cpu"
        if self.channels_last:  # measurably faster convolutions on the CPU (see lrenv.bench)
            self.train_data = Split(
                self.train_data.images.contiguous(memory_format=torch.channels_last),
                self.train_data.labels,
            )
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.SGD | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_val_loss = math.inf
        self.sgd_step = 0

    def reset(self, seed: int, lr: float) -> None:
        """A freshly initialised model and optimizer, and a new batch order, all from ``seed``."""
        with torch.random.fork_rng(devices=[]):  # seed the init without touching global state
            torch.manual_seed(seed)
            model = build_model(self.model_name, self.dataset.image_shape, self.dataset.num_classes)
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=self.momentum)
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long)
        self._cursor = 0
        self.sgd_step = 0
        self.best_state = None
        self.best_val_loss = math.inf

    @property
    def lr(self) -> float:
        """The learning rate of the first parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every parameter group."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._cursor + self.batch_size > len(self._order):
            # a new epoch: reshuffle; a short remainder batch is dropped
            self._order = torch.randperm(len(self.train_data), generator=self.generator).to(
                self.device
            )
            self._cursor = 0
        idx = self._order[self._cursor : self._cursor + self.batch_size]
        self._cursor += self.batch_size
        return self.train_data.images[idx], self.train_data.labels[idx]

    def peek_train_loss(self) -> float:
        """The loss of the next training batch, without a step and without consuming it."""
        images, labels = self._next_batch()
        self._cursor -= self.batch_size
        return self.evaluate(Split(images, labels)).loss

    def train_steps(self, n: int) -> float:
        """Run ``n`` SGD steps; return their mean training loss (may be non-finite)."""
        self.model.train()
        total = torch.zeros((), device=self.device)
        for _ in range(n):
            images, labels = self._next_batch()
            loss = F.cross_entropy(self.model(images), labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach()
        self.sgd_step += n
        return total.item() / n

    def evaluate(self, split: Split | None = None, model: nn.Module | None = None) -> Evaluation:
        """Loss, accuracy and softmax predictions on ``split`` (default: the validation subset)."""
        split = self.val_data if split is None else split
        model = self.model if model is None else model
        model.eval()
        with torch.inference_mode():
            logits = torch.cat([model(x) for x in split.images.split(2000)]).float()
            loss = F.cross_entropy(logits, split.labels).item()
            accuracy = (logits.argmax(dim=1) == split.labels).float().mean().item()
            probs = logits.softmax(dim=1)
        return Evaluation(loss, accuracy, probs)

    def final_weight(self) -> torch.Tensor:
        """The final dense layer's weight matrix."""
        return final_linear(self.model).weight.detach()

    def is_finite(self) -> bool:
        """Whether every parameter is finite."""
        return all(torch.isfinite(p).all().item() for p in self.model.parameters())

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
        return self.evaluate(self.dataset.test.to(self.device), model=model)
