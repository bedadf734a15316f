"""What does distancing add to a training step? Ratios measured in one run.

For the MNIST-1D CNN and the NOS ConvNet (base 48, 1-D convolutions on MNIST-1D), at batch 100
with Adam, this prints the time per step of plain training and of training with the distancing
penalty (its value's gradient added after every backward pass) with 1, 3 and 5 stored
checkpoints. Target: <= 1.2x a plain step with 3 checkpoints.

    python benchmarks/distancing_overhead.py
"""

from __future__ import annotations

import argparse

import torch
from _common import interleaved_medians

import hpo
from strategies import DistancePenalty


def bench(model: str, options: dict, repeats: int) -> dict[int, float]:
    task = hpo.Task(model=model, model_options=options, device="cpu")
    data = task.load_data()
    trainers = {0: task.build_trainer(data)}
    for k in (1, 3, 5):
        trainer = task.build_trainer(data)
        penalty = DistancePenalty(
            list(trainer.model.parameters()), strength=0.5, width=2.0, max_checkpoints=k
        )
        for _ in range(k):
            trainer.train_epoch(1e-3)
            penalty.add_checkpoint()
        trainer.penalty = penalty
        trainers[k] = trainer
    for trainer in trainers.values():  # warm-up: allocator, oneDNN primitives
        trainer.train_epoch(1e-3)
    epoch = interleaved_medians(
        {k: lambda t=trainer: t.train_epoch(1e-3) for k, trainer in trainers.items()}, repeats
    )
    return {k: epoch[k] / trainers[k].steps_per_epoch for k in trainers}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, batch 100, Adam, "
        f"median of {args.repeats} epochs\n"
    )
    print(f"{'model':<24} {'plain':>9} {'1 ckpt':>14} {'3 ckpts':>14} {'5 ckpts':>14}")
    for label, model, options in (
        ("MNIST-1D CNN (5.2k)", "cnn", {}),
        ("NOS ConvNet b48 (72k)", "convnet", {"base": 48}),
    ):
        t = bench(model, options, args.repeats)
        cells = "".join(f" {t[k] * 1e3:6.2f}ms {t[k] / t[0]:5.2f}x" for k in (1, 3, 5))
        print(f"{label:<24} {t[0] * 1e3:7.2f}ms{cells}")
    print("\ntarget: <= 1.2x a plain step with 3 checkpoints")


if __name__ == "__main__":
    main()
