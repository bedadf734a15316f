"""The discovered optimizers (and any genome a search found) against Adam, SGD, Nesterov and
RMSProp on one task, via ``hpo.compare``: does what the search found transfer?

Every optimizer trains under the NOS base schedule (one-cycle: linear warm-up, cosine decay) at
its own peak lr, chosen first on a separate tuning seed from a log grid (the NOS lr sweep's
idea; the tuning runs are not counted in the table).

    python studies/nos_transfer.py                        # ~4 minutes on 2 CPU cores
    python studies/nos_transfer.py --genome hpo-output/nos-search/best_genome.json
    python studies/nos_transfer.py --dataset cifar10 --model resnet20 --epochs 60 \\
        --device cuda --download
"""

from __future__ import annotations

import sys

from _common import add_task_arguments, add_tracking_arguments, parser, show, task_from, tracking

import hpo
from strategies import Schedule
from strategies.nos import Genome

BASELINES = ("adam", "sgd", "nesterov", "rmsprop")
DISCOVERED = (
    "nos:opt6",
    "nos:opt9",
    "nos:opt10",
    "nos:a1",
    "nos:qhm",
    "nos:powersign",
    "nos:addsign",
)


def tune(task: hpo.Task, optimizer: str, grid: list[float], seed: int, data) -> float:
    best = (-1.0, grid[0])
    for lr in grid:
        h = hpo.run(
            task.replace(optimizer=optimizer, seed=seed),
            Schedule(kind="one-cycle", lr=lr),
            tracking=False,
            data=data,
        )
        acc = h.best.val_acc if h.best is not None else 0.0
        best = max(best, (acc, lr))
    return best[1]


def main() -> None:
    p = parser(__doc__)
    add_task_arguments(p, epochs=20)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--tuning-seed", type=int, default=100)
    p.add_argument("--grid", default="3,0.3,0.03,0.003", help="peak lrs tried when tuning")
    p.add_argument("--optimizers", default=",".join(BASELINES + DISCOVERED))
    p.add_argument(
        "--genome",
        action="append",
        default=[],
        help="a genome JSON file (e.g. nos_search.py's best_genome.json); repeatable",
    )
    add_tracking_arguments(p, "hpo-output/nos-transfer")
    args = p.parse_args()

    task = task_from(args)
    data = task.load_data()
    optimizers = {name.removeprefix("nos:"): name for name in args.optimizers.split(",") if name}
    for i, path in enumerate(args.genome):
        with open(path) as f:
            genome = Genome.from_json(f.read())
        optimizers[f"found-{i}"] = "nos:genome:" + genome.to_json()
        print(f"found-{i}: {genome.equation()}")
    grid = [float(v) for v in args.grid.split(",")]
    rows = {}
    for label, optimizer in optimizers.items():
        lr = tune(task, optimizer, grid, args.tuning_seed, data)
        print(f"tuned {label}: peak lr {lr:g}", flush=True)
        rows[label] = (Schedule(kind="one-cycle", lr=lr), {"optimizer": optimizer})
    table = hpo.compare(
        task,
        rows,
        seeds=args.seeds,
        tracking=tracking(args),
        run_name="nos-transfer",
        output_dir=args.output_dir,
        progress=lambda s: print(s, flush=True),
    )
    show(table)


if __name__ == "__main__":
    sys.exit(main())
