"""Batched populations against members trained one after another. Measured in one run.

Part 1, time per member-epoch: K = 1, 4, 8, 16 members of the MNIST-1D CNN (Adam), the MNIST-1D
MLP (Adam) and the NOS ConvNet (BatchNorm, momentum; dropout 0, since active dropout is not
batched), each trained one epoch of MNIST-1D (4000 examples, batch 100) by
``SequentialPopulation`` and by ``Population``, interleaved, median of ``--repeats``.
Targets at K = 8: >= 2x on the CNN, >= 4x on the MLP.

Part 2, end to end: ``hpo.run`` of PBT (8 members) and random search (10 branches per epoch)
with ``batched=True`` against ``batched=False`` on the default task of ``hpo compare`` (MNIST-1D
CNN, Adam, 20 epochs) and on the MLP; wall time of the whole run and the best validation
accuracy of each (the two paths agree to float rounding, so the accuracies should be close).
Target: >= 2x.

    python benchmarks/population.py             # ~3 minutes on 2 CPU cores
    python benchmarks/population.py --quick     # K = 1, 8 and 5 epochs end to end
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import interleaved_medians

import hpo
from strategies import PBT, RandomSearch
from trainers import Population, SequentialPopulation, Trainer

MODELS = {  # name -> (model, optimizer, model options)
    "mnist1d-cnn": ("cnn", "adam", {}),
    "mnist1d-mlp": ("mlp", "adam", {}),
    "nos-convnet": ("convnet", "momentum", {"dropout": 0.0}),
}


def members(data, model: str, optimizer: str, options: dict, k: int, device: str) -> list[Trainer]:
    task = hpo.Task(
        dataset="mnist1d", model=model, optimizer=optimizer, model_options=options, device=device
    )
    first = task.build_trainer(data)
    return [first] + [first.clone(seed=s, reinitialize=True) for s in range(1, k)]


def per_member_epoch(ks: list[int], repeats: int, device: str) -> None:
    data = hpo.Task(dataset="mnist1d", device=device).load_data()
    print(f"== time per member-epoch (MNIST-1D, {data.num_train} examples, batch 100, {device})")
    print(f"{'model':<12} {'K':>3} {'sequential':>11} {'batched':>9} {'speed-up':>9}")
    for name, (model, optimizer, options) in MODELS.items():
        for k in ks:
            seq = SequentialPopulation(members(data, model, optimizer, options, k, device))
            bat = Population(members(data, model, optimizer, options, k, device))
            seq.train_epoch(), bat.train_epoch()  # warm-up: optimizer state, allocator
            med = interleaved_medians({"seq": seq.train_epoch, "bat": bat.train_epoch}, repeats)
            s, b = med["seq"] / k, med["bat"] / k
            print(f"{name:<12} {k:>3} {s * 1e3:>9.1f}ms {b * 1e3:>7.1f}ms {s / b:>8.2f}x")


def end_to_end(epochs: int, device: str) -> None:
    print(f"\n== end to end: hpo.run, {epochs} epochs, seed 0, {device}")
    print(
        f"{'task':<12} {'strategy':<14} {'sequential':>11} {'batched':>9} {'speed-up':>9}"
        f"  {'best val (seq / batched)':>24}"
    )
    for name, model, optimizer in (("mnist1d-cnn", "cnn", "adam"), ("mnist1d-mlp", "mlp", "adam")):
        task = hpo.Task(
            dataset="mnist1d", model=model, optimizer=optimizer, epochs=epochs, device=device
        )
        data = task.load_data()
        for label, make in (("pbt", PBT), ("random-search", RandomSearch)):
            walls, bests = {}, {}
            for batched in (False, True):
                start = time.perf_counter()
                h = hpo.run(task, make(batched=batched), data=data, tracking=False, progress=False)
                walls[batched] = time.perf_counter() - start
                bests[batched] = h.best.val_score
            print(
                f"{name:<12} {label:<14} {walls[False]:>10.1f}s {walls[True]:>8.1f}s "
                f"{walls[False] / walls[True]:>8.2f}x  {bests[False]:>12.1%} / {bests[True]:.1%}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="K = 1, 8; 5 epochs end to end")
    parser.add_argument("--repeats", type=int, default=5, help="timed epochs per variant")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    args = parser.parse_args()
    torch.manual_seed(0)
    ks = [1, 8] if args.quick else [1, 4, 8, 16]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    per_member_epoch(ks, args.repeats, args.device)
    end_to_end(5 if args.quick else 20, args.device)


if __name__ == "__main__":
    main()
