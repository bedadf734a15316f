"""What does neural optimizer search cost outside training? Measured in one run.

Prints:

* integrity checks per second (random genomes; valid ones run the flipped sweep too);
* one optimizer step of the registered Opt6 (and of a searched-space Adam-like genome) against
  ``torch.optim.Adam(foreach=True)`` on the NOS surrogate ConvNet's parameters (base 48,
  CIFAR-sized: 211,594 parameters in 14 tensors). Target: Opt6 <= 2x Adam's step time;
* the ``NOSSampler``'s own time per trial (rebuilding the GA's state from the study, mutating,
  integrity-checking), over a study with a trivial objective. Target: <= 10 ms.

    python benchmarks/nos_overhead.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import optuna
import torch
from _common import optimizer_step_time

from strategies.nos import (
    GraphOptimizer,
    NOSSampler,
    build_nos_optimizer,
    integrity_check,
    named_genome,
    random_genome,
)
from trainers import build_model


def checks_per_second(n: int) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    genomes = [random_genome(rng) for _ in range(n)]
    start = time.perf_counter()
    passed = sum(integrity_check(g).passed for g in genomes)
    return n / (time.perf_counter() - start), passed / n


def step_time(make, params: list[torch.nn.Parameter], repeats: int) -> float:
    opt = make(params)
    g = torch.Generator().manual_seed(0)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g) * 1e-3
    return optimizer_step_time(opt, repeats, warmup=10)


def sampler_overhead(n_trials: int) -> list[float]:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = NOSSampler(population=4, mutations=3, init_size=8, seed=0)
    study = optuna.create_study(sampler=sampler)
    overheads = []

    def objective(trial: optuna.Trial) -> float:
        overheads.append(sampler.last_overhead)
        return float(trial.number % 7)

    study.optimize(objective, n_trials=n_trials)
    return overheads


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU\n")

    rate, passed = checks_per_second(300)
    print(f"integrity checks: {rate:,.0f} per second (random genomes, {passed:.0%} pass)")

    torch.manual_seed(0)
    model = build_model("convnet", (3, 32, 32), 10, base=48)
    params = list(model.parameters())
    n = sum(p.numel() for p in params)
    total = 10_000
    adam = step_time(lambda ps: torch.optim.Adam(ps, lr=1e-3, foreach=True), params, args.repeats)
    opt6 = step_time(
        lambda ps: build_nos_optimizer("opt6", ps, total_steps=total), params, args.repeats
    )
    genome = step_time(
        lambda ps: GraphOptimizer(ps, named_genome("adam"), total_steps=total),
        params,
        args.repeats,
    )
    print(f"\noptimizer step on the ConvNet (base 48, {n:,} parameters, {len(params)} tensors):")
    print(f"  torch.optim.Adam (foreach)   {adam * 1e6:8.0f} us")
    print(
        f"  NOS Opt6 (registered)        {opt6 * 1e6:8.0f} us   {opt6 / adam:.2f}x Adam "
        f"(target <= 2x)"
    )
    print(f"  Adam-like genome (searched)  {genome * 1e6:8.0f} us   {genome / adam:.2f}x Adam")

    overheads = sampler_overhead(80)
    print(
        f"\nNOSSampler time per trial (80 trials, in-memory storage): median "
        f"{statistics.median(overheads) * 1e3:.1f} ms, mean {statistics.mean(overheads) * 1e3:.1f}"
        f" ms, 95th percentile {np.percentile(overheads, 95) * 1e3:.1f} ms (target <= 10 ms)"
    )


if __name__ == "__main__":
    main()
