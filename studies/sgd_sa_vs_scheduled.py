"""Scheduled-SGD against SGD-SA, seed by seed: the shape of the SGD-SA paper's Table 1 (and its
Fig. 3a) at MNIST-1D scale, via ``hpo.compare``.

As in the paper: plain SGD (no momentum); Scheduled-SGD uses lr 0.1 for the first 30 % of the
epochs, 0.01 for the next 40 % and 0.001 for the last 30 %; SGD-SA uses T0 = 1 (in the authors'
units, ``loss_scale = 1/512``), cooling 0.8 per epoch and H = {0.9, ..., 0.1, 0.09, ..., 0.05};
100 epochs; 10 seeds; each run's output is its best-validation epoch. The batch size is 100, not
the paper's 512: MNIST-1D has 3,600 training signals, so 512 would leave 8 steps per epoch
(``--batch-size 512`` runs the paper's setting).

    python studies/sgd_sa_vs_scheduled.py              # ~4 minutes on 2 CPU cores
    python studies/sgd_sa_vs_scheduled.py --dataset cifar10 --model resnet34 --batch-size 512 \\
        --device cuda --download                      # the paper's experiment

Prints the per-seed table (best validation accuracy and loss), the best of the seeds, and the
``hpo.compare`` table; writes the plots (and the Fig. 3a plot of every SGD-SA seed).
"""

from __future__ import annotations

import sys

from _common import (
    add_task_arguments,
    add_tracking_arguments,
    compare,
    parser,
    save_figure,
    show,
    task_from,
)

from strategies import SGDSA, Schedule


def main() -> None:
    p = parser(__doc__)
    add_task_arguments(p, epochs=100)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--loss-mode", default="eval", choices=("eval", "train"))
    p.add_argument(
        "--robust", action="store_true", help="also run SGD-SA's default (robust) preset"
    )
    add_tracking_arguments(p, "hpo-output/sgd-sa-vs-scheduled")
    args = p.parse_args()

    task = task_from(args, optimizer="sgd")
    strategies = {
        "scheduled-sgd": Schedule(kind="step", lr=0.1, milestones=(0.3, 0.7), gamma=0.1),
        "sgd-sa": SGDSA(preset="paper", loss_mode=args.loss_mode),  # the paper's Algorithm 2
    }
    if args.robust:
        strategies["sgd-sa-robust"] = SGDSA()  # the project's default preset
    table = compare(args, task, strategies, run_name="sgd-sa-vs-scheduled")
    histories = table.attrs["histories"]

    print("\nBest validation accuracy and loss, seed by seed (the paper's Table 1):\n")
    print(f"{'seed':>4}  {'Scheduled-SGD acc':>17} {'loss':>7}   {'SGD-SA acc':>10} {'loss':>7}")
    rows = list(zip(histories["scheduled-sgd"], histories["sgd-sa"]))
    for seed, (a, b) in enumerate(rows):
        print(
            f"{seed:>4}  {a.best.val_score:>17.2%} {min(a.column('val_loss')):>7.4f}   "
            f"{b.best.val_score:>10.2%} {min(b.column('val_loss')):>7.4f}"
        )
    for name, runs in histories.items():
        best = max(runs, key=lambda h: h.best.val_score)
        lowest = min(min(h.column("val_loss")) for h in runs)
        print(
            f"best of {len(runs)} seeds, {name}: {best.best.val_score:.2%} "
            f"(seed {best.task['seed']}), lowest loss {lowest:.4f}"
        )
    lower = sum(min(b.column("val_loss")) < min(a.column("val_loss")) for a, b in rows)
    higher = sum(b.best.val_score > a.best.val_score for a, b in rows)
    print(
        f"SGD-SA has the lower validation loss on {lower}/{len(rows)} seeds and the higher "
        f"accuracy on {higher}/{len(rows)}."
    )
    path = save_figure(
        args, _fig3a(histories["sgd-sa"]), "acceptance.png", table.attrs.get("mlflow_run_id")
    )
    show(table, [path])


def _fig3a(runs):
    """Fig. 3a: SGD-SA's mean acceptance probability per epoch, one line per seed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), layout="constrained")
    ax = fig.subplots()
    lines = (
        ("mean_acceptance_probability", "k", "all moves"),
        ("worsening_acceptance_probability", "C3", "worsening moves"),
    )
    for i, h in enumerate(runs):
        for column, color, label in lines:
            ax.plot(
                h.column("epoch"),
                h.column(column),
                color=color,
                alpha=0.35,
                lw=1,
                label=label if i == 0 else None,
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean acceptance probability (clipped to 1)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"SGD-SA, {len(runs)} seeds")
    return fig


if __name__ == "__main__":
    sys.exit(main())
