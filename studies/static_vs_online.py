"""Black-box HPO of a static lr (Optuna TPE and random search over full runs) against the online
strategies (random search per epoch, PBT) and a manual schedule, via ``hpo.compare``.

    python studies/static_vs_online.py                  # ~4 minutes on 2 CPU cores
    python studies/static_vs_online.py --dataset cifar10 --model resnet20 --epochs 60 \\
        --device cuda --download

Static HPO pays for ``--trials`` full runs before it has an answer; the online strategies pay
for branches or a population while they train. The table shows both the accuracy and that cost.
"""

from __future__ import annotations

import sys

from _common import add_task_arguments, add_tracking_arguments, compare, parser, show, task_from

from strategies import PBT, RandomSearch, Schedule, Static


def main() -> None:
    p = parser(__doc__)
    add_task_arguments(p, epochs=20, optimizer="adam")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--trials", type=int, default=8, help="full runs per static search")
    add_tracking_arguments(p, "hpo-output/static-vs-online")
    args = p.parse_args()

    task = task_from(args)
    strategies = {
        "schedule": Schedule(kind="one-cycle"),
        "static-tpe": Static(sampler="tpe", n_trials=args.trials),
        "static-random": Static(sampler="random", n_trials=args.trials),
        "random-search": RandomSearch(),
        "pbt": PBT(),
    }
    table = compare(args, task, strategies, run_name="static-vs-online")
    show(table)


if __name__ == "__main__":
    sys.exit(main())
