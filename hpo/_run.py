"""``hpo.run``: one strategy on one task, tracked in MLflow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hpo._budget import Budget
from hpo._callbacks import Callback
from hpo._history import History
from hpo._task import Task

if TYPE_CHECKING:
    from hpo._strategy import Strategy
    from hpo._tracking import MLflowCallback
    from trainers import DataSplits, Trainer


def run(
    task: Task,
    strategy: Strategy,
    *,
    budget: Budget | None = None,
    tracking: bool | str | MLflowCallback = True,
    callbacks: Sequence[Callback] = (),
    data: DataSplits | None = None,
) -> History:
    """Run ``strategy`` on a fresh trainer for ``task`` and log it as one MLflow run.

    The MLflow run gets the task's and the strategy's params, per-epoch metrics (``lr``,
    ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc`` — scores named by the task's
    metric, ``val_mse`` for MSE — and the strategy's own signals, ``step=epoch``), the final
    ``test_acc`` / ``test_loss``, the History as JSON and a PNG plot.
    A run that raises or diverges still ends as a finished MLflow run, with status ``FAILED``
    and every metric logged up to that point.

    Args:
        task: The training problem.
        strategy: The lr policy (an ``hpo.Strategy``).
        budget: Limits of the run; default ``task.budget()`` (``task.epochs`` epochs).
        tracking: ``True``: log to MLflow at ``MLFLOW_TRACKING_URI`` (or MLflow's default, a
            SQLite file ``mlflow.db`` in the working directory); a URI string: log there;
            an ``MLflowCallback``: log as it is configured; ``False``: no MLflow.
        callbacks: More observers (progress printing, Optuna reporting...).
        data: Pre-loaded splits to share between runs (default: ``task.load_data()``).

    Returns:
        The History; ``history.status`` is ``finished`` or ``diverged``.

    Raises:
        Whatever the strategy raised (after the MLflow run was closed as ``FAILED``).

    Example:
        >>> import hpo
        >>> from strategies import Constant
        >>> h = hpo.run(hpo.testing.boring_task(), Constant(lr=0.05), tracking=False)
        >>> h.status, h.epochs
        ('finished', 3)
    """
    from hpo._strategy import Strategy
    from hpo._tracking import MLflowCallback

    if not isinstance(task, Task):
        raise TypeError(f"`task` must be an hpo.Task, but got {type(task).__name__}.")
    if not isinstance(strategy, Strategy):
        raise TypeError(
            f"`strategy` must implement hpo.Strategy (a `name`, a `config` and a `run` method), "
            f"but got {type(strategy).__name__}."
        )
    trainer = task.build_trainer(data)
    cbs: list[Callback] = [_TaskParams(task)]
    if tracking is True or isinstance(tracking, str):
        cbs.append(MLflowCallback(tracking_uri=tracking if isinstance(tracking, str) else None))
    elif isinstance(tracking, MLflowCallback):
        cbs.append(tracking)
    elif tracking is not False:
        raise TypeError(
            "`tracking` must be True, False, a tracking URI or an hpo.MLflowCallback, "
            f"but got tracking={tracking!r}."
        )
    cbs.extend(callbacks)
    return strategy.run(trainer, budget or task.budget(), callbacks=cbs)


class _TaskParams(Callback):
    """Puts the task's params into the history before anyone else sees it."""

    def __init__(self, task: Task) -> None:
        self.params: dict[str, Any] = task.to_params()

    def on_run_start(self, history: History, trainer: Trainer) -> None:
        history.task = dict(self.params)
