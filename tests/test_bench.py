"""The benchmark (``python -m lrenv.bench``) runs every part and prints its tables."""

from __future__ import annotations

import re

import torch

from lrenv import bench


def test_bench_prints_every_part_on_a_tiny_task(capsys):
    threads = torch.get_num_threads()  # the bench sets the process's thread count
    try:
        run_quick_bench()
    finally:
        torch.set_num_threads(threads)
    check_tables(capsys.readouterr().out)


def run_quick_bench() -> None:
    """Every part at the smallest sizes: the synthetic task, one repetition."""
    bench.main(
        [
            "--quick",
            "--dataset",
            "synthetic",
            "--batch-size",
            "32",
            "--val-size",
            "200",
            "--reps",
            "1",
            "--threads",
            "1",
            "--matmul-size",
            "256",
        ]
    )


def check_tables(out: str) -> None:
    """Each part's heading and the numbers its tables must hold."""
    for heading in (
        "Env step against a bare PyTorch loop",
        "against the FLOP floor",
        "Hot-path options",
        "N single envs in sequence against one batched env",
        "Projected wall time",
    ):
        assert heading in out
    ratio = float(re.search(r"\| env / bare \| ([0-9.]+) ", out).group(1))
    assert 0 < ratio < 100
    rates = re.search(r"fp32 (\d+) GFLOP/s, bf16 (\d+) GFLOP/s", out)
    assert rates and int(rates.group(1)) > 0 and int(rates.group(2)) > 0
    floor_rows = re.findall(r"\| SGD step, batch 32 \| (fp32|bf16) \|", out)
    assert floor_rows == ["fp32", "bf16"]
    assert "channels-last + bf16 autocast" in out
    batched_rows = re.findall(r"^\| ([14]) \| [0-9.]+ \| [0-9.]+ \| [0-9.]+x", out, re.MULTILINE)
    assert batched_rows == ["1", "4"]
