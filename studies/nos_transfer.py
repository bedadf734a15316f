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

from _common import (
    add_task_arguments,
    add_tracking_arguments,
    add_tuning_arguments,
    compare,
    parser,
    show,
    task_from,
    tune_lr,
)

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


def main() -> None:
    p = parser(__doc__)
    add_task_arguments(p, epochs=20)
    p.add_argument("--seeds", type=int, default=3)
    add_tuning_arguments(p, grid="3,0.3,0.03,0.003")
    p.add_argument("--optimizers", default=",".join(BASELINES + DISCOVERED))
    p.add_argument(
        "--genome",
        action="append",
        default=[],
        help="a genome JSON file (e.g. nos_search.py's best_genome.json); repeatable",
    )
    add_tracking_arguments(p, "hpo-output/nos-transfer")
    args = p.parse_args()

    genomes = []  # read before anything trains: a bad file is one line, not a traceback
    for path in args.genome:
        try:
            with open(path) as f:
                genomes.append(Genome.from_json(f.read()))
        except OSError as err:
            p.error(f"--genome {path}: cannot be read ({err.strerror})")
        except (ValueError, TypeError) as err:
            p.error(f"--genome {path}: {err}")
    task = task_from(args)
    data = task.load_data()
    optimizers = {name.removeprefix("nos:"): name for name in args.optimizers.split(",") if name}
    for i, genome in enumerate(genomes):
        optimizers[f"found-{i}"] = "nos:genome:" + genome.to_json()
        print(f"found-{i}: {genome.equation()}")
    rows = {}
    for label, optimizer in optimizers.items():
        lr, _ = tune_lr(
            task.replace(optimizer=optimizer),
            lambda lr: Schedule(kind="one-cycle", lr=lr),
            args.grid,
            args.tuning_seed,
            data,
        )
        print(f"tuned {label}: peak lr {lr:g}", flush=True)
        rows[label] = (Schedule(kind="one-cycle", lr=lr), {"optimizer": optimizer})
    table = compare(args, task, rows, run_name="nos-transfer")
    show(table)


if __name__ == "__main__":
    sys.exit(main())
