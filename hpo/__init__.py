"""Online hyperparameter optimization of deep-learning training.

The public API: the contracts (``Strategy``, ``Task``, ``Budget``, ``History``, ``Callback``,
``Recorder``), ``run`` (one strategy, one MLflow run), ``compare`` (strategies x seeds, one
table), ``bench`` (every strategy untuned on a suite of tasks, judged by anytime performance at
equal spent compute), ``objective`` (the Optuna glue), ``DivergenceRule`` and the MLflow and
progress callbacks.
Strategies live in the ``strategies`` package, the trainer in ``trainers``.

Example:
    >>> import hpo
    >>> from strategies import Schedule
    >>> history = hpo.run(hpo.testing.boring_task(), Schedule(kind="cosine", lr=0.02),
    ...                   tracking=False)
    >>> history.status, history.epochs
    ('finished', 3)
"""

from __future__ import annotations

from hpo import exceptions, testing
from hpo._base import BaseStrategy
from hpo._bench import BenchResult, bench
from hpo._budget import Budget
from hpo._callbacks import Callback
from hpo._checkpoint import Checkpoint
from hpo._compare import compare, format_table, plot_comparison, steps_to_target, summarize
from hpo._divergence import DivergenceMonitor, DivergenceRule
from hpo._experimental import experimental
from hpo._history import Decision, EpochRecord, History
from hpo._optuna import Objective, objective
from hpo._plots import plot_history
from hpo._progress import ProgressPrinter, RunProgress
from hpo._recorder import Recorder
from hpo._recovery import StaleTrialCallback, storage
from hpo._run import run
from hpo._strategy import Strategy
from hpo._suite import SUITE, BenchTask
from hpo._task import Task
from hpo._tracking import MLflowCallback

__version__ = "0.1.0"

__all__ = [
    "BaseStrategy",
    "BenchResult",
    "BenchTask",
    "Budget",
    "Callback",
    "Checkpoint",
    "Decision",
    "DivergenceMonitor",
    "DivergenceRule",
    "EpochRecord",
    "History",
    "MLflowCallback",
    "Objective",
    "ProgressPrinter",
    "RunProgress",
    "Recorder",
    "SUITE",
    "StaleTrialCallback",
    "Strategy",
    "Task",
    "bench",
    "compare",
    "exceptions",
    "experimental",
    "format_table",
    "objective",
    "plot_comparison",
    "plot_history",
    "run",
    "steps_to_target",
    "storage",
    "summarize",
    "testing",
]
