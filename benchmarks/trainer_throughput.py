"""How fast is the shared trainer? Ratios measured in one run, on one machine.

For the MNIST-1D CNN and MLP at batch 100 (Adam), this prints:

(a) ``Trainer.train_epoch`` against a bare hand-written loop (index slices of device tensors,
    ``loss.backward(); opt.step()``, nothing else): the limit. Target: <= 1.10x.
(b) ``Trainer.train_epoch`` against a textbook ``DataLoader(TensorDataset)`` loop. Target: faster.
(c) ``snapshot()`` + ``restore()`` as a fraction of one epoch. Target: <= 2 %.
(d) the optimizer's ``foreach=True`` path (what ``build_optimizer`` asks for) against torch's
    CPU default, the per-tensor loop: whole epochs, and ``opt.step()`` alone for each optimizer
    on the CNN, the MLP and the NOS ConvNet (base 48, CIFAR-sized: 0.21M parameters).
(e) the other data paths against the in-memory one, on MNIST-1D and on digits as 8x8 images
    (the CNN, batch 100): the streaming path over map-style ``TensorDataset`` s (a
    ``DataLoader`` fetching the same seeded order; target <= 1.3x an epoch) and on-device
    augmentation (random crop, and flip for the images; target <= 1.15x an epoch).

Each timing is the median over ``--repeats`` epochs, the variants interleaved so that machine
noise hits them alike. Run: ``python benchmarks/trainer_throughput.py``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _common import interleaved_medians, median_time, optimizer_step_time
from torch.utils.data import DataLoader, TensorDataset

import hpo
from trainers import Trainer


def bare_epoch(model, opt, x, y, bs: int, gen: torch.Generator) -> None:
    perm = torch.randperm(len(y), generator=gen, device=x.device)
    for i in range(0, len(y), bs):
        idx = perm[i : i + bs]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def dataloader_epoch(model, opt, loader: DataLoader) -> None:
    for xb, yb in loader:
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def bench(model_name: str, repeats: int, device: str) -> dict[str, float]:
    task = hpo.Task(model=model_name, optimizer="adam", batch_size=100, device=device)
    data = task.load_data()

    def fresh(foreach: bool = True) -> Trainer:
        trainer = task.build_trainer(data)
        if not foreach:
            trainer.optimizer = torch.optim.Adam(
                trainer.model.parameters(), lr=1e-2, foreach=False
            )
        return trainer

    ours, bare, loader_t, no_foreach = fresh(), fresh(), fresh(), fresh(foreach=False)
    gen = torch.Generator(device=data.device).manual_seed(0)
    loader = DataLoader(
        TensorDataset(data.x_train, data.y_train),
        batch_size=100,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    # warm-up: allocator, oneDNN primitives, optimizer state
    for _ in range(2):
        ours.train_epoch(1e-2)
        bare_epoch(bare.model, bare.optimizer, data.x_train, data.y_train, 100, gen)
        dataloader_epoch(loader_t.model, loader_t.optimizer, loader)
        no_foreach.train_epoch(1e-2)
    med: dict[str, float] = interleaved_medians(
        {
            "ours": lambda: ours.train_epoch(1e-2),
            "bare": lambda: bare_epoch(
                bare.model, bare.optimizer, data.x_train, data.y_train, 100, gen
            ),
            "loader": lambda: dataloader_epoch(loader_t.model, loader_t.optimizer, loader),
            "no_foreach": lambda: no_foreach.train_epoch(1e-2),
        },
        repeats,
    )

    snap = ours.snapshot()
    med["snapshot_restore"] = median_time(
        lambda: (ours.snapshot(out=snap), ours.restore(snap)), 200
    )
    med["snapshot_bytes"] = snap.nbytes()
    return med


def step_times(model_name: str, shape: tuple[int, ...], options: dict, repeats: int) -> dict:
    """Median ``opt.step()`` time with foreach=True and foreach=False, per optimizer."""
    from trainers import OPTIMIZERS, build_model, build_optimizer

    torch.manual_seed(0)
    model = build_model(model_name, shape, 10, **options)
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    out = {}
    for name in OPTIMIZERS:
        t = {}
        for foreach in (True, False):
            opt = build_optimizer(name, params, lr=1e-4, foreach=foreach)
            t[foreach] = optimizer_step_time(opt, repeats, warmup=5)
        out[name] = t[False] / t[True], t[True]
    return out


def data_paths(dataset: str, augment: str, repeats: int, device: str) -> dict[str, float]:
    """Median epoch time of the in-memory path, the streaming path and augmentation."""
    from torch.utils.data import TensorDataset

    task = hpo.Task(dataset=dataset, model="cnn", optimizer="adam", device=device)
    data = task.load_data()
    datasets = tuple(TensorDataset(*(t.cpu() for t in data.split(s))) for s in SPLITS)
    trainers = {
        "memory": task.build_trainer(data),
        "streaming": task.replace(data=datasets, streaming=True).build_trainer(),
        "augment": task.replace(augment=augment).build_trainer(data),
    }
    for t in trainers.values():  # warm-up
        t.train_epoch(1e-2)
    return interleaved_medians(
        {name: (lambda t=t: t.train_epoch(1e-2)) for name, t in trainers.items()}, repeats
    )


SPLITS = ("train", "val", "test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="epochs timed per variant")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"median of {args.repeats} epochs each (3,600 examples, batch 100, Adam)\n"
    )
    header = (
        f"{'model':<5} {'ours':>8} {'bare':>8} {'(a) ours/bare':>14} {'DataLoader':>11} "
        f"{'(b) ours/DL':>12} {'(c) snap+rest':>14} {'(d) no-foreach/foreach':>23}"
    )
    print(header)
    print("-" * len(header))
    for name in ("cnn", "mlp"):
        m = bench(name, args.repeats, args.device)
        print(
            f"{name:<5} {m['ours'] * 1e3:6.1f}ms {m['bare'] * 1e3:6.1f}ms "
            f"{m['ours'] / m['bare']:13.3f}x {m['loader'] * 1e3:9.1f}ms "
            f"{m['ours'] / m['loader']:11.3f}x "
            f"{m['snapshot_restore'] / m['ours']:13.2%} "
            f"{m['no_foreach'] / m['ours']:22.3f}x"
        )
    print(
        "\ntargets: (a) <= 1.10x   (b) < 1.00x   (c) <= 2 % of an epoch   "
        "(d) > 1 means foreach is faster"
    )
    print("\n(e) other data paths: epoch time against the in-memory path (CNN, batch 100)")
    print(
        f"{'dataset':<8} {'memory':>8} {'streaming':>10} {'ratio':>7} {'augment':>8} {'ratio':>7}"
    )
    for dataset, augment in (("mnist1d", "crop"), ("digits", "crop-flip")):
        m = data_paths(dataset, augment, args.repeats, args.device)
        print(
            f"{dataset:<8} {m['memory'] * 1e3:6.1f}ms {m['streaming'] * 1e3:8.1f}ms "
            f"{m['streaming'] / m['memory']:6.2f}x {m['augment'] * 1e3:6.1f}ms "
            f"{m['augment'] / m['memory']:6.2f}x"
        )
    print("targets: streaming <= 1.3x, augmentation <= 1.15x an in-memory epoch")
    print("\n(d) opt.step() alone: per-tensor loop time / foreach time (foreach step time)")
    cases = [("cnn", (1, 40), {}), ("mlp", (1, 40), {}), ("convnet", (3, 32, 32), {"base": 48})]
    results = {c[0]: step_times(*c, repeats=200) for c in cases}
    print(f"{'optimizer':<10}" + "".join(f"{c[0]:>22}" for c in cases))
    for name in results["cnn"]:
        cells = "".join(
            f"{results[c][name][0]:>9.2f}x ({results[c][name][1] * 1e6:6.0f}us)"
            for c, _, _ in cases
        )
        print(f"{name:<10}{cells}")


if __name__ == "__main__":
    main()
