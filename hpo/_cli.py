"""The ``hpo`` command.

``hpo run`` trains one task with one strategy and logs it to MLflow. Bad values end with one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Help(argparse.HelpFormatter):
    """Show "(default: X)" after options that have a meaningful default and do not say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" not in text
            and default not in (None, False, [], argparse.SUPPRESS)
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


class UsageError(Exception):
    """A bad value on the command line: printed as one line, exit code 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hpo`` command; returns the exit code."""
    # MLflow's INFO lines (database creation...) would drown the progress output.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    from hpo import __version__

    parser = _Parser(
        prog="hpo",
        description="Online hyperparameter optimization of deep-learning training: strategies "
        "that choose the learning rate while a network trains, tracked in MLflow.",
        formatter_class=_Help,
    )
    parser.add_argument("--version", action="version", version=f"hpo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_run(sub)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.handler(args))
    except UsageError as err:
        print(f"hpo {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError) as err:
        print(f"hpo {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"hpo {args.command}: interrupted", file=sys.stderr)
        return 130


# =============================================================================================
# Shared options
# =============================================================================================


def _add_task_options(p: argparse.ArgumentParser) -> None:
    from hpo._task import Task
    from trainers import DATASETS, MODELS, OPTIMIZERS

    d = Task()
    g = p.add_argument_group("task")
    g.add_argument("--dataset", default=d.dataset, choices=DATASETS, help="dataset")
    g.add_argument("--model", default=d.model, choices=MODELS, help="model")
    g.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS, help="base optimizer")
    g.add_argument("--epochs", type=int, default=d.epochs, help="epochs of the run")
    g.add_argument("--batch-size", type=int, default=d.batch_size, help="minibatch size")
    g.add_argument(
        "--seed", type=int, default=d.seed, help="seed of initialisation and data order"
    )
    g.add_argument(
        "--device", default=d.device, help="auto (CUDA when present), cpu, cuda, cuda:N"
    )
    g.add_argument(
        "--precision", default=d.precision, choices=("fp32", "bf16"), help="bf16 autocast on CUDA"
    )
    g.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help="optimizer weight decay (default: the optimizer's)",
    )
    g.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="use only this many training examples (default: all)",
    )
    g.add_argument(
        "--data-dir",
        default=None,
        help="where torchvision datasets are (default: $HPO_DATA_DIR or ~/.cache/hpo/data)",
    )
    g.add_argument(
        "--download", action="store_true", help="let torchvision download a missing dataset"
    )


def _add_tracking_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tracking")
    g.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's "
        "default, sqlite:///mlflow.db)",
    )
    g.add_argument("--experiment", default="hpo", help="MLflow experiment name")
    g.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")


def _task_from(args: argparse.Namespace) -> Any:
    from hpo._task import Task

    return Task(
        dataset=args.dataset,
        model=args.model,
        optimizer=args.optimizer,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        precision=args.precision,
        weight_decay=args.weight_decay,
        train_size=args.train_size,
        data_dir=args.data_dir,
        download=args.download,
    )


def _strategy_options(pairs: Sequence[str], lr: float | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set takes KEY=VALUE, but got {pair!r}")
        try:
            options[key.replace("-", "_")] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            options[key.replace("-", "_")] = text
    if lr is not None:
        options["lr"] = lr
    return options


def _tracking_uri(args: argparse.Namespace) -> str:
    if args.tracking_uri:
        return str(args.tracking_uri)
    import mlflow

    return str(mlflow.get_tracking_uri())


# =============================================================================================
# hpo run
# =============================================================================================


def _add_run(sub: Any) -> None:
    from strategies import STRATEGIES

    p = sub.add_parser(
        "run",
        help="train one task with one strategy, logged to MLflow",
        description="Train one task with one strategy; print a line per epoch and a summary, "
        "and log the run to MLflow.",
        formatter_class=_Help,
    )
    p.add_argument(
        "--strategy", default="schedule", choices=sorted(STRATEGIES), help="the lr strategy"
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="the strategy's (base) learning rate (default: the optimizer's default)",
    )
    p.add_argument(
        "--set",
        dest="options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a strategy config option, e.g. --set kind=step (repeatable)",
    )
    _add_task_options(p)
    _add_tracking_options(p)
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    p.set_defaults(handler=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from hpo._progress import ProgressPrinter
    from hpo._run import run
    from hpo._tracking import MLflowCallback
    from strategies import make_strategy

    task = _task_from(args)
    strategy = make_strategy(args.strategy, **_strategy_options(args.options, args.lr))
    tracking: Any = False
    uri = None
    if not args.no_tracking:
        uri = _tracking_uri(args)
        tracking = MLflowCallback(tracking_uri=uri, experiment=args.experiment)
    callbacks = [] if args.quiet else [ProgressPrinter(sys.stderr, total_epochs=task.epochs)]
    try:
        data = task.load_data()
    except RuntimeError as err:
        print(f"hpo run: error: {err}", file=sys.stderr)
        return 1
    history = run(task, strategy, tracking=tracking, callbacks=callbacks, data=data)

    best = history.best
    final = history.final
    print(
        f"\n{history.strategy} on {task.dataset}/{task.model} ({task.optimizer}): "
        f"{history.epochs} epochs, status {history.status}, "
        f"{final.wall_time if final else 0:.1f}s"
    )
    if final is not None:
        print(f"  final   val acc {final.val_acc:6.2%}   test acc {history.test_acc:6.2%}")
    if best is not None:
        print(
            f"  best    val acc {best.val_acc:6.2%}   test acc {history.best_test_acc:6.2%}"
            f"   (epoch {best.epoch})"
        )
    if history.diverged_epoch is not None:
        print(f"  diverged at epoch {history.diverged_epoch} (non-finite loss)")
    if isinstance(tracking, MLflowCallback):
        print(f"MLflow run {tracking.run_id} in experiment {args.experiment!r} at {uri}")
        print(f"  browse: mlflow ui --backend-store-uri {uri}   (then open http://127.0.0.1:5000)")
    return 0 if history.status == "finished" else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
