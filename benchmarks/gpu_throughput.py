"""Images per second of ResNet-20 on CIFAR-shaped data: the textbook loop against ours.

* **textbook**: a ``DataLoader`` over CPU tensors (shuffled, batch 128), each batch copied to the
  device, fp32, NCHW, ``torch.optim.SGD(momentum=0.9)``;
* **ours**: ``Trainer`` with the data on the device, bf16 autocast, ``channels_last`` and (with
  ``--compile``) ``torch.compile``; the time to compile is printed apart, with the number of
  epochs it takes to pay for itself.

The data are synthetic tensors of CIFAR-10's shape (3 x 32 x 32, 10 classes) unless
``--data-dir`` holds CIFAR-10. Each variant: one untimed warm-up epoch, then the median of
``--repeats`` timed epochs. Target on a GPU: ours >= 5x the textbook loop's images/s.

    python benchmarks/gpu_throughput.py --device cuda --compile
    python benchmarks/gpu_throughput.py --device cpu --examples 512 --repeats 1   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import hpo
from trainers import DataSplits, Trainer, build_model, resolve_device


def synthetic(n: int, device: str) -> DataSplits:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    empty_x, empty_y = x[:0], y[:0]
    return DataSplits("cifar-shaped", x, y, x[: n // 10], y[: n // 10], empty_x, empty_y, 10).to(
        device
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def textbook(data: DataSplits, device: torch.device, epochs: int) -> list[float]:
    torch.manual_seed(0)
    model = build_model("resnet20", (3, 32, 32), 10).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ds = TensorDataset(data.x_train.cpu(), data.y_train.cpu())
    loader = DataLoader(ds, batch_size=128, shuffle=True, pin_memory=device.type == "cuda")
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def ours(data: DataSplits, device: torch.device, epochs: int, compile: bool) -> list[float]:
    torch.manual_seed(0)
    model = build_model("resnet20", (3, 32, 32), 10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, foreach=True)
    trainer = Trainer(
        model,
        opt,
        data,
        batch_size=128,
        device=device,
        precision="bf16",
        channels_last=True,
        compile=compile,
    )
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        trainer.train_epoch()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--examples", type=int, default=50_000, help="training examples (synthetic)")
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per variant")
    p.add_argument("--compile", action="store_true", help="also time ours with torch.compile")
    p.add_argument("--data-dir", default=None, help="a folder with CIFAR-10 (else synthetic)")
    args = p.parse_args()
    device = resolve_device(args.device)
    if args.data_dir:
        data = hpo.Task(dataset="cifar10", data_dir=args.data_dir, device=str(device)).load_data()
        assert isinstance(data, DataSplits)
    else:
        data = synthetic(args.examples, str(device))
    n = data.num_train
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__}, {name}, ResNet-20, {n} training images, batch 128")
    rows = {"textbook (DataLoader, fp32)": textbook(data, device, 1 + args.repeats)}
    rows["ours (device data, bf16, channels_last)"] = ours(data, device, 1 + args.repeats, False)
    if args.compile:
        rows["ours + torch.compile"] = ours(data, device, 1 + args.repeats, True)
    base = None
    for label, times in rows.items():
        per_epoch = statistics.median(times[1:])
        rate = n / per_epoch
        base = base or rate
        extra = ""
        if "compile" in label:
            plain = statistics.median(rows["ours (device data, bf16, channels_last)"][1:])
            overhead = times[0] - per_epoch
            saved = plain - per_epoch
            pays = f"{overhead / saved:.1f} epochs" if saved > 0 else "never"
            extra = f"  (first epoch +{overhead:.1f}s compiling; pays for itself after {pays})"
        print(f"{label:<42} {rate:>10,.0f} images/s  {rate / base:5.2f}x{extra}")
    print("target on a GPU: ours >= 5x the textbook loop")


if __name__ == "__main__":
    main()
