"""How fast the trainee trains, against a bare PyTorch loop and against the hardware.

Run ``python -m lrenv.bench`` (``--help`` for the flags; ``--quick`` for a CI-size run).
Everything it compares is measured side by side in one run: the candidates of each
comparison run round-robin, repetition after repetition, and the medians are compared,
so that load from other processes hits all of them alike.

Parts (``--parts``, default all):

- ``env``: one step of the paper's env (Fashion-MNIST LeNet, batch 1000, 10 SGD steps and
  a validation pass) against a bare PyTorch loop doing the same SGD steps and the same
  validation pass on the same model and data (target: at most 10% more: the env must add
  no measurable cost to the training it wraps).
- ``floor``: one LeNet SGD step at batch 1000 and one validation pass, against the
  machine's measured fp32 matrix-multiply rate: the FLOP floor is the step's FLOPs
  (forward and backward: 3 x 2 x the multiply-accumulates of the conv and dense layers)
  at that rate (target: the CPU step within 2x of it). The same again under
  bfloat16 autocast (``precision="bf16"``), against both the fp32 and the bf16 rate.
- ``tuning``: the hot-path options side by side: memory layout, bf16 autocast,
  ``torch.compile`` (with ``--compile``), validation chunk size and layout.
- ``batched``: SGD steps per second for N single envs stepped in sequence against one
  batched vector env of N (target: N=8 at least 2x on the CPU, 5x on a GPU), and
  the projected wall time of the paper's Fashion-MNIST CNN experiment.

Everything prints as markdown tables.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lrenv.data import Dataset, Split, load_dataset
from lrenv.env import LRScheduleEnv
from lrenv.models import build_model
from lrenv.trainee import (
    PRECISIONS,
    BatchOrder,
    Trainee,
    autocast,
    device_data,
    evaluate_module,
    resolve_device,
)

PARTS = ("env", "floor", "tuning", "batched")
PAPER = {"episodes": 1000, "steps": 1000, "steps_per_action": 10}


# --- measuring ---------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    """Wait for queued device work, so that a timer sees all of it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def set_clock(name: str) -> None:
    """Time with the wall clock (``"wall"``) or this process's CPU time (``"cpu"``).

    The CPU clock counts only the time this process ran: on a machine shared with other
    busy processes it measures the work, not the waiting, when torch runs one thread.
    """
    global _clock
    _clock = CLOCKS[name]


def interleaved(
    candidates: dict[str, Callable[[], object]], reps: int, device: torch.device, warmup: int = 1
) -> dict[str, float]:
    """Median seconds per call of each candidate, run round-robin ``reps`` times.

    Args:
        candidates: name -> a function doing one unit of work.
        reps: timed repetitions of each.
        device: synchronised around each call.
        warmup: untimed calls of each first (allocations, kernel choice, compilation).
    """
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    sync(device)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(reps):
        for name, fn in candidates.items():
            start = _clock()
            fn()
            sync(device)
            times[name].append(_clock() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def matmul(
    device: torch.device, n: int, dtype: torch.dtype = torch.float32
) -> Callable[[], torch.Tensor]:
    """One ``n x n`` matrix product (``2 n**3`` FLOPs) in ``dtype``, to time."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return lambda: a @ b


def forward_macs(model: nn.Module, image_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one image's forward pass through the conv and dense layers."""
    total = 0

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *image_shape, device=next(model.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    return total


def markdown(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(seconds: float) -> str:
    """Seconds as milliseconds, for a table."""
    return f"{seconds * 1e3:.1f} ms"


def hours(seconds: float) -> str:
    """Seconds as hours (or minutes), for a table."""
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


# --- the bare loop -----------------------------------------------------------------------------


class BareLoop:
    """What the env does per step, written as a plain PyTorch loop and nothing more:
    ``k`` SGD steps on seeded batches, then one validation pass (loss, accuracy, softmax).
    Same model, data tensors, memory layout and precision as the env's trainee."""

    def __init__(self, trainee: Trainee, seed: int, lr: float) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(
                trainee.model_name, trainee.dataset.image_shape, trainee.dataset.num_classes
            )
        model = model.to(trainee.device)
        if trainee.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=trainee.momentum)
        self.train, self.val = trainee.train_data, trainee.val_data
        self.order = BatchOrder(len(self.train), trainee.batch_size, seed, trainee.device)
        self.device, self.precision = trainee.device, trainee.precision

    def step(self, k: int) -> tuple[float, float, float]:
        """``k`` SGD steps and a validation pass; returns the train loss, validation loss
        and validation accuracy."""
        self.model.train()
        total = torch.zeros((), device=self.train.images.device)
        for _ in range(k):
            batch = self.train.rows(self.order.next())  # the env's gather
            with autocast(self.device, self.precision):
                loss = F.cross_entropy(self.model(batch.images), batch.labels)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += loss.detach()
        self.model.eval()
        with torch.inference_mode(), autocast(self.device, self.precision):
            logits = torch.cat([self.model(x) for x in self.val.images.split(2000)]).float()
            val_loss = F.cross_entropy(logits, self.val.labels)
            accuracy = (logits.argmax(dim=1) == self.val.labels).float().mean()
            logits.softmax(dim=1)
            return total.item() / k, float(val_loss), float(accuracy)


# --- the parts ---------------------------------------------------------------------------------


def env_kwargs(args: argparse.Namespace) -> dict[str, object]:
    """The paper's Fashion-MNIST CNN env, at a constant rate, never truncated in the run."""
    return {
        "dataset": args.dataset,
        "model": args.model,
        "batch_size": args.batch_size,
        "steps_per_action": PAPER["steps_per_action"],
        "total_steps": 10**8,
        "initial_lr": 0.01,
        "val_size": args.val_size,
        "data_root": args.data_root,
        "device": args.device,
        "precision": args.precision,
        "torch_threads": None,  # the bench's --threads, set for the whole process
    }


def part_env(args: argparse.Namespace, device: torch.device) -> str:
    """The env's step against the bare loop."""
    env = LRScheduleEnv(**env_kwargs(args))
    env.reset(seed=0)
    bare = BareLoop(env.trainee, seed=1, lr=0.01)
    action = np.zeros(1, np.float32)
    k = env.steps_per_action
    t = interleaved(
        {"env": lambda: env.step(action), "bare": lambda: bare.step(k)}, args.reps, device
    )
    ratio = t["env"] / t["bare"]
    verdict = "met" if ratio <= 1.10 else "missed"
    rows = [
        ["env.step (10 SGD steps + validation)", ms(t["env"])],
        ["bare PyTorch loop, same work", ms(t["bare"])],
        ["env / bare", f"{ratio:.3f} (target <= 1.10: {verdict})"],
    ]
    return "### Env step against a bare PyTorch loop\n\n" + markdown(["", "median"], rows)


def _cnn_trainee(args: argparse.Namespace, data: Dataset, **kwargs: object) -> Trainee:
    kwargs = {"precision": args.precision, **kwargs}
    trainee = Trainee(
        data, args.model, args.batch_size, val_size=args.val_size, device=args.device, **kwargs
    )
    trainee.reset(seed=0, lr=0.01)
    return trainee


def part_floor(args: argparse.Namespace, device: torch.device) -> tuple[str, dict[str, float]]:
    """The CNN step and validation pass against the FLOP floor, in fp32 and in bf16."""
    data = load_dataset(args.dataset, args.data_root)
    trainees = {p: _cnn_trainee(args, data, precision=p) for p in PRECISIONS}
    n_val = len(trainees["fp32"].val_data)
    candidates: dict[str, Callable[[], object]] = {
        "matmul fp32": matmul(device, args.matmul_size),
        "matmul bf16": matmul(device, args.matmul_size, torch.bfloat16),
    }
    for p, trainee in trainees.items():
        candidates[f"step {p}"] = lambda trainee=trainee: trainee.train_steps(1)
        candidates[f"val {p}"] = trainee.evaluate
    t = interleaved(candidates, args.reps, device)
    rate = {p: 2 * args.matmul_size**3 / t[f"matmul {p}"] / 1e9 for p in PRECISIONS}
    macs = forward_macs(trainees["fp32"].model, data.image_shape)
    flops = {"step": 3 * 2 * macs * args.batch_size, "val": 2 * macs * n_val}
    labels = {"step": f"SGD step, batch {args.batch_size}", "val": f"validation, {n_val} images"}
    rows = []
    for work in ("step", "val"):
        for p in PRECISIONS:
            measured = t[f"{work} {p}"]
            against = {q: measured / (flops[work] / (rate[q] * 1e9)) for q in PRECISIONS}
            fp32_ratio = f"{against['fp32']:.1f}x"
            if work == "step" and p == "fp32":
                fp32_ratio += f" (target <= 2x: {'met' if against['fp32'] <= 2 else 'missed'})"
            bf16_ratio = f"{against['bf16']:.1f}x"
            rows.append(
                [labels[work], p, f"{flops[work] / 1e9:.2f}", ms(measured), fp32_ratio, bf16_ratio]
            )
    text = (
        f"### {args.model} on {args.dataset} against the FLOP floor\n\n"
        f"Measured matrix multiply ({args.matmul_size}x{args.matmul_size}): "
        f"**fp32 {rate['fp32']:.0f} GFLOP/s, bf16 {rate['bf16']:.0f} GFLOP/s**. Forward pass: "
        f"{macs / 1e6:.3f} M multiply-accumulates per image (conv and dense layers); an SGD "
        "step counts 3x the forward FLOPs. The floor is those FLOPs at the measured rate; "
        'bf16 is autocast (`precision="bf16"`), weights and updates in fp32.\n\n'
        + markdown(
            [
                "work",
                "precision",
                "GFLOP",
                "measured",
                "measured / fp32 floor",
                "measured / bf16 floor",
            ],
            rows,
        )
    )
    timings = {"step": t[f"step {args.precision}"], "val": t[f"val {args.precision}"]}
    return text, {**timings, "gflops": rate["fp32"]}


def part_tuning(args: argparse.Namespace, device: torch.device) -> str:
    """Hot-path options side by side."""
    data = load_dataset(args.dataset, args.data_root)
    steps = {
        "channels-first (NCHW)": _cnn_trainee(args, data, channels_last=False, precision="fp32"),
        "channels-last": _cnn_trainee(args, data, channels_last=True, precision="fp32"),
        "channels-last + bf16 autocast": _cnn_trainee(
            args, data, channels_last=True, precision="bf16"
        ),
    }
    if args.compile:
        compiled = _cnn_trainee(args, data, channels_last=True, compile=True, precision="fp32")
        steps["channels-last + torch.compile"] = compiled
        start = time.perf_counter()
        compiled.train_steps(1)
        compiled.evaluate()
        compile_seconds = time.perf_counter() - start
    step_t = interleaved(
        {name: (lambda tr=tr: tr.train_steps(1)) for name, tr in steps.items()}, args.reps, device
    )
    val_t = interleaved(
        {name: (lambda tr=tr: tr.evaluate()) for name, tr in steps.items()}, args.reps, device
    )
    rows = [[name, ms(step_t[name]), ms(val_t[name])] for name in steps]
    text = "### Hot-path options (CNN)\n\n" + markdown(
        ["layout / compile", "SGD step", "validation pass"], rows
    )
    if args.compile:
        text += f"\n\ntorch.compile's first step and validation pass took {compile_seconds:.0f} s."
    # validation: chunk size and input layout, on the channels-last model
    model = steps["channels-last"].model
    val = steps["channels-last"].val_data
    val_cl = Split(val.images.contiguous(memory_format=torch.channels_last), val.labels)
    variants = {
        "chunks of 2000, NCHW input (default)": lambda: evaluate_module(model, val, 2000),
        "chunks of 500": lambda: evaluate_module(model, val, 500),
        "one chunk": lambda: evaluate_module(model, val, len(val)),
        "chunks of 2000, channels-last input": lambda: evaluate_module(model, val_cl, 2000),
    }
    v = interleaved(variants, args.reps, device)
    text += "\n\n" + markdown(["validation variant", "median"], [[k, ms(s)] for k, s in v.items()])
    if device.type == "cpu" and args.clock == "wall" and (os.cpu_count() or 1) > 1:
        text += "\n\n" + part_threads(args, steps["channels-last"], device)
    return text


def part_threads(args: argparse.Namespace, trainee: Trainee, device: torch.device) -> str:
    """One torch thread against one per CPU, side by side (wall clock).

    On a CPU shared with other busy processes (other envs, ``SubprocVecEnv`` workers, other
    users), OpenMP threads that wait for each other at every operation can lose far more
    than they gain.
    """
    before = torch.get_num_threads()
    counts = sorted({1, os.cpu_count() or 1})

    def with_threads(count: int, fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            torch.set_num_threads(count)
            return fn()

        return run

    candidates = {}
    for count in counts:
        candidates[f"{count} step"] = with_threads(count, lambda: trainee.train_steps(1))
        candidates[f"{count} val"] = with_threads(count, trainee.evaluate)
    try:
        t = interleaved(candidates, args.reps, device)
    finally:
        torch.set_num_threads(before)
    rows = [[c, ms(t[f"{c} step"]), ms(t[f"{c} val"])] for c in counts]
    return markdown(["torch threads", "SGD step (wall)", "validation pass (wall)"], rows)


def part_batched(
    args: argparse.Namespace, device: torch.device, floor: dict[str, float] | None
) -> str:
    """N single envs in sequence against one batched env of N, and the paper's projection."""
    from lrenv.vector import BatchedEnvs

    kwargs = env_kwargs(args)
    k = PAPER["steps_per_action"]
    action = np.zeros(1, np.float32)
    rows, per_env_step, val_images, names = [], {}, 0, {}
    for n in args.n:
        singles = [LRScheduleEnv(**kwargs) for _ in range(n)]
        batches = {s: BatchedEnvs(n, strategy=s, **kwargs) for s in args.strategies}
        for i in range(n):
            singles[i].reset(seed=i)
            for batch in batches.values():
                batch.envs[i].reset(seed=i)
        names = {s: b.trainee.strategy for s, b in batches.items()}
        val_images = len(singles[0].trainee.val_data)

        def in_sequence(singles: list[LRScheduleEnv] = singles) -> None:
            for env in singles:
                env.step(action)

        candidates: dict[str, Callable[[], object]] = {"single": in_sequence}
        for s, batch in batches.items():
            candidates[s] = lambda b=batch, a=[action] * n: b.step(a)
        t = interleaved(candidates, args.reps, device)
        per_env_step[n] = t
        row: list[object] = [n, f"{n * k / t['single']:.1f}"]
        for s in args.strategies:
            speedup = t["single"] / t[s]
            target = ""
            if n == 8 and s == args.strategies[0]:
                want = 5 if device.type == "cuda" else 2
                target = f" (target >= {want}x: {'met' if speedup >= want else 'missed'})"
            row += [f"{n * k / t[s]:.1f}", f"{speedup:.2f}x{target}"]
        rows.append(row)
        del singles, batches
    headers = ["N", "N single envs in sequence"]
    for s in args.strategies:
        label = s if names.get(s, s) == s else f"{s} = {names[s]}"
        headers += [f"batched ({label})", "speedup"]
    text = (
        "### N single envs in sequence against one batched env\n\n"
        f"SGD steps per second, all N trainees together: one env step each is {k} SGD steps "
        f"(batch {args.batch_size}) and a validation pass of {val_images} images, whose "
        "time is included.\n\n" + markdown(headers, rows)
    )
    # the paper's experiment: 1000 episodes of 100 decisions; resets (one validation
    # pass each, once per episode) and PPO's own updates are small next to the trainee's.
    decisions = PAPER["steps"] // k
    episodes = PAPER["episodes"]
    main_strategy = args.strategies[0]
    proj_rows = []
    if 1 in per_env_step:
        proj_rows.append(["one env", hours(episodes * decisions * per_env_step[1]["single"])])
    for n, t in per_env_step.items():
        proj_rows.append(
            [
                f"batched ({main_strategy}), N={n}",
                hours(episodes / n * decisions * t[main_strategy]),
            ]
        )
    if floor is not None:
        ideal = episodes * decisions * (k * floor["step"] + floor["val"])
        proj_rows.append(["one trainee, from the floor part's step and validation", hours(ideal)])
    text += (
        "\n\n### Projected wall time of the paper's experiment\n\n"
        f"{args.dataset}, {args.model}: "
        f"{episodes} episodes x {PAPER['steps']} SGD steps at batch {args.batch_size}, "
        f"validation ({val_images} images) every {k} steps, on this machine ({device.type}); "
        "resets and PPO's updates not counted.\n\n" + markdown(["how", "projected"], proj_rows)
    )
    return text


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the flags, run the parts asked for, print markdown."""
    parser = argparse.ArgumentParser(
        prog="python -m lrenv.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}"
    )
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 7)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI size: 3 repetitions, a 2000-image validation subset, N in {1, 4}",
    )
    parser.add_argument(
        "--n", default=None, help="batched part: comma-separated N (default 1,4,8,16)"
    )
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--val-size", type=int, default=None, help="validation subset (default: all)"
    )
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default="auto", help='"auto", "cpu" or "cuda"')
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    parser.add_argument(
        "--strategies",
        default="auto",
        help="batched part: comma-separated BatchedTrainee strategies (auto, vmap, loop)",
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall time, or this process's CPU time (with --threads 1 on a shared machine)",
    )
    parser.add_argument(
        "--compile", action="store_true", help="tuning part: also try torch.compile (slow)"
    )
    parser.add_argument("--matmul-size", type=int, default=None, help="default 2048 (CPU)")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="the trainee's precision in the env and batched parts (floor measures both)",
    )
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.reps is None:
        args.reps = 3 if args.quick else 7
    if args.quick and args.val_size is None:
        args.val_size = 2000
    args.n = [int(x) for x in (args.n or ("1,4" if args.quick else "1,4,8,16")).split(",")]
    args.strategies = [x.strip() for x in args.strategies.split(",") if x.strip()]
    set_clock(args.clock)
    device = resolve_device(args.device)
    args.device = str(device)
    if args.matmul_size is None:
        args.matmul_size = 8192 if device.type == "cuda" else 2048
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"## lrenv.bench: {device.type} ({name or platform.machine()}), "
        f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {args.clock} clock; load average {load:.1f} at start\n"
    )
    device_data(load_dataset(args.dataset, args.data_root), device)  # load once, untimed
    floor = None
    for part in parts:
        if part == "env":
            print(part_env(args, device), end="\n\n", flush=True)
        elif part == "floor":
            text, floor = part_floor(args, device)
            print(text, end="\n\n", flush=True)
        elif part == "tuning":
            print(part_tuning(args, device), end="\n\n", flush=True)
        elif part == "batched":
            print(part_batched(args, device, floor), end="\n\n", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(f"Load average {load:.1f} at the end (other processes share this machine's CPUs).")


if __name__ == "__main__":
    main()
