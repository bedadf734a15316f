"""What the benchmarks share: wall-clock timing, interleaved variants and medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

import torch

K = TypeVar("K")


def times(fn: Callable[[], object], repeats: int) -> list[float]:
    """The wall-clock seconds of each of ``repeats`` calls of ``fn``."""
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """The median wall-clock seconds of ``repeats`` calls of ``fn``."""
    return statistics.median(times(fn, repeats))


def interleaved_times(
    variants: Mapping[K, Callable[[], object]], repeats: int
) -> dict[K, list[float]]:
    """Each variant timed once per round, for ``repeats`` rounds, so that machine noise hits
    every variant alike; the seconds of each call, per variant."""
    out: dict[K, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():
            out[k] += times(fn, 1)
    return out


def interleaved_medians(
    variants: Mapping[K, Callable[[], object]], repeats: int
) -> dict[K, float]:
    """The median seconds of a call of each variant, timed as ``interleaved_times`` does."""
    return {k: statistics.median(v) for k, v in interleaved_times(variants, repeats).items()}


def optimizer_step_time(opt: torch.optim.Optimizer, repeats: int, *, warmup: int) -> float:
    """The median seconds of ``opt.step()`` (on the gradients already set) over ``repeats``
    steps, after ``warmup`` untimed steps (lazy optimizer state, allocator)."""
    for _ in range(warmup):
        opt.step()
    return median_time(opt.step, repeats)
