"""What every study script shares: the task, tuning and tracking flags, lr tuning, running
``hpo.compare``, and how results are shown and figures saved."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import hpo

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser whose description is the script docstring's first paragraph."""
    from hpo._flags import HelpFormatter, OneLineParser

    return OneLineParser(description=doc.split("\n\n")[0], formatter_class=HelpFormatter)


def add_task_arguments(
    p: argparse.ArgumentParser,
    *,
    epochs: int,
    model: str = "cnn",
    optimizer: str | None = None,
    batch_size: int = 100,
    skip: tuple[str, ...] = (),
) -> None:
    """A flag for every ``hpo.Task`` field (``hpo._flags``, as the ``hpo`` command has them):
    what scales a study up on a GPU, or points it at your own task. The study's defaults for
    ``epochs``, ``model``, ``optimizer`` and ``batch_size`` are shown; ``skip`` leaves out
    fields the study sets itself."""
    from hpo._flags import add_dataclass_flags

    defaults = {"epochs": epochs, "model": model, "batch_size": batch_size}
    if optimizer is not None:
        defaults["optimizer"] = optimizer
    g = p.add_argument_group("task", "the training problem (any hpo.Task field)")
    add_dataclass_flags(g, hpo.Task, defaults=defaults, skip=skip)
    p.set_defaults(task_defaults=defaults)


def float_list(text: str) -> list[float]:
    """``"0.1,0.01"`` -> ``[0.1, 0.01]`` (an argparse ``type``)."""
    return [float(v) for v in text.split(",")]


def add_tuning_arguments(p: argparse.ArgumentParser, *, grid: str) -> None:
    """``--tuning-seed --grid``: the seed and the lrs of the tuning runs ``tune_lr`` makes;
    ``args.grid`` is a list of floats."""
    p.add_argument(
        "--tuning-seed", type=int, default=100, help="seed of the tuning runs (not in the table)"
    )
    p.add_argument("--grid", type=float_list, default=grid, help="lrs tried when tuning")


def tune_lr(
    task: hpo.Task,
    make: Callable[[float], Any],
    grid: Sequence[float],
    seed: int,
    data: Any = None,
) -> tuple[float, float]:
    """The lr of ``grid`` whose run of ``make(lr)`` on ``task`` with ``seed`` reaches the best
    validation accuracy (ties: the larger lr), and that accuracy; the runs are not tracked."""
    scores = []
    for lr in grid:
        h = hpo.run(task.replace(seed=seed), make(lr), tracking=False, data=data, progress=False)
        scores.append((h.best.val_score if h.best is not None else 0.0, lr))
    best_acc, best_lr = max(scores)
    return best_lr, best_acc


def add_tracking_arguments(p: argparse.ArgumentParser, output_dir: str) -> None:
    """``--tracking-uri --no-tracking --output-dir``."""
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or MLflow's)",
    )
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("--output-dir", default=output_dir, help="where tables and plots go")


def task_from(args: argparse.Namespace, **fields: Any) -> hpo.Task:
    """The task the flags describe: the study's defaults, then ``fields``, then the flags the
    user gave."""
    from hpo._flags import values

    return hpo.Task(**{**args.task_defaults, **fields, **values(args, hpo.Task)})


def tracking(args: argparse.Namespace) -> bool | str:
    """What ``hpo.compare`` / ``hpo.objective`` take as ``tracking``."""
    return False if args.no_tracking else (args.tracking_uri or True)


def compare(
    args: argparse.Namespace,
    task: hpo.Task,
    rows: Mapping[str, Any],
    *,
    run_name: str,
    output_dir: str | None = None,
    **kw: Any,
) -> pd.DataFrame:
    """``hpo.compare`` over ``--seeds`` seeds, tracked as the flags say, written to
    ``output_dir`` (default ``--output-dir``), printing its progress lines as they come; ``kw``
    go to ``hpo.compare`` (e.g. ``baseline``)."""
    return hpo.compare(
        task,
        rows,
        seeds=args.seeds,
        tracking=tracking(args),
        run_name=run_name,
        output_dir=args.output_dir if output_dir is None else output_dir,
        progress=lambda line: print(line, flush=True),
        **kw,
    )


def show(
    table: pd.DataFrame, extra_paths: Sequence[str] = (), columns: Sequence[str] = ()
) -> None:
    """Print a comparison table (then its raw ``columns``, if any) and where its table and
    plots were written."""
    print()
    print(hpo.format_table(table))
    if columns:
        print()
        print(table[list(columns)].to_string(float_format=lambda v: f"{v:,.3f}"))
    print(f"\ntable and plots: {', '.join([*table.attrs['plots'], *extra_paths])}")


def save_figure(
    args: argparse.Namespace, fig: Figure, name: str, run_id: str | None = None
) -> str:
    """Write ``fig`` to ``--output-dir``/``name`` (creating the folder) and, unless
    ``--no-tracking``, log it to the MLflow run ``run_id`` (if any) as ``plots/name``; return
    the file's path."""
    os.makedirs(args.output_dir, exist_ok=True)
    path = os.path.join(args.output_dir, name)
    fig.savefig(path, dpi=120)
    if run_id and not args.no_tracking:
        from hpo._tracking import mlflow_client

        mlflow_client(args.tracking_uri).log_figure(run_id, fig, f"plots/{name}")
    return path
