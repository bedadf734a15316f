"""Black-box HPO of a static lr (Optuna TPE and random search over full runs) against the online
strategies (random search per epoch, PBT) and a manual schedule, via ``hpo.compare``.

    python studies/static_vs_online.py                  # ~4 minutes on 2 CPU cores
    python studies/static_vs_online.py --dataset cifar10 --model resnet20 --epochs 60 \\
        --device cuda --download

Static HPO pays for ``--trials`` full runs before it has an answer; the online strategies pay
for branches or a population while they train. The table shows both the accuracy and that cost.
"""

from __future__ import annotations

import argparse
import sys

import hpo
from strategies import PBT, RandomSearch, Schedule, Static
from trainers import DATASETS, MODELS, OPTIMIZERS


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", default="mnist1d", choices=DATASETS)
    p.add_argument("--model", default="cnn", choices=MODELS)
    p.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--trials", type=int, default=8, help="full runs per static search")
    p.add_argument("--device", default="auto")
    p.add_argument("--download", action="store_true")
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--no-tracking", action="store_true")
    p.add_argument("--output-dir", default="hpo-output/static-vs-online")
    args = p.parse_args()

    task = hpo.Task(
        dataset=args.dataset,
        model=args.model,
        optimizer=args.optimizer,
        epochs=args.epochs,
        device=args.device,
        download=args.download,
    )
    strategies = {
        "schedule": Schedule(kind="one-cycle"),
        "static-tpe": Static(sampler="tpe", n_trials=args.trials),
        "static-random": Static(sampler="random", n_trials=args.trials),
        "random-search": RandomSearch(),
        "pbt": PBT(),
    }
    tracking = False if args.no_tracking else (args.tracking_uri or True)
    table = hpo.compare(
        task,
        strategies,
        seeds=args.seeds,
        tracking=tracking,
        run_name="static-vs-online",
        output_dir=args.output_dir,
        progress=lambda line: print(line, flush=True),
    )
    print()
    print(hpo.format_table(table))
    print(f"\ntable and plots: {', '.join(table.attrs['plots'])}")


if __name__ == "__main__":
    sys.exit(main())
