"""The distancing seed's experiments at MNIST-1D scale, via ``hpo.compare``: the effect of the
strength s, of the width sigma, of several checkpoints, of L2 weight decay, of a deliberately poor
learning rate with cosine warm restarts, and the accuracy of checkpoint ensembles.

Every run uses momentum SGD with cosine annealing and warm restarts (4 cycles; a checkpoint at
each restart, i.e. at the end of each cycle's minimum), the baseline being the same schedule
without distancing.

    python studies/distancing.py                      # ~4 minutes on 2 CPU cores
    python studies/distancing.py --dataset cifar10 --model resnet20 --epochs 80 --device cuda \\
        --download

Each experiment is one ``hpo.compare`` (a parent MLflow run with its plots); the tables are
printed, and the ensemble table compares each run's checkpoint ensemble with its best single
network.
"""

from __future__ import annotations

import statistics
import sys

from _common import add_task_arguments, add_tracking_arguments, compare, parser, task_from

import hpo
from strategies import Distancing, Schedule


def main() -> None:
    p = parser(__doc__)
    add_task_arguments(p, epochs=40)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.1, help="peak lr of the restarts schedule")
    p.add_argument("--poor-lr", type=float, default=0.01, help="the deliberately poor lr")
    p.add_argument("--s", type=float, default=1.0, help="strength when it is not the variable")
    p.add_argument("--sigma", type=float, default=4.0, help="width when it is not the variable")
    add_tracking_arguments(p, "hpo-output/distancing")
    args = p.parse_args()

    task = task_from(args, optimizer="momentum")
    restarts = Schedule(kind="restarts", lr=args.lr, period=0.25)
    poor = Schedule(kind="restarts", lr=args.poor_lr, period=0.25)

    def dist(inner: Schedule = restarts, **kw) -> Distancing:
        return Distancing(inner, **{"s": args.s, "sigma": args.sigma, **kw})

    experiments = {
        # s = 0: checkpoints but no hills, i.e. plain SGDR snapshots, for the ensemble table
        "strength s": {
            "restarts": restarts,
            **{f"s={s:g}": dist(s=s) for s in (0.0, 0.1, 1.0, 10.0)},
        },
        "width sigma": {
            "restarts": restarts,
            **{f"sigma={w:g}": dist(sigma=w) for w in (1.0, 4.0, 16.0)},
        },
        "checkpoints kept": {
            "restarts": restarts,
            **{f"keep {k}": dist(max_checkpoints=k) for k in (1, 3)},
        },
        "L2 weight decay": {
            "restarts": restarts,
            "distancing": dist(),
            "restarts wd": (restarts, {"weight_decay": 5e-4}),
            "distancing wd": (dist(), {"weight_decay": 5e-4}),
        },
        "poor lr": {"restarts": poor, "distancing": dist(poor)},
    }
    ensembles = []
    for title, rows in experiments.items():
        print(f"\n=== {title} ===", flush=True)
        slug = title.replace(" ", "-")
        table = compare(
            args,
            task,
            rows,
            run_name=f"distancing: {title}",
            output_dir=f"{args.output_dir}/{slug}",
        )
        print(hpo.format_table(table))
        for label, runs in table.attrs["histories"].items():
            found = [h.info["ensemble"] for h in runs if "ensemble" in h.info]
            if found:
                ensembles.append((title, label, found))

    print("\n=== checkpoint ensembles (mean over seeds) ===")
    print(
        f"{'experiment':<18} {'run':<16} {'members':>7} {'ensemble val':>12} "
        f"{'best single val':>15} {'ensemble test':>13} {'best single test':>16}"
    )
    for title, label, found in ensembles:

        def mean(key: str) -> float:
            return statistics.mean(e[key] for e in found)

        print(
            f"{title:<18} {label:<16} {found[0]['members']:>7} {mean('val_score'):>12.1%} "
            f"{mean('best_single_val_score'):>15.1%} {mean('test_score'):>13.1%} "
            f"{mean('best_single_test_score'):>16.1%}"
        )


if __name__ == "__main__":
    sys.exit(main())
