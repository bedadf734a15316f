"""What does SGD-SA's accept/undo cost per step? Ratios measured in one run, on one machine.

For the MNIST-1D CNN (no BatchNorm) and the NOS ConvNet (BatchNorm, dropout; ``base`` 48, 1-D
convolutions on MNIST-1D), at the same batch size, this prints the time per step of:

* plain SGD (``Trainer.train_epoch``: forward + backward + step);
* SGD-SA with ``loss_mode="train"``: L0 from the training forward, one extra train-mode forward
  at w_new (BatchNorm buffers put back). A forward is about a third of forward + backward, so the
  limit is near 1.33x. Target: <= 1.5x;
* SGD-SA with ``loss_mode="eval"`` (the authors' code): two extra eval-mode forwards. Target:
  <= 1.8x.

It also counts, with a ``TorchDispatchMode``, the tensors that the undo machinery (backups of
parameters, BatchNorm buffers and optimizer state, and their restore on rejection) allocates per
step after warm-up: the target is none — everything is copied into buffers allocated once.

    python benchmarks/sgd_sa_overhead.py
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from _common import interleaved_medians

import hpo
from hpo.testing import CountAllocations
from strategies import SGDSA


def bench(
    model: str, options: dict, batch_size: int, repeats: int, device: str = "cpu"
) -> dict[str, float]:
    task = hpo.Task(
        model=model, optimizer="sgd", batch_size=batch_size, device=device, model_options=options
    )
    data = task.load_data()
    trainers = {name: task.build_trainer(data) for name in ("sgd", "train", "eval")}
    train_step, _ = SGDSA(loss_mode="train").make_step(trainers["train"])
    eval_step, _ = SGDSA(loss_mode="eval").make_step(trainers["eval"])
    runs: dict[str, Callable[[], object]] = {
        "sgd": lambda: trainers["sgd"].train_epoch(0.1),
        "train": lambda: trainers["train"].run_epoch(train_step),
        "eval": lambda: trainers["eval"].run_epoch(eval_step),
    }
    for fn in runs.values():  # warm-up: allocator, oneDNN primitives, lazy buffers
        fn()
    epoch = interleaved_medians(runs, repeats)
    result = {name: t / trainers[name].steps_per_epoch for name, t in epoch.items()}

    # allocations of the undo machinery per step, after warm-up
    undo = train_step.undo
    with CountAllocations() as counter:
        for _ in range(10):
            undo.save_buffers()
            undo.save_weights()
            undo.save_trained_buffers()
            undo.restore_trained_buffers()
            undo.restore()
    result["undo_allocations_per_step"] = counter.count / 10
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--repeats", type=int, default=15, help="epochs timed per variant")
    p.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    args = p.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.device}, batch "
        f"{args.batch_size}, median over {args.repeats} epochs per variant\n"
    )
    header = (
        f"{'model':<22} {'SGD':>9} {'SA train':>9} {'ratio':>6} {'SA eval':>9} "
        f"{'ratio':>6} {'undo allocs/step':>17}"
    )
    print(header)
    print("-" * len(header))
    for label, model, options in (
        ("MNIST-1D CNN (5.2k)", "cnn", {}),
        ("NOS ConvNet b48 (72k)", "convnet", {"base": 48}),
    ):
        r = bench(model, options, args.batch_size, args.repeats, args.device)
        print(
            f"{label:<22} {r['sgd'] * 1e3:7.2f}ms {r['train'] * 1e3:7.2f}ms "
            f"{r['train'] / r['sgd']:5.2f}x {r['eval'] * 1e3:7.2f}ms {r['eval'] / r['sgd']:5.2f}x "
            f"{r['undo_allocations_per_step']:17.0f}"
        )
    print("\ntargets: train mode <= 1.5x, eval mode <= 1.8x; no allocation by the undo per step")


if __name__ == "__main__":
    main()
