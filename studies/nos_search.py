"""Neural optimizer search on MNIST-1D with the NOS surrogate ConvNet: the particle GA as an
Optuna sampler (``NOSSampler``), each trial one candidate optimizer evaluated as the paper does
(an lr sweep, then a final run; ``NOSPruner`` stops losers at 25 % / 40 % training accuracy).

    python studies/nos_search.py                         # ~3 minutes on 2 CPU cores
    python studies/nos_search.py --population 8 --mutations 4 --steps 5 --init-size 40 \\
        --epochs 20 --storage sqlite:///nos.db           # bigger; resumable, shareable
    python studies/nos_search.py --dataset cifar10 --model convnet --base 48 --epochs 40 \\
        --device cuda --download --population 50 --mutations 7 --steps 5 --init-size 500

It prints the best equations with their fitness (best validation accuracy), logs a parent MLflow
run (the study) with a child per candidate, and plots the fitness over GA time-steps. Start it
again with the same ``--storage`` and ``--study-name`` to continue the same search.
"""

from __future__ import annotations

import math
import os
import sys

import optuna
from _common import (
    add_task_arguments,
    add_tracking_arguments,
    parser,
    save_figure,
    task_from,
    tracking,
)

import hpo
from strategies.nos import Genome, NOSEvaluation, NOSPruner, NOSSampler, genome_of


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--population", type=int, default=3, help="P, particles")
    p.add_argument("--mutations", type=int, default=3, help="M, children per particle and step")
    p.add_argument("--steps", type=int, default=3, help="S, GA time-steps")
    p.add_argument("--init-size", type=int, default=9, help="random candidates first")
    add_task_arguments(p, epochs=8, model="convnet", skip=("seed",))
    p.add_argument("--base", type=int, default=16, help="the ConvNet's first-layer channels")
    p.add_argument("--sweep-epochs", type=int, default=1, help="epochs of each sweep run")
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna storage (default: in memory); with one, a worker that dies mid-trial is "
        "noticed by its missing heartbeat and its trial retried",
    )
    p.add_argument("--study-name", default="nos-search")
    p.add_argument("--seed", type=int, default=0)
    add_tracking_arguments(p, "hpo-output/nos-search")
    args = p.parse_args()

    options = {"base": args.base} if args.model == "convnet" else {}
    task = task_from(args, model_options=options)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = NOSSampler(
        population=args.population,
        mutations=args.mutations,
        init_size=args.init_size,
        seed=args.seed,
    )
    study = optuna.create_study(
        study_name=args.study_name,
        storage=hpo.storage(args.storage),  # a dead worker's trial is retried (heartbeat)
        direction="maximize",
        sampler=sampler,
        load_if_exists=True,
        pruner=NOSPruner(final_warmup=max(1, args.epochs // 4)),
    )
    n_trials = args.init_size + args.population * args.mutations * args.steps
    todo = max(0, n_trials - len(study.trials))
    print(
        f"{len(study.trials)} trials in the study; running {todo} more "
        f"(init {args.init_size} + P {args.population} x M {args.mutations} x S {args.steps})",
        flush=True,
    )

    def make(trial: optuna.Trial) -> NOSEvaluation:
        return NOSEvaluation(
            genome=genome_of(trial).to_json(), sweep_epochs=args.sweep_epochs, seed=args.seed
        )

    def progress(study: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
        role = t.system_attrs.get("nos:role")
        where = (
            "init"
            if role == "init"
            else (f"particle {t.system_attrs['nos:particle']} step {t.system_attrs['nos:step']}")
        )
        fit = t.value if t.value is not None else t.user_attrs.get("value_so_far")
        fit_s = "-" if fit is None else f"{fit:.1%}"
        print(
            f"trial {t.number:>3} {where:<20} {t.state.name.lower():<8} val {fit_s:>6}  "
            f"{t.user_attrs.get('nos_equation', '')[:90]}",
            flush=True,
        )

    with hpo.objective(task, make, "val_acc", report="train_acc", tracking=tracking(args)) as obj:
        study.optimize(obj, n_trials=todo, callbacks=[progress])

    scored = []
    for t in study.trials:
        fit = sampler._fitness(study, t)
        if math.isfinite(fit):
            scored.append((fit, t.user_attrs.get("nos_equation", ""), t.number))
    scored.sort(reverse=True)
    print("\nbest candidates (fitness = best validation accuracy):")
    seen = set()
    for fit, eq, number in scored:
        if eq in seen:
            continue
        seen.add(eq)
        print(f"  {fit:6.1%}  trial {number:>3}  {eq}")
        if len(seen) == 5:
            break
    if scored:
        best = Genome.from_json(study.trials[scored[0][2]].system_attrs["nos:genome"])
        os.makedirs(args.output_dir, exist_ok=True)
        with open(os.path.join(args.output_dir, "best_genome.json"), "w") as f:
            f.write(best.to_json())
        print(f"  LaTeX: {best.latex()}")

    parent = study.user_attrs.get("mlflow_parent_run_id")
    path = save_figure(args, plot_fitness(study, sampler), "fitness.png", parent)
    if scored:
        print(f"\nfitness plot: {path}; best genome: {args.output_dir}/best_genome.json")
    else:
        print(f"\nno candidate finished unpruned (try more --epochs); fitness plot: {path}")
    if parent:
        print(f"MLflow parent run: {parent}")


def plot_fitness(study: optuna.Study, sampler: NOSSampler):
    """Fitness over GA time-steps: the initial population at step 0, then every child; a line
    per particle through its best child of each step."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    init = [
        sampler._fitness(study, t)
        for t in study.trials
        if t.system_attrs.get("nos:role") == "init"
    ]
    init = [f for f in init if math.isfinite(f)]
    ax.scatter([0] * len(init), [100 * f for f in init], color="grey", s=12, label="initial")
    for t in study.trials:
        if t.system_attrs.get("nos:role") == "child" and "nos:genome" in t.system_attrs:
            f = sampler._fitness(study, t)
            if math.isfinite(f):
                p = int(t.system_attrs["nos:particle"])
                ax.scatter(
                    [int(t.system_attrs["nos:step"]) + 1],
                    [100 * f],
                    color=f"C{p % 10}",
                    s=10,
                    alpha=0.5,
                )
    particles = sampler.particles(study) if sampler.phase(study) == "evolving" else []
    start = sampler._particles(sampler._rebuild(study)) or []
    for i, part in enumerate(particles):
        ys = [start[i].fitness] + [h["fitness"] for h in part["history"]]
        xs = list(range(len(ys)))
        pts = [(x, 100 * y) for x, y in zip(xs, ys) if math.isfinite(y)]
        if pts:
            ax.plot(*zip(*pts), color=f"C{i % 10}", marker="o", label=f"particle {i}")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("GA time-step (0 = initial population)")
    ax.set_ylabel("fitness: best validation accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Particle GA: fitness over time-steps")
    return fig


if __name__ == "__main__":
    sys.exit(main())
