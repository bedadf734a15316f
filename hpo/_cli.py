"""The ``hpo`` command.

``hpo run`` trains one task with one strategy and logs it to MLflow. Bad values end with one
line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from hpo._callbacks import Callback
from hpo._flags import HelpFormatter, OneLineParser
from hpo._task import MAX_SEED

EXIT_USAGE = 2


_Parser = OneLineParser


class UsageError(Exception):
    """A bad value on the command line: printed as one line, exit code 2."""


class _Phase(Callback):
    """Marks the moment training starts (a run's recorder starts its callbacks): an error
    before it is the user's input (one line, exit 2), one after it is the run's own (its
    traceback is shown: it may be a bug)."""

    def __init__(self) -> None:
        self.training = False

    def on_run_start(self, history: Any, trainer: Any) -> None:
        self.training = True


def _warn(command: str, message: str) -> None:
    """One warning line on stderr (an option that is ignored where it was given)."""
    print(f"hpo {command}: warning: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hpo`` command; returns the exit code."""
    # MLflow's INFO lines (database creation...) would drown the progress output.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    from hpo import __version__

    parser = _Parser(
        prog="hpo",
        description="Online hyperparameter optimization of deep-learning training: strategies "
        "that choose the learning rate while a network trains, tracked in MLflow.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hpo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    _add_run(sub, _flag_value(argv, "--strategy") or DEFAULT_RUN)
    _add_compare(sub, _flag_value(argv, "--strategies") or DEFAULT_COMPARE)
    _add_study(sub)
    _add_bench(sub)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    args.phase = _Phase()
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning(args.command)
        return _handle(args)


def _one_line_warning(command: str) -> Callable[..., None]:
    """Python warnings as ``hpo COMMAND: warning: ...`` lines on stderr."""

    def show(message: Warning | str, *_: Any, **__: Any) -> None:
        print(f"hpo {command}: warning: {' '.join(str(message).split())}", file=sys.stderr)

    return show


def _handle(args: argparse.Namespace) -> int:
    """Run the command; bad input (before training starts) is one line and exit code 2."""
    try:
        return int(args.handler(args))
    except (UsageError, ValueError, TypeError) as err:
        if args.phase.training and not isinstance(err, UsageError):
            raise  # not the input's fault: the traceback is what a bug report needs
        message = " ".join(str(err).split())  # one line, whatever the message's layout
        print(f"hpo {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"hpo {args.command}: interrupted", file=sys.stderr)
        return 130


# =============================================================================================
# Shared options
# =============================================================================================


def _add_task_options(p: argparse.ArgumentParser, *, epochs: int = 40) -> None:
    """``--task`` and one flag per ``hpo.Task`` field (``hpo._flags``)."""
    from hpo._flags import add_dataclass_flags
    from hpo._task import Task

    g = p.add_argument_group(
        "task",
        "the training problem: --task module:function (a function returning an hpo.Task), "
        "and any field of it",
    )
    g.add_argument(
        "--task",
        dest="task_path",
        default=None,
        metavar="MODULE:FUNCTION",
        help="start from the hpo.Task this function returns (the flags below override it)",
    )
    add_dataclass_flags(g, Task, defaults={"epochs": epochs})
    p.set_defaults(task_epochs=epochs)


def _add_tracking_options(p: argparse.ArgumentParser, *, run_name: str | None = None) -> None:
    g = p.add_argument_group("tracking")
    if run_name is not None:
        g.add_argument("--run-name", default=None, help=run_name)
    g.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's "
        "default, sqlite:///mlflow.db)",
    )
    g.add_argument("--experiment", default="hpo", help="MLflow experiment name")
    g.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")


def _task_from(args: argparse.Namespace) -> Any:
    """The task of ``--task`` (or the defaults, with the command's epochs), with the task
    flags the user gave applied on top.

    Raises:
        UsageError: ``--task`` does not name a function returning an ``hpo.Task``.
    """
    from hpo._flags import values
    from hpo._task import Task

    given = values(args, Task)
    if args.task_path is None:
        return Task(**{"epochs": args.task_epochs, **given})
    made = _user_task(args.task_path)
    return made.replace(**given) if given else made


def _user_task(path: str) -> Any:
    """The ``hpo.Task`` the function at ``--task PATH`` returns.

    Raises:
        UsageError: The path does not import, or the function returns something else.
    """
    from hpo._task import Task, _resolve

    try:
        made = _resolve(path, "task")()
    except ValueError as err:
        raise UsageError(f"--task: {err}") from err
    if not isinstance(made, Task):
        raise UsageError(
            f"--task {path!r} must return an hpo.Task, but returned {type(made).__name__}"
        )
    return made


def _flag_value(argv: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` in ``argv`` (``--flag V`` or ``--flag=V``; the last one, as
    argparse takes), before parsing: it decides which strategies' option flags to generate."""
    value = None
    for i, token in enumerate(argv):
        if token == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif token.startswith(flag + "="):
            value = token.split("=", 1)[1]
    return value


def _add_strategy_flags(p: argparse.ArgumentParser, names: str) -> None:
    """``--<strategy>.<option>`` for every config field of the named (registered) strategies."""
    from hpo._flags import add_dataclass_flags
    from strategies import STRATEGIES

    for name in dict.fromkeys(n.strip() for n in names.split(",")):
        if name in STRATEGIES:
            cls = STRATEGIES[name]
            g = p.add_argument_group(
                f"{name} options", f"{cls.config_class.__name__} fields (also --set)"
            )
            add_dataclass_flags(g, cls.config_class, prefix=f"{name}.")


def _strategy_options(
    name: str, args: argparse.Namespace, pairs: Sequence[str], lr: float | None = None
) -> dict[str, Any]:
    """A strategy's config options: its ``--<name>.<option>`` flags, then ``--set KEY=VALUE``
    (each parsed by the field's type), then ``--lr``."""
    from hpo._flags import parse_value, values
    from strategies import STRATEGIES

    config = STRATEGIES[name].config_class
    options = values(args, config, prefix=f"{name}.")
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--set takes KEY=VALUE, but got {pair!r}")
        key = key.replace("-", "_")
        try:
            options[key] = parse_value(config, key, text)
        except ValueError as err:
            raise UsageError(f"--set {pair}: {err}") from err
    if lr is not None:
        options["lr"] = lr
    return options


def _tracking_uri(args: argparse.Namespace) -> str:
    from hpo._tracking import resolve_tracking_uri

    return resolve_tracking_uri(args.tracking_uri)


def _tracking_option(args: argparse.Namespace, command: str) -> str | None:
    """The MLflow tracking URI to log to, checked up front, or ``None`` with ``--no-tracking``
    (which wins over ``--tracking-uri``, with a warning).

    Raises:
        UsageError: The URI is unusable (a missing folder, a server that does not answer...).
    """
    from hpo._resources import check_tracking_uri

    if args.no_tracking:
        if args.tracking_uri is not None:
            _warn(command, f"--tracking-uri {args.tracking_uri} is ignored with --no-tracking")
        return None
    uri = _tracking_uri(args)
    try:
        check_tracking_uri(uri, flag="--tracking-uri")
    except ValueError as err:
        raise UsageError(str(err)) from err
    return uri


def _check_output_dir(path: str) -> None:
    """``--output-dir`` must be a folder that can be written (or created), checked before any
    training.

    Raises:
        UsageError: It cannot.
    """
    from hpo._resources import check_output_dir

    try:
        check_output_dir(path, flag="--output-dir")
    except ValueError as err:
        raise UsageError(str(err)) from err


def _series_progress() -> Any:
    """Live bars for a series of runs when stderr is a terminal, else a line per run."""
    from hpo._progress import interactive

    if interactive():
        return True
    return lambda line: print(line, file=sys.stderr, flush=True)


def _check_storage(url: str | None) -> None:
    """``--storage`` must be a usable Optuna storage, checked before anything else touches it.

    Raises:
        UsageError: It is not (an unknown scheme, a missing folder, a file that is not a
            database or journal, a server that does not answer, a missing driver).
    """
    from hpo._resources import check_storage_url

    try:
        check_storage_url(url, flag="--storage")
    except ValueError as err:
        raise UsageError(str(err)) from err


def _flagged(message: str) -> str:
    """An API error message with the argument names the CLI user knows as flags."""
    for name, flag in (("`checkpoint_dir`", "--checkpoint-dir"), ("`resume=True`", "--resume")):
        message = message.replace(name, flag)
    return message


# =============================================================================================
# hpo run
# =============================================================================================


DEFAULT_RUN = "schedule"


def _add_run(sub: Any, strategy: str) -> None:
    from strategies import STRATEGIES

    p = sub.add_parser(
        "run",
        help="train one task with one strategy, logged to MLflow",
        description="Train one task with one strategy; print a line per epoch and a summary, "
        "and log the run to MLflow.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--strategy", default=DEFAULT_RUN, choices=sorted(STRATEGIES), help="the lr strategy"
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
    _add_tracking_options(p, run_name="the MLflow run's name (default: the strategy's)")
    g = p.add_argument_group(
        "checkpoints",
        "save the run's whole state at every epoch boundary; after a crash or kill -9 the same "
        "command with --resume continues it, ends with the same weights and History as a run "
        "that never stopped, and logs into the same MLflow run",
    )
    g.add_argument(
        "--checkpoint-dir",
        default=None,
        metavar="DIR",
        help="where the checkpoint goes (checkpoint.pt, checkpoint.json, and history.json at "
        "the end); its parent folder must exist",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in --checkpoint-dir (a fresh start when there is none; "
        "nothing is trained when it had ended)",
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar (there is none when stderr is not a terminal: a log gets the "
        "summary only)",
    )
    _add_strategy_flags(p, strategy)
    p.set_defaults(handler=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from hpo._progress import interactive
    from hpo._run import run
    from hpo._tracking import MLflowCallback
    from strategies import make_strategy

    task = _task_from(args)
    strategy = make_strategy(
        args.strategy, **_strategy_options(args.strategy, args, args.options, args.lr)
    )
    if args.resume and args.checkpoint_dir is None:
        raise UsageError("--resume needs --checkpoint-dir: the folder of the run to resume")
    tracking: Any = False
    uri = _tracking_option(args, "run")
    if uri is not None:
        tracking = MLflowCallback(
            tracking_uri=uri, experiment=args.experiment, run_name=args.run_name
        )
    callbacks: list[Any] = [args.phase]
    try:
        data = task.load_data()
    except RuntimeError as err:  # the dataset is not there (and may not be downloaded)
        raise UsageError(str(err)) from err
    try:
        history = run(
            task,
            strategy,
            tracking=tracking,
            callbacks=callbacks,
            data=data,
            checkpoint_dir=args.checkpoint_dir,
            resume=args.resume,
            progress=not args.quiet and interactive(),  # a live bar; nothing in a log
        )
    except ValueError as err:
        if args.phase.training:
            raise
        raise UsageError(_flagged(str(err))) from err
    if not args.phase.training and args.resume:
        print(
            f"the run in {args.checkpoint_dir} had already ended ({history.status}, "
            f"{history.epochs} epochs): nothing to resume",
            file=sys.stderr,
        )

    from trainers import format_score

    best = history.best
    final = history.final
    params = task.to_params()
    key = history.metric
    print(
        f"\n{history.strategy} on {params['dataset']}/{params['model']} ({task.optimizer}): "
        f"{history.epochs} epochs, status {history.status}, "
        f"{final.wall_time if final else 0:.1f}s"
    )
    if final is not None:
        print(
            f"  final   val {key} {format_score(final.val_score, key):>7}   test {key} "
            f"{format_score(history.test_score, key):>7}"
        )
    if best is not None:
        print(
            f"  best    val {key} {format_score(best.val_score, key):>7}   test {key} "
            f"{format_score(history.best_test_score, key):>7}   (epoch {best.epoch})"
        )
    if history.diverged_epoch is not None:
        print(f"  diverged at epoch {history.diverged_epoch}: {history.diverged_reason}")
    if isinstance(tracking, MLflowCallback):
        print(f"MLflow run {tracking.run_id} in experiment {args.experiment!r} at {uri}")
        print(f"  browse: mlflow ui --backend-store-uri {uri}   (then open http://127.0.0.1:5000)")
    return 0 if history.status == "finished" else 1


# =============================================================================================
# hpo compare
# =============================================================================================

DEFAULT_COMPARE = "constant,schedule,random-search,pbt"


def _add_compare(sub: Any, strategies: str) -> None:
    p = sub.add_parser(
        "compare",
        help="compare strategies on one task over several seeds; print the table",
        description="Run several strategies on one task and the same seeds under one budget; "
        "print a table (accuracy, steps to 85/90/95 % of the best accuracy, the compute "
        "spent), log a parent MLflow run with a child per run, and write plots.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--strategies", default=DEFAULT_COMPARE, help="comma-separated strategy names")
    p.add_argument("--seeds", type=int, default=3, help="seeds per strategy (0, 1, ...)")
    p.add_argument(
        "--baseline",
        default=None,
        help="the strategy speed-ups are measured against (default: the first)",
    )
    p.add_argument(
        "--set",
        dest="options",
        action="append",
        default=[],
        metavar="STRATEGY.KEY=VALUE",
        help="a strategy config option, e.g. --set pbt.population=4 (repeatable)",
    )
    p.add_argument(
        "--budget-steps",
        type=int,
        default=None,
        help="also stop every run once it has spent this many optimizer steps",
    )
    p.add_argument(
        "--output-dir",
        default=None,
        help="where the table and plots go (default: ./hpo-output/compare-TIME)",
    )
    _add_task_options(p, epochs=20)
    _add_tracking_options(
        p,
        run_name='the MLflow parent run\'s name (default: "compare", the strategies, the '
        "task and the time)",
    )
    _add_strategy_flags(p, strategies)
    p.set_defaults(handler=_cmd_compare)


def _cmd_compare(args: argparse.Namespace) -> int:
    import time

    from hpo._budget import Budget
    from hpo._compare import compare, format_table
    from strategies import STRATEGIES, make_strategy

    names = [n.strip() for n in args.strategies.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        raise UsageError(
            f"--strategies: unknown {unknown or 'empty list'}; "
            f"known: {', '.join(sorted(STRATEGIES))}"
        )
    if len(set(names)) != len(names):
        raise UsageError(f"--strategies names a strategy twice: {args.strategies!r}")
    per_strategy: dict[str, list[str]] = {n: [] for n in names}
    for pair in args.options:
        target, dot, rest = pair.partition(".")
        if not dot or target not in per_strategy:
            raise UsageError(
                f"--set takes STRATEGY.KEY=VALUE with a compared strategy, got {pair!r}"
            )
        per_strategy[target].append(rest)
    strategies = {
        n: make_strategy(n, **_strategy_options(n, args, per_strategy[n])) for n in names
    }
    task = _task_from(args)
    budget = Budget(epochs=task.epochs, steps=args.budget_steps)
    if args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, but got {args.seeds}")
    if args.baseline is not None and args.baseline not in names:
        raise UsageError(
            f"--baseline must be one of the compared strategies ({', '.join(names)}), "
            f"but got {args.baseline!r}"
        )
    out = args.output_dir or os.path.join("hpo-output", time.strftime("compare-%Y%m%d-%H%M%S"))
    _check_output_dir(out)
    uri = _tracking_option(args, "compare")
    tracking: Any = False if uri is None else uri
    params = task.to_params()
    print(
        f"Comparing {', '.join(names)} on {params['dataset']}/{params['model']} "
        f"({task.optimizer}), "
        f"{task.epochs} epochs x {args.seeds} seeds ...",
        file=sys.stderr,
        flush=True,
    )
    table = compare(
        task,
        strategies,
        seeds=args.seeds,
        budget=budget,
        baseline=args.baseline,
        tracking=tracking,
        experiment=args.experiment,
        output_dir=out,
        progress=_series_progress(),
        callbacks=[args.phase],
        run_name=args.run_name,
    )
    print()
    print(format_table(table))
    print(f"\ntable and plots: {', '.join(table.attrs['plots'])}")
    if table.attrs.get("mlflow_run_id"):
        print(
            f"MLflow parent run {table.attrs['mlflow_run_id']} in experiment "
            f"{args.experiment!r} at {tracking}"
        )
        print(f"  browse: mlflow ui --backend-store-uri {tracking}")
    return 0


# =============================================================================================
# hpo bench
# =============================================================================================


def _add_bench(sub: Any) -> None:
    from hpo._suite import DEFAULT_STRATEGIES, QUICK_EPOCHS, QUICK_SEEDS, SUITE, bench_strategies

    p = sub.add_parser(
        "bench",
        help="every strategy untuned on a suite of small tasks, judged at equal spent compute",
        description="Run every strategy at its defaults, beside the baselines a user would pay "
        "for (a constant lr and a one-cycle schedule tuned over a 5-point grid, TPE over 8 "
        "runs), on a fixed suite of small tasks and several seeds; print each task's table, "
        "the anytime performance (best validation accuracy within 1x, 2x, 4x, 8x one run's "
        "steps, normalised per task) and whether the online strategies earn their keep. Logs "
        "one MLflow parent run and writes the tables and plots.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--tasks",
        default=None,
        help=f"comma-separated tasks of the suite: {', '.join(SUITE)} (default: all)",
    )
    p.add_argument(
        "--strategies",
        default=None,
        help="comma-separated rows: "
        + ", ".join(bench_strategies())
        + ", or any registered strategy at its defaults (default: "
        + ",".join(DEFAULT_STRATEGIES)
        + ")",
    )
    p.add_argument("--seeds", type=int, default=None, help="seeds per task (default: 5)")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_EPOCHS} epochs and {QUICK_SEEDS} seeds per task (a few minutes on 2 cores)",
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs of one run (default: the suite's 20)"
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument(
        "--task",
        dest="task_path",
        default=None,
        metavar="MODULE:FUNCTION",
        help="bench your own task (a function returning an hpo.Task) instead of the suite's "
        "(add --tasks to run suite tasks beside it)",
    )
    p.add_argument(
        "--output-dir",
        default=None,
        help="where the tables and plots go (default: ./hpo-output/bench-TIME)",
    )
    _add_tracking_options(
        p, run_name='the MLflow parent run\'s name (default: "bench", the tasks and the time)'
    )
    p.set_defaults(handler=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    import time

    from hpo._bench import bench
    from hpo._suite import BenchTask

    tasks: list[Any] | None = (
        None if args.tasks is None else [t.strip() for t in args.tasks.split(",") if t.strip()]
    )
    if args.task_path is not None:
        tasks = [*(tasks or []), BenchTask(args.task_path, _user_task(args.task_path), "yours")]
    rows = (
        None
        if args.strategies is None
        else [n.strip() for n in args.strategies.split(",") if n.strip()]
    )
    if args.seeds is not None and args.seeds < 1:
        raise UsageError(f"--seeds must be >= 1, but got {args.seeds}")
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, but got {args.epochs}")
    out = args.output_dir or os.path.join("hpo-output", time.strftime("bench-%Y%m%d-%H%M%S"))
    _check_output_dir(out)
    uri = _tracking_option(args, "bench")
    tracking: Any = False if uri is None else uri
    try:
        result = bench(
            tasks,
            rows,
            seeds=args.seeds,
            quick=args.quick,
            epochs=args.epochs,
            device=args.device,
            tracking=tracking,
            experiment=args.experiment,
            output_dir=out,
            progress=_series_progress(),
            callbacks=[args.phase],
            run_name=args.run_name,
        )
    except ValueError as err:  # a bad --tasks or --strategies name, before any training
        if args.phase.training:
            raise
        raise UsageError(str(err)) from err
    print()
    print(result.format())
    print(f"\nbench took {result.seconds / 60:.1f} min; tables and plots in {out}")
    if result.mlflow_run_id:
        print(
            f"MLflow parent run {result.mlflow_run_id} in experiment {args.experiment!r} at "
            f"{tracking}"
        )
        print(f"  browse: mlflow ui --backend-store-uri {tracking}")
    return 0


# =============================================================================================
# hpo study
# =============================================================================================


def _add_study(sub: Any) -> None:
    from hpo._optuna import PRUNERS, SAMPLERS
    from hpo._recovery import DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MAX_RETRY
    from strategies import STRATEGIES

    p = sub.add_parser(
        "study",
        help="an Optuna study over a strategy's own hyperparameters",
        description="Run an Optuna study over a strategy's own hyperparameters (its declared "
        "search space). Start it several times on one --storage and the processes share the "
        "study.",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--strategy",
        default="constant",
        choices=sorted(STRATEGIES),
        help="the strategy whose hyperparameters are searched",
    )
    p.add_argument("--n-trials", type=int, default=10, help="trials run by this process")
    p.add_argument(
        "--storage",
        default=None,
        help="sqlite:///PATH, postgresql://..., or journal:PATH "
        "(default: in memory, this process only)",
    )
    p.add_argument(
        "--study-name", default=None, help="the study (default: hpo-STRATEGY); created or joined"
    )
    p.add_argument("--sampler", default="tpe", choices=tuple(SAMPLERS), help="Optuna sampler")
    p.add_argument("--pruner", default="median", choices=tuple(PRUNERS), help="Optuna pruner")
    p.add_argument(
        "--objective",
        default="val",
        choices=("val", "val_loss"),
        help="a trial's value: the task's metric on the validation split (val: val_acc for "
        "accuracy, val_mse for MSE..., in the metric's direction) or the validation loss",
    )
    p.add_argument(
        "--sampler-seed",
        type=int,
        default=None,
        help="seed of the sampler (default: random, so processes differ)",
    )
    g = p.add_argument_group(
        "recovery",
        "with --storage, a worker that dies mid-trial (kill -9, OOM, preemption) is noticed "
        "by its missing heartbeat; the next worker to start a trial fails its trial, retries "
        "it and closes its MLflow run as KILLED",
    )
    g.add_argument(
        "--heartbeat-interval",
        type=int,
        default=DEFAULT_HEARTBEAT_INTERVAL,
        metavar="SECONDS",
        help="seconds between a running trial's heartbeats (a write each); 0 turns recovery off",
    )
    g.add_argument(
        "--grace-period",
        type=int,
        default=None,
        metavar="SECONDS",
        help="silence after which a running trial counts as dead; it must outlast any pause of "
        "a live worker (default: Optuna's, twice the heartbeat interval)",
    )
    g.add_argument(
        "--max-retry",
        type=int,
        default=DEFAULT_MAX_RETRY,
        metavar="N",
        help="times a dead worker's trial is retried; a trial that kills N+1 workers stays "
        "failed (0: fail it, never retry)",
    )
    _add_task_options(p, epochs=20)
    _add_tracking_options(p, run_name="the MLflow parent run's name (default: the study's name)")
    p.set_defaults(handler=_cmd_study)


def _cmd_study(args: argparse.Namespace) -> int:
    import warnings

    import optuna

    from hpo._optuna import (
        PARENT_ATTR,
        objective,
        pruner_by_name,
        quiet_optuna,
        sampler_by_name,
    )
    from hpo._progress import StudyProgress, interactive
    from hpo._recovery import storage
    from strategies import STRATEGIES

    if args.n_trials < 1:
        raise UsageError(f"--n-trials must be >= 1, but got {args.n_trials}")
    if args.heartbeat_interval < 0:
        raise UsageError(f"--heartbeat-interval must be >= 0, but got {args.heartbeat_interval}")
    if args.grace_period is not None and args.heartbeat_interval == 0:
        raise UsageError("--grace-period needs a heartbeat, but --heartbeat-interval is 0")
    if args.grace_period is not None and args.grace_period <= args.heartbeat_interval:
        raise UsageError(
            f"--grace-period must be longer than --heartbeat-interval "
            f"({args.heartbeat_interval}), but got {args.grace_period}"
        )
    if args.max_retry < 0:
        raise UsageError(f"--max-retry must be >= 0, but got {args.max_retry}")
    if args.sampler_seed is not None and not 0 <= args.sampler_seed <= MAX_SEED:
        raise UsageError(f"--sampler-seed must be in [0, {MAX_SEED}], but got {args.sampler_seed}")
    if args.study_name is not None and not args.study_name.strip():
        raise UsageError(f"--study-name must not be empty, but got {args.study_name!r}")
    task = _task_from(args)
    cls = STRATEGIES[args.strategy]
    name = args.study_name or f"hpo-{args.strategy}"
    _check_storage(args.storage)
    uri = _tracking_option(args, "study")
    tracking: Any = False if uri is None else uri
    obj = objective(
        task,
        cls.suggest,
        None if args.objective == "val" else args.objective,
        tracking=tracking,
        experiment=args.experiment,
        run_name=args.run_name,
    )
    metric = obj.metric  # val_acc, val_mse... (resolves the task's metric)

    def line(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
        params = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        extra = " (diverged)" if trial.user_attrs.get("diverged") else ""
        return (
            f"trial {trial.number:>3} {trial.state.name.lower():<8} {metric}={value}"
            f"{extra}  {params}"
        )

    report: Any
    if interactive():  # a bar: trials done of --n-trials, the best value so far
        report = StudyProgress(args.n_trials, metric, line=line)
    else:  # a line per trial
        report = lambda study, trial: print(line(study, trial), file=sys.stderr, flush=True)  # noqa: E731

    with quiet_optuna():  # Optuna's INFO lines would drown the trial lines
        study = optuna.create_study(
            study_name=name,
            storage=storage(
                args.storage,
                heartbeat_interval=args.heartbeat_interval,
                grace_period=args.grace_period,
                max_retry=args.max_retry,
            ),
            sampler=sampler_by_name(args.sampler, args.sampler_seed),
            pruner=pruner_by_name(args.pruner),
            direction="maximize" if obj.maximize else "minimize",
            load_if_exists=True,
        )
        if task.serializable:  # workers elsewhere can rebuild the task from these params
            study.set_user_attr("task", task.to_params())
        args.phase.training = True  # from here on, errors are the runs' own
        try:
            with obj:
                study.optimize(obj, n_trials=args.n_trials, callbacks=[report])
        finally:
            if isinstance(report, StudyProgress):
                report.close()
        with warnings.catch_warnings():  # Optuna calls it experimental; it runs it each trial
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # a worker that died meanwhile: its trial is failed, retried by the next worker
            # and its MLflow run closed now, not when the next worker comes
            optuna.storages.fail_stale_trials(study)
    trials = study.trials
    states = [t.state.name for t in trials]
    retried = sum("retry_history" in t.system_attrs for t in trials)
    left = "".join(
        f", {states.count(state)} {state.lower()}"
        for state in ("RUNNING", "WAITING")
        if state in states
    )
    print(
        f"\nstudy {name!r}: {len(states)} trials in the storage "
        f"({states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned, "
        f"{states.count('FAIL')} failed (retried {retried}){left})"
    )
    try:
        best = study.best_trial
    except ValueError:
        print("no completed trial yet")
        return 1
    print(
        f"best trial {best.number}: {metric}={best.value:.4f}  "
        + ", ".join(f"{k}={_short(v)}" for k, v in best.params.items())
    )
    if "mlflow_run_id" in best.user_attrs:
        print(
            f"MLflow run of the best trial: {best.user_attrs['mlflow_run_id']} "
            f"(parent {study.user_attrs.get(PARENT_ATTR)}) at {tracking}"
        )
    return 0


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
