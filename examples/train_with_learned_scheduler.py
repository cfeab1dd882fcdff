"""Train your own model in a plain PyTorch loop, its learning rate set by a learned controller.

The scheduler is two lines in the loop you already have (see docs/scheduler.md)::

    scheduler = LearnedLRScheduler(optimizer, controller_path, model=model, val_data=(x, y))
    ...
    optimizer.step()
    scheduler.step(loss)

Make a controller with train.py first, then run this script from the project root:

    python train.py --preset smoke --out runs/smoke       # seconds, on the synthetic task
    python examples/train_with_learned_scheduler.py --controller runs/smoke \\
        --synthetic

    python train.py --preset cpu --out runs/cpu           # Fashion-MNIST, ~10 min on 2 cores
    python examples/train_with_learned_scheduler.py --controller runs/cpu

The model (an MLP), the data handling and the loop are this script's own, as yours would
be; only the datasets come from lrenv. It runs in well under a minute on a CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import schedulefree
import torch
import torch.nn.functional as F
from torch import nn

from lrenv.controller import Controller, ControllerFileError
from lrenv.data import load_dataset
from lrenv.scheduler import LearnedLRScheduler, trained_env_kwargs

HOW_TO_MAKE_ONE = """\
Make a controller with train.py first, e.g. (from the project root):

    python train.py --preset smoke --out runs/smoke     # seconds, synthetic task
    python train.py --preset cpu --out runs/cpu         # Fashion-MNIST, ~10 min on 2 cores

then pass --controller runs/smoke (or runs/cpu): the run folder."""

OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "schedule_free": schedulefree.SGDScheduleFree,
}
DEFAULT_LRS = {"sgd": 0.01, "adam": 1e-3, "adamw": 1e-3, "schedule_free": 1.5}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description="Train an MLP in a plain PyTorch loop with a learned LR controller.",
        epilog=HOW_TO_MAKE_ONE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--controller", help="the run folder train.py wrote (or its controller.safetensors)"
    )
    parser.add_argument(
        "--synthetic", action="store_true", help="the small synthetic set, not Fashion-MNIST"
    )
    parser.add_argument(
        "--steps", type=int, help="optimizer steps (default: the controller's training runs')"
    )
    parser.add_argument(
        "--batch-size", type=int, help="examples per step (default: the controller's)"
    )
    parser.add_argument(
        "--lr", type=float, help=f"your learning rate, which the scheduler scales ({DEFAULT_LRS})"
    )
    parser.add_argument(
        "--optimizer",
        choices=sorted(OPTIMIZERS),
        help="default: the family the controller was trained on (its contract)",
    )
    parser.add_argument(
        "--val-size", type=int, default=2000, help="validation examples the controller sees"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest for a small MLP)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Train and report; returns the exit status."""
    args = parse_args(argv)
    if args.controller is None or not Path(args.controller).exists():
        where = (
            "no --controller given"
            if args.controller is None
            else f"{args.controller}: no such file"
        )
        print(f"{where}.\n\n{HOW_TO_MAKE_ONE}", file=sys.stderr)
        return 2
    try:
        controller = Controller.load(args.controller)
    except ControllerFileError as err:
        print(f"{err}\n\n{HOW_TO_MAKE_ONE}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    contract = controller.contract  # the optimizer family it was trained on, and more
    if args.optimizer is None:
        args.optimizer = "schedule_free" if contract.optimizer == "schedule_free" else "sgd"
    if args.lr is None:
        args.lr = DEFAULT_LRS[args.optimizer]
    trained_on = trained_env_kwargs(controller.config)
    steps = args.steps or trained_on["total_steps"]
    batch_size = args.batch_size or trained_on["batch_size"]
    device = torch.device(args.device)

    # --- your data and model (here: a dataset from lrenv, an MLP of our own) ---
    data = load_dataset("synthetic" if args.synthetic else "fashion_mnist")
    train_x, train_y = data.train.images.to(device), data.train.labels.to(device)
    val_x, val_y = data.val.images[: args.val_size], data.val.labels[: args.val_size]
    torch.manual_seed(args.seed)
    in_features = train_x[0].numel()
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(in_features, 128), nn.ReLU(), nn.Linear(128, data.num_classes)
    ).to(device)
    if args.optimizer == "schedule_free":  # with the warmup it was trained with
        warmup = contract.warmup_steps if contract.optimizer == "schedule_free" else 0
        optimizer = schedulefree.SGDScheduleFree(
            model.parameters(), lr=args.lr, warmup_steps=warmup
        )
    else:
        optimizer = OPTIMIZERS[args.optimizer](model.parameters(), lr=args.lr)

    # --- the learned scheduler: line 1 of 2 ---
    try:
        scheduler = LearnedLRScheduler(
            optimizer, controller, model=model, val_data=(val_x, val_y), total_steps=steps
        )
    except TypeError as err:  # an optimizer of another family than the controller's
        print(err, file=sys.stderr)
        return 2
    print(
        f"{data.name}: {steps} steps of batch {batch_size}, {args.optimizer} from lr "
        f"{args.lr:g}; the controller ({controller.config.get('algorithm', 'PPO')}, trained "
        f"on {controller.config.get('env_id', '?')}) decides every {scheduler.every} steps"
    )
    print(f"{'step':>6} {'new lr':>10} {'train loss':>11} {'val loss':>9}")

    started = time.perf_counter()
    generator = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(train_y), generator=generator)
    cursor = 0
    model.train()
    if args.optimizer == "schedule_free":
        optimizer.train()  # schedule-free SGD trains in train mode, tests in eval mode
    for step in range(1, steps + 1):
        if cursor + batch_size > len(order):
            order, cursor = torch.randperm(len(train_y), generator=generator), 0
        batch = order[cursor : cursor + batch_size].to(device)
        cursor += batch_size
        loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        # --- the learned scheduler: line 2 of 2 ---
        scheduler.step(loss)
        if step % scheduler.every == 0 and step < steps:
            features = scheduler.last_features  # what the controller just saw
            print(
                f"{step:>6} {scheduler.get_last_lr()[0]:>10.4g} "
                f"{features['train_loss']:>11.4f} {features['val_loss']:>9.4f}"
            )

    model.eval()
    if args.optimizer == "schedule_free":
        optimizer.eval()  # the averaged weights
    with torch.inference_mode():
        test_x, test_y = data.test.images.to(device), data.test.labels.to(device)
        logits = model(test_x)
        test_loss = F.cross_entropy(logits, test_y).item()
        test_accuracy = (logits.argmax(dim=1) == test_y).float().mean().item()
    print(
        f"done in {time.perf_counter() - started:.1f} s: final lr "
        f"{scheduler.get_last_lr()[0]:.4g}, test loss {test_loss:.4f}, "
        f"test accuracy {test_accuracy:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
