"""The learning-rate sweep of the optimizers seed (`003_89971f8a0fd6b8c7.txt`), at MNIST-1D scale.

The classic optimizers x log-spaced learning rates (1e-6 .. 100 by default): each run trains at
one constant lr until its training accuracy reaches ``--target`` (or ``--epochs`` epochs pass,
which counts as a failure; so does a diverged run). The plot of steps-to-target against lr
shows one valley per optimizer: most lrs fail, and the band that works differs per optimizer.

    python studies/lr_sweep.py                       # ~3 minutes on 2 CPU cores
    python studies/lr_sweep.py --lrs 48 --target 0.97 --epochs 60 --device cuda

Every run is an MLflow child run of one parent run ``lr-sweep``; the table is printed and the
valley plot written to ``--output-dir``.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
from _common import add_task_arguments, add_tracking_arguments, parser, save_figure, task_from
from matplotlib.figure import Figure

import hpo
from hpo.exceptions import StopRun
from strategies import Constant
from trainers import OPTIMIZERS

SEED_OPTIMIZERS = "sgd,momentum,nesterov,adagrad,adadelta,rmsprop,adam"


class StopAtTrainAccuracy(hpo.Callback):
    """End the run (normally) once an epoch's training accuracy reaches the target."""

    def __init__(self, target: float) -> None:
        self.target = target

    def on_epoch_end(self, history: hpo.History, record: hpo.EpochRecord) -> None:
        if record.train_score >= self.target:
            raise StopRun(f"train accuracy {record.train_score:.1%} >= {self.target:.0%}")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--optimizers", default=SEED_OPTIMIZERS, help="comma-separated names")
    p.add_argument("--lrs", type=int, default=17, help="number of log-spaced lrs")
    p.add_argument("--lr-min", type=float, default=1e-6)
    p.add_argument("--lr-max", type=float, default=100.0)
    p.add_argument("--target", type=float, default=0.80, help="training accuracy to reach")
    add_task_arguments(p, epochs=20, skip=("seed",))  # the cap per run: reaching it fails
    p.add_argument("--seed", type=int, default=0)
    add_tracking_arguments(p, "hpo-output/lr-sweep")
    args = p.parse_args()
    names = [n for n in args.optimizers.split(",") if n]
    for n in names:
        if n not in OPTIMIZERS:
            p.error(f"unknown optimizer {n!r}; known: {', '.join(OPTIMIZERS)}")

    base = task_from(args, seed=args.seed)
    data = base.load_data()
    lrs = np.logspace(math.log10(args.lr_min), math.log10(args.lr_max), args.lrs).tolist()

    parent = client = None
    if not args.no_tracking:
        from hpo._tracking import log_params, mlflow_client, start_run

        client = mlflow_client(args.tracking_uri)
        parent = start_run(client, "hpo", "lr-sweep", {"hpo.role": "study"})
        log_params(
            client,
            parent,
            {
                **base.to_params(),
                "optimizers": args.optimizers,
                "lrs": args.lrs,
                "target": args.target,
            },
        )

    steps: dict[str, list[float]] = {}
    start = time.perf_counter()
    for name in names:
        task = base.replace(optimizer=name)
        steps[name] = []
        for lr in lrs:
            cbs: list[hpo.Callback] = [StopAtTrainAccuracy(args.target)]
            if parent is not None:
                cbs.append(
                    hpo.MLflowCallback(
                        tracking_uri=args.tracking_uri,
                        run_name=f"{name} lr={lr:.2g}",
                        parent_run_id=parent,
                        log_artifacts=False,  # 175 runs: the per-run plots would dominate
                    )
                )
            h = hpo.run(
                task, Constant(lr=lr), tracking=False, callbacks=cbs, data=data, progress=False
            )
            reached = "stopped" in h.info
            steps[name].append(float(h.final.steps) if reached else math.nan)
        ok = [(lr, s) for lr, s in zip(lrs, steps[name]) if math.isfinite(s)]
        band = f"{min(ok)[0]:.2g} .. {max(ok)[0]:.2g}" if ok else "none"
        best = min(ok, key=lambda t: t[1]) if ok else None
        print(
            f"{name:<9} reached {args.target:.0%} train acc at {len(ok):>2}/{len(lrs)} lrs "
            f"(band {band}); fastest: "
            + (f"lr {best[0]:.2g} in {best[1]:,.0f} steps" if best else "-")
            + f"   [{time.perf_counter() - start:.0f}s]",
            flush=True,
        )

    fig = Figure(figsize=(8, 5), layout="constrained")
    ax = fig.subplots()
    cap = args.epochs * math.ceil(data.num_train / args.batch_size)
    for i, name in enumerate(names):
        y = np.array(steps[name])
        ax.plot(lrs, y, marker="o", color=f"C{i}", label=name)
        failed = [lr for lr, s in zip(lrs, y) if not math.isfinite(s)]
        row = cap * (1.12 + 0.05 * i)  # one row of failure marks per optimizer
        ax.scatter(failed, [row] * len(failed), marker="x", color=f"C{i}", s=18)
    ax.axhline(cap, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"optimizer steps to {args.target:.0%} training accuracy")
    ax.set_title(
        f"lr sweep on {args.dataset}/{args.model} (x: failed within {args.epochs} epochs)"
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    path = save_figure(args, fig, "lr_sweep.png", parent)
    print(f"\nvalley plot: {path}")
    if client is not None and parent is not None:
        client.set_terminated(parent, "FINISHED")
        print(f"MLflow parent run: {parent}")


if __name__ == "__main__":
    sys.exit(main())
