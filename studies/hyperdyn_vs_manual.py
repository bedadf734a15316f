"""Hyperdyn against a tuned manual schedule, the best static lr, epoch-based BO and random 5x:
the shape of the Hyperdyn paper's Table 1 and Fig. 1(d), at MNIST-1D scale, via ``hpo.compare``.

As in the paper's CIFAR-10 experiment the base optimizer is momentum-SGD and Hyperdyn tunes the
learning rate and the momentum. The manual step schedule (He et al.: divide the lr by 10 at 50 %
and 75 % of training) and the static lr are tuned first, on a separate seed, over a small grid
(that tuning is not counted in the table's cost). Random 5x tries 5 x the 2 branches Hyperdyn
trains per epoch (10 random lrs). ``hyperdyn+`` is Hyperdyn with this project's options beyond
the paper (switch only to a branch that did better, EI against the last epoch's best, Random-Start
recorded as differences).

    python studies/hyperdyn_vs_manual.py                 # ~6 minutes on 2 CPU cores
    python studies/hyperdyn_vs_manual.py --dataset cifar10 --model resnet20 --epochs 160 \\
        --batch-size 128 --device cuda --download

The table (steps to 85/90/95 % of the best accuracy, final accuracy, the steps *spent*) is
printed and logged to MLflow with the plots (validation accuracy against steps: Fig. 1(d); the
lr against epochs: Fig. 2(a)).
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

from strategies import Constant, EpochBO, Hyperdyn, RandomSearch, Schedule

HE_MILESTONES = (0.5, 0.75)  # He et al. (2016): lr / 10 at 32k and 48k of 64k iterations


def main() -> None:
    p = parser(__doc__)
    add_task_arguments(p, epochs=30, optimizer="momentum")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument(
        "--robust", action="store_true", help="also run Hyperdyn's default (robust) preset"
    )
    add_tuning_arguments(p, grid="0.01,0.03,0.1,0.3")
    add_tracking_arguments(p, "hpo-output/hyperdyn-vs-manual")
    args = p.parse_args()

    task = task_from(args)
    data = task.load_data()
    step_lr, step_acc = tune_lr(
        task,
        lambda lr: Schedule(kind="step", lr=lr, milestones=HE_MILESTONES),
        args.grid,
        args.tuning_seed,
        data,
    )
    const_lr, const_acc = tune_lr(
        task, lambda lr: Constant(lr=lr), args.grid, args.tuning_seed, data
    )
    print(
        f"tuned on seed {args.tuning_seed}: step schedule lr {step_lr:g} "
        f"(val {step_acc:.1%}), static lr {const_lr:g} (val {const_acc:.1%})",
        flush=True,
    )

    tuned = ("lr", "momentum") if args.optimizer in ("momentum", "nesterov") else ("lr",)
    strategies = {
        "manual-step": Schedule(kind="step", lr=step_lr, milestones=HE_MILESTONES),
        "static-best": Constant(lr=const_lr),
        # the paper's algorithm as published (the README's table); `--robust` adds the
        # project's default preset as a row
        "hyperdyn": Hyperdyn(preset="paper", hyperparameters=tuned),
        "epoch-bo": EpochBO(preset="paper", hyperparameters=tuned),
        "random-5x": RandomSearch(n_candidates=10),
        "hyperdyn+": Hyperdyn(
            preset="paper",
            hyperparameters=tuned,
            switch_to="better-branch",
            incumbent="last-epoch",
            random_start_outcome="difference",
        ),
    }
    if args.robust:
        strategies["hyperdyn-robust"] = Hyperdyn(hyperparameters=tuned)
    table = compare(args, task, strategies, run_name="hyperdyn-vs-manual", baseline="manual-step")
    show(
        table,
        columns=(
            "final_val_acc_mean",
            "best_val_acc_mean",
            "steps_mean",
            "spent_steps_mean",
            "cost",
            "wall_time_mean",
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
