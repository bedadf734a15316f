"""What does one Hyperdyn decision cost? Measured in one run, on one machine.

A decision is a GP fit (``fit_gpytorch_mll`` on all observations) plus maximising LogEI over the
learning rate with the epoch fixed (``optimize_acqf``), exactly as ``Hyperdyn`` runs it. The
observations are laid out as Hyperdyn makes them: 5 Random-Start points at epoch 0, then two per
epoch (the current lr's branch and the suggestion's), with outcomes shaped like accuracy
differences. For 10, 50 and 100 observations this prints the median time of a decision (after a
first, warm-up decision), split into fit and acquisition, and its ratio to one epoch of the
MNIST-1D CNN (Adam, batch 100) on the same machine. Target: <= 0.2 s at 100 observations.

    python benchmarks/hyperdyn_overhead.py
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _common import median_time

import hpo
from strategies._hyperdyn._model import DTYPE, suggest


def observations(n: int, horizon: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``n`` observations as Hyperdyn lays them out; returns X, Y and the next epoch."""
    g = torch.Generator().manual_seed(seed)
    epochs = [0] * min(5, n) + [1 + i // 2 for i in range(max(0, n - 5))]
    t = torch.tensor(epochs, dtype=DTYPE)
    lr = torch.rand(n, generator=g, dtype=DTYPE)
    start = t == 0
    y = torch.where(
        start,
        0.3 + 0.1 * torch.rand(n, generator=g, dtype=DTYPE),  # Random-Start: raw accuracies
        0.08 * torch.exp(-t / 8) * (1 - 2 * (lr - 0.55).abs()),  # later: accuracy differences
    ) + 0.005 * torch.randn(n, generator=g, dtype=DTYPE)
    X = torch.stack([lr, t / horizon], -1)
    return X, y.unsqueeze(-1), int(t.max().item()) + 1


def decision_times(n: int, repeats: int, warm: bool) -> tuple[list[float], list[float]]:
    horizon = 100
    X, Y, t_next = observations(n, horizon)
    fits, acqs = [], []
    state = None
    for r in range(repeats + 1):
        s = suggest(
            X,
            Y,
            t_next / horizon,
            time_scale=horizon,
            best_f=float(Y.max()),
            warm_state=state if warm else None,
            seed=r,
        )
        state = s.state
        if r:  # the first decision pays one-off costs (imports, kernel compilation)
            fits.append(s.fit_seconds)
            acqs.append(s.acq_seconds)
    return fits, acqs


def epoch_time(repeats: int) -> float:
    task = hpo.Task(device="cpu")
    trainer = task.build_trainer()
    trainer.train_epoch(0.01)  # warm-up
    return median_time(lambda: trainer.train_epoch(0.01), repeats)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=10, help="decisions timed per size")
    args = p.parse_args()
    epoch = epoch_time(15)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; one MNIST-1D CNN "
        f"epoch (Adam, batch 100): {epoch * 1e3:.1f} ms\n"
    )
    header = (
        f"{'observations':>12} {'fit':>9} {'acquisition':>12} {'decision':>10} "
        f"{'x epoch':>8} {'decision (warm-started GP)':>27}"
    )
    print(header)
    print("-" * len(header))
    for n in (10, 50, 100):
        fit, acq = decision_times(n, args.repeats, warm=False)
        wfit, wacq = decision_times(n, args.repeats, warm=True)
        total = statistics.median([f + a for f, a in zip(fit, acq)])
        wtotal = statistics.median([f + a for f, a in zip(wfit, wacq)])
        print(
            f"{n:>12} {statistics.median(fit) * 1e3:7.0f}ms {statistics.median(acq) * 1e3:10.0f}ms"
            f" {total * 1e3:8.0f}ms {total / epoch:7.2f}x {wtotal * 1e3:25.0f}ms"
        )
    print("\ntarget: <= 200 ms per decision at 100 observations (2 CPU cores)")


if __name__ == "__main__":
    main()
