"""A standard PyTorch training script, adapted to a learned learning-rate controller.

The shape is pytorch/examples' ``mnist/main.py``: a model, ``train()`` and ``test()`` per
epoch over ``DataLoader``s, the optimizer of your choice. The changes for the learned
scheduler are marked ``# learned scheduler``:

1. carve a validation subset from the training set (``random_split``): the controller
   measures the validation loss and predictions on it, never on the test set;
2. make ``LearnedLRScheduler`` right before the loop, with ``total_steps``: the optimizer
   steps of the whole run (epochs x batches per epoch);
3. call ``scheduler.step(loss)`` after every ``optimizer.step()``, inside the batch loop,
   where a per-epoch ``scheduler.step()`` used to be.

The scheduler scales your optimizer's rate (``--lr``), as torch's schedulers do. A
controller was trained on one optimizer family, plain SGD or schedule-free SGD
(``Controller.load(path).contract`` says which); the scheduler refuses the other family
in one line. ``--optimizer`` defaults to the controller's family: ``train.py``'s default
controller is residual over schedule-free SGD, so this script then runs
``schedulefree.SGDScheduleFree`` at 1.5 with the warmup it was trained with, switching the
optimizer to ``train()`` for training and ``eval()`` for testing, as schedule-free SGD
needs. ``--scheduler none`` runs the same script at the optimizer's own constant rate,
for comparison.

Make a controller first, then run from the project root::

    python train.py --out runs/cpu                                   # ~7 min on 2 cores
    python examples/scheduler_mnist.py --controller runs/cpu --epochs 1
    python examples/scheduler_mnist.py --controller runs/cpu --epochs 1 --scheduler none

    python train.py --preset smoke --out runs/smoke                  # seconds
    python examples/scheduler_mnist.py --controller runs/smoke --data synthetic
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import schedulefree
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

from lrenv.controller import Controller
from lrenv.data import load_dataset
from lrenv.scheduler import LearnedLRScheduler  # learned scheduler

OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "schedule_free": schedulefree.SGDScheduleFree,
}
DEFAULT_LRS = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3, "schedule_free": 1.5}
"""Each optimizer's rate when ``--lr`` is not given (schedule-free SGD's 1.5: the cpu
preset's choice on validation)."""


class Net(nn.Module):
    """An MLP; any model that returns class logits will do."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def train(args, model, device, train_loader, optimizer, scheduler, epoch) -> None:
    """One epoch; the scheduler steps with every batch."""
    model.train()
    if args.optimizer == "schedule_free":
        optimizer.train()  # schedule-free SGD trains at its own point, and evaluates at
        # its average: switch it with the model (the scheduler does for its validation)
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(data), target)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step(loss)  # learned scheduler: every batch, with its loss
        if batch_idx % args.log_interval == 0:
            print(
                f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(train_loader.dataset)}]"
                f"\tLoss: {loss.item():.6f}\tlr: {optimizer.param_groups[0]['lr']:.4g}"
            )


def test(args, model, device, test_loader, optimizer, name: str = "Test") -> tuple[float, float]:
    """Mean loss and accuracy over ``test_loader``."""
    model.eval()
    if args.optimizer == "schedule_free":
        optimizer.eval()  # the averaged weights
    loss, correct = 0.0, 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            loss += F.cross_entropy(output, target, reduction="sum").item()
            correct += (output.argmax(dim=1) == target).sum().item()
    n = len(test_loader.dataset)
    print(f"{name} set: Average loss: {loss / n:.4f}, Accuracy: {correct}/{n} ({correct / n:.1%})")
    return loss / n, correct / n


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controller", help="the run folder train.py wrote")
    parser.add_argument(
        "--scheduler",
        choices=["learned", "none"],
        default="learned",
        help="none: the optimizer's own constant rate, for comparison",
    )
    parser.add_argument("--data", choices=["fashion_mnist", "synthetic"], default="fashion_mnist")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--test-batch-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--lr", type=float, help=f"your learning rate, which the scheduler scales ({DEFAULT_LRS})"
    )
    parser.add_argument(
        "--optimizer", choices=sorted(OPTIMIZERS), help="default: the controller's family"
    )
    parser.add_argument(
        "--warmup-steps",
        type=int,
        help="schedule-free SGD's own warmup (default: the controller's, else 0)",
    )
    parser.add_argument("--val-fraction", type=float, default=0.1, help="of the training set")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-interval", type=int, default=100)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.scheduler == "learned" and args.controller is None:
        parser.error("--controller is required (or --scheduler none)")
    return args


def resolve_optimizer(args: argparse.Namespace) -> None:
    """Fill in ``--optimizer``, ``--lr`` and ``--warmup-steps`` left out: the controller's
    optimizer family and its warmup, each optimizer's usual rate."""
    contract = Controller.load(args.controller).contract if args.controller else None
    if args.optimizer is None:
        trained_on = "sgd" if contract is None else contract.optimizer
        args.optimizer = "schedule_free" if trained_on == "schedule_free" else "sgd"
    if args.lr is None:
        args.lr = DEFAULT_LRS[args.optimizer]
    if args.warmup_steps is None:
        trained_warmup = contract is not None and contract.optimizer == "schedule_free"
        args.warmup_steps = contract.warmup_steps if trained_warmup else 0


def make_optimizer(args: argparse.Namespace, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer ``--optimizer`` names, at ``--lr``."""
    if args.optimizer == "schedule_free":
        return schedulefree.SGDScheduleFree(
            model.parameters(), lr=args.lr, warmup_steps=args.warmup_steps
        )
    return OPTIMIZERS[args.optimizer](model.parameters(), lr=args.lr)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train and test; returns the final test loss and accuracy and the last rate.

    Raises:
        SystemExit: when the scheduler refuses the optimizer (the message says what to
            pass).
    """
    args = parse_args(argv)
    resolve_optimizer(args)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    data = load_dataset(args.data)  # your Dataset here (torchvision's FashionMNIST, ...)
    train_full = TensorDataset(data.train.images, data.train.labels)
    test_set = TensorDataset(data.test.images, data.test.labels)
    # learned scheduler: a validation subset carved from the training set
    split = torch.Generator().manual_seed(args.seed)
    train_set, val_set = random_split(
        train_full, [1 - args.val_fraction, args.val_fraction], generator=split
    )
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=args.test_batch_size)
    test_loader = DataLoader(test_set, batch_size=args.test_batch_size)

    model = Net(data.train.images[0].numel(), data.num_classes).to(device)
    optimizer = make_optimizer(args, model)
    scheduler = None
    if args.scheduler == "learned":
        # learned scheduler: made right before the loop, knowing the whole run's length;
        # it refuses an optimizer of another family than the controller's, in one line
        try:
            scheduler = LearnedLRScheduler(
                optimizer,
                args.controller,
                model=model,
                val_data=val_loader,
                total_steps=args.epochs * len(train_loader),
            )
        except TypeError as err:
            raise SystemExit(f"scheduler_mnist.py: {err}") from None
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, scheduler, epoch)
        test(args, model, device, val_loader, optimizer, "Validation")
    test_loss, test_accuracy = test(args, model, device, test_loader, optimizer)
    return {
        "test_loss": test_loss,
        "test_accuracy": test_accuracy,
        "lr": optimizer.param_groups[0]["lr"],
    }


if __name__ == "__main__":
    main()
