"""What every study script shares: the task and tracking flags, and how results are shown."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import hpo
from trainers import DATASETS, MODELS, OPTIMIZERS


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser whose description is the script docstring's first paragraph."""
    return argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )


def add_task_arguments(
    p: argparse.ArgumentParser,
    *,
    epochs: int,
    model: str = "cnn",
    optimizer: str | None = None,
    batch_size: int = 100,
) -> None:
    """``--dataset --model --epochs --batch-size --device --download`` (and ``--optimizer`` when
    the study lets the user choose it): what scales a study up on a GPU."""
    p.add_argument("--dataset", default="mnist1d", choices=DATASETS)
    p.add_argument("--model", default=model, choices=MODELS)
    if optimizer is not None:
        p.add_argument("--optimizer", default=optimizer, choices=OPTIMIZERS)
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--download", action="store_true", help="let torchvision download data")


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
    """The task the flags describe (``fields`` add or override)."""
    base: dict[str, Any] = dict(
        dataset=args.dataset,
        model=args.model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        device=args.device,
        download=args.download,
    )
    if hasattr(args, "optimizer"):
        base["optimizer"] = args.optimizer
    base.update(fields)
    return hpo.Task(**base)


def tracking(args: argparse.Namespace) -> bool | str:
    """What ``hpo.compare`` / ``hpo.objective`` take as ``tracking``."""
    return False if args.no_tracking else (args.tracking_uri or True)


def show(table: Any, extra_paths: Sequence[str] = ()) -> None:
    """Print a comparison table and where its table and plots were written."""
    print()
    print(hpo.format_table(table))
    print(f"\ntable and plots: {', '.join([*table.attrs['plots'], *extra_paths])}")
