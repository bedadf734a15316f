"""``hpo.run``: one strategy on one task, tracked in MLflow."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Any

from hpo._budget import Budget
from hpo._callbacks import Callback
from hpo._checkpoint import ENDED, Checkpoint
from hpo._history import History
from hpo._progress import RunProgress, wants_bars
from hpo._task import Task, resolved_params

if TYPE_CHECKING:
    from hpo._strategy import Strategy
    from hpo._tracking import MLflowCallback
    from trainers import DataSplits, StreamingSplits, Trainer


def run(
    task: Task,
    strategy: Strategy,
    *,
    budget: Budget | None = None,
    tracking: bool | str | MLflowCallback = True,
    callbacks: Sequence[Callback] = (),
    data: DataSplits | StreamingSplits | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool | None = None,
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
        checkpoint_dir: Save the run's whole state into this folder at every epoch boundary
            (``hpo.Checkpoint``: the trainer, the History, the strategy's own state, the MLflow
            run's id), so that it can be resumed after a crash or ``kill -9``.
        resume: Continue the run saved in ``checkpoint_dir``: it ends with the same weights
            and History (wall times aside) as a run that never stopped, logged into the same
            MLflow run. Without a checkpoint there the run starts afresh; when the saved run
            had already ended, its History is returned and nothing is trained.
        progress: A live bar on ``sys.stderr`` (epoch, validation score, lr, ETA): ``None``
            (default) when someone watches (a terminal or a notebook; never in a log), ``True``
            always, ``False`` never.

    Returns:
        The History; ``history.status`` is ``finished`` or ``diverged``.

    Raises:
        TypeError: An argument of the wrong type.
        ValueError: ``checkpoint_dir`` holds another run's checkpoint, or one and
            ``resume`` is False; the strategy cannot save its state.
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
    if budget is not None and not isinstance(budget, Budget):
        raise TypeError(
            f"`budget` must be an hpo.Budget (e.g. hpo.Budget(epochs={budget!r}) for a number "
            f"of epochs), but got budget={budget!r} of type {type(budget).__name__}."
        )
    budget = budget or task.budget()
    checkpoint = None
    if checkpoint_dir is not None:
        checkpoint = _checkpoint(task, strategy, budget, checkpoint_dir, resume)
        if checkpoint.resume and (meta := checkpoint.meta()) is not None:
            if meta.get("status") in ENDED and checkpoint.history_path.exists():
                return History.from_json(checkpoint.history_path.read_text())
    elif resume:
        raise ValueError("`resume=True` needs `checkpoint_dir`: the folder of the run to resume.")
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
    if wants_bars(progress):
        cbs.append(RunProgress(total_epochs=budget.epochs))
    if checkpoint is not None:
        cbs.append(checkpoint)
    return strategy.run(trainer, budget, callbacks=cbs)


def run_identity(task: Task, strategy: Strategy, budget: Budget) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed: the strategy (and its config), the task's
    params and the budget."""
    config = getattr(strategy, "config", None)
    return {
        "strategy": getattr(strategy, "name", type(strategy).__name__),
        "config": repr(strategy) if not is_dataclass(config) else asdict(config),  # type: ignore[arg-type]
        "inner": repr(getattr(strategy, "inner", None)),
        "task": task.to_params(),
        "budget": asdict(budget),
    }


def _checkpoint(
    task: Task,
    strategy: Strategy,
    budget: Budget,
    directory: str | os.PathLike[str],
    resume: bool,
) -> Checkpoint:
    """The run's ``Checkpoint``, after checking that ``directory`` may be used."""
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(
            f"`checkpoint_dir` must be a path, but got checkpoint_dir={directory!r} "
            f"of type {type(directory).__name__}."
        )
    if not getattr(strategy, "checkpointing", False):
        raise ValueError(
            f"`checkpoint_dir`: the strategy {getattr(strategy, 'name', strategy)!r} does not "
            "save its state at epoch boundaries (a strategy sets `checkpointing = True` when "
            "it calls `rec.checkpoint(...)`); run it without a checkpoint directory."
        )
    path = os.fspath(directory)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"`checkpoint_dir` {path!r} is a file, not a folder.")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(
            f"`checkpoint_dir` {path!r}: its parent folder {parent!r} does not exist."
        )
    if not os.access(path if os.path.isdir(path) else parent, os.W_OK):
        raise ValueError(f"`checkpoint_dir` {path!r} is not writable.")
    checkpoint = Checkpoint(path, resume=resume, identity=run_identity(task, strategy, budget))
    meta = checkpoint.meta()
    if meta is not None and not resume:
        raise ValueError(
            f"`checkpoint_dir` {path!r} already holds the checkpoint of a run (epoch "
            f"{meta.get('epoch')}, {meta.get('status')}): resume it (resume=True, "
            "--resume), or use another folder."
        )
    if resume:
        checkpoint.check_identity()
    return checkpoint


class _TaskParams(Callback):
    """Puts the task's params into the history before anyone else sees it."""

    def __init__(self, task: Task) -> None:
        self.params: dict[str, Any] = resolved_params(task)  # as it runs: device not "auto"

    def on_run_start(self, history: History, trainer: Trainer) -> None:
        history.task = dict(self.params)
