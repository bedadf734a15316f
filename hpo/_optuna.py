"""The Optuna glue: ``hpo.objective`` turns a task and a strategy factory into an objective.

Each trial is one strategy run: its metric is reported every epoch (so every Optuna pruner
works), a diverged run ends as a pruned trial marked ``diverged``, and every trial is an MLflow
run nested under the study's parent run.
"""

from __future__ import annotations

import contextlib
import math
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from hpo._budget import Budget
from hpo._callbacks import Callback
from hpo._recovery import RETRY_OF_RUN_ATTR
from hpo._task import Task, resolved_params
from hpo._tracking import sqlite_init_lock
from hpo._validation import check_choice, check_type

if TYPE_CHECKING:
    import optuna

    from hpo._history import Decision, EpochRecord, History
    from hpo._strategy import Strategy
    from hpo._tracking import MLflowCallback
    from trainers import DataSplits, StreamingSplits, Trainer

#: Losses of an epoch record: smaller is better.
LOSS_COLUMNS = ("val_loss", "train_loss")
#: The study's user attr that holds its MLflow parent run's id.
PARENT_ATTR = "mlflow_parent_run_id"
#: The study's user attr that holds the tracking URI of that run (absolute for a local store):
#: whoever finds a dead worker's trial closes its MLflow run there (``hpo.StaleTrialCallback``).
TRACKING_URI_ATTR = "mlflow_tracking_uri"
#: ``sampler_by_name``'s samplers: name -> the ``optuna.samplers`` class (built with the seed).
SAMPLERS: Mapping[str, str] = {
    "tpe": "TPESampler",
    "gp": "GPSampler",
    "cmaes": "CmaEsSampler",
    "random": "RandomSampler",
    "qmc": "QMCSampler",
}
#: ``pruner_by_name``'s pruners: name -> (the ``optuna.pruners`` class, its arguments).
PRUNERS: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "none": ("NopPruner", {}),
    "median": ("MedianPruner", {"n_startup_trials": 3, "n_warmup_steps": 2}),
    "hyperband": ("HyperbandPruner", {"min_resource": 1}),
    "sha": ("SuccessiveHalvingPruner", {"min_resource": 1}),
    "percentile": ("PercentilePruner", {"percentile": 25.0, "n_startup_trials": 3}),
}


class Objective:
    """An Optuna objective that runs a strategy per trial; made by ``hpo.objective``.

    Use it as ``study.optimize(objective, n_trials=...)``. ``close()`` (or leaving a ``with``
    block) marks the study's MLflow parent run as finished.
    """

    def __init__(
        self,
        task: Task,
        strategy_factory: Callable[[optuna.Trial], Strategy],
        metric: str | None = None,
        *,
        summary: str = "best",
        budget: Budget | None = None,
        tracking: bool | str = True,
        experiment: str = "hpo",
        data: DataSplits | StreamingSplits | None = None,
        report: str | None = None,
        run_name: str | None = None,
    ) -> None:
        if not isinstance(task, Task):
            raise TypeError(f"`task` must be an hpo.Task, but got {type(task).__name__}.")
        if not callable(strategy_factory):
            raise TypeError(
                "`strategy_factory` must be a callable that takes an optuna.Trial and returns a "
                f"strategy, but got {strategy_factory!r}."
            )
        if metric is not None:
            check_type("objective", "metric", metric, str)
        if report is not None:
            check_type("objective", "report", report, str)
        check_choice("objective", "summary", summary, ("best", "final"))
        if not (tracking is True or tracking is False or isinstance(tracking, str)):
            raise TypeError(f"`tracking` must be True, False or a URI, but got {tracking!r}.")
        self.task = task
        self.strategy_factory = strategy_factory
        self._metric = metric
        self.summary = summary
        self.budget = budget
        self.tracking = tracking
        self.experiment = experiment
        self._report = report
        self.run_name = run_name
        self._data = data
        self._lock = threading.Lock()
        self._parents: dict[str, str] = {}
        self._task_metric: Any = None
        for name in (metric, report):
            if name is not None:
                self._check_metric_name(name)

    def _check_metric_name(self, name: str) -> None:
        """A score column (``val_<key>``, ``train_<key>``) must be of the task's metric; any
        other name may be a strategy's own metric (checked at the first epoch).

        Raises:
            ValueError: ``val_f1`` on a task whose metric is accuracy, and the like.
        """
        split, _, key = name.partition("_")
        if split not in ("val", "train") or not key or "_" in key or key == "loss":
            return
        task_key = self._resolve().key
        if key != task_key:
            raise ValueError(
                f"objective: `metric`={name!r} is not recorded: the task's metric is "
                f"{task_key!r}, so a trial can be valued by val_{task_key}, train_{task_key}, "
                "val_loss, train_loss or a strategy's own metric."
            )

    @property
    def metric(self) -> str:
        """The value of a trial: ``val_<key>`` of the task's metric (``val_acc`` by default,
        ``val_mse`` for an MSE task...) unless another was given."""
        return self._metric if self._metric is not None else f"val_{self._resolve().key}"

    @property
    def report(self) -> str:
        """What is reported each epoch for pruning (``metric`` unless another was given)."""
        return self.metric if self._report is None else self._report

    @property
    def maximize(self) -> bool | None:
        """Whether the metric is maximised: the task's metric's direction for its scores, False
        for the losses, ``None`` for a strategy-specific metric."""
        name = self.metric
        if name in LOSS_COLUMNS:
            return False
        task_metric = self._resolve()
        if name in (f"val_{task_metric.key}", f"train_{task_metric.key}"):
            return bool(task_metric.maximize)
        return None

    def _resolve(self) -> Any:
        """The task's ``trainers.Metric`` (the data are loaded when only they can tell)."""
        if self._task_metric is None:
            if self.task.metric is None and self.task.data is not None:
                self._task_metric = self.task.resolve_metric(self._shared_data())
            else:  # named or given, or a built-in dataset (class labels)
                from trainers import get_metric

                metric = self.task.metric or "accuracy"
                if isinstance(metric, str) and ":" in metric:
                    self._task_metric = self.task.resolve_metric(self._shared_data())
                else:
                    self._task_metric = get_metric(metric, direction=self.task.direction)
        return self._task_metric

    # ---------------------------------------------------------------- one trial

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        from hpo._run import run
        from hpo._tracking import MLflowCallback

        self._check_direction(trial)
        _name_the_value(trial.study, self.metric)
        strategy = self.strategy_factory(trial)
        callbacks: list[Callback] = []
        mlflow_cb: MLflowCallback | None = None
        if self.tracking is not False:
            uri = self.tracking if isinstance(self.tracking, str) else None
            parent = self._parent_run(trial.study, uri)
            mlflow_cb = MLflowCallback(
                tracking_uri=uri,
                experiment=self.experiment,
                run_name=f"trial {trial.number}",
                parent_run_id=parent,
                params={f"trial.{k}": v for k, v in trial.params.items()},
                tags={
                    "optuna.study": trial.study.study_name,
                    "optuna.trial": trial.number,
                    **_retry_tags(trial),
                },
            )
            callbacks.append(mlflow_cb)
        callbacks.append(_Reporter(trial, self.report, mlflow_cb, self.metric, self.maximize))
        history = run(
            self.task,
            strategy,
            budget=self.budget,
            tracking=False,
            callbacks=callbacks,
            data=self._shared_data(),
            progress=False,  # a study shows trials, not each trial's epochs
        )
        if history.status == "diverged":
            trial.set_user_attr("diverged", True)
            trial.set_user_attr("diverged_epoch", history.diverged_epoch)
            trial.set_user_attr("diverged_reason", history.diverged_reason)
            raise optuna.TrialPruned(
                f"diverged at epoch {history.diverged_epoch}: {history.diverged_reason}"
            )
        return self._summarise(history)

    def _summarise(self, history: History) -> float:
        _check_recorded(history, self.metric)
        values = [v for v in history.column(self.metric) if math.isfinite(v)]
        if not values:
            return math.nan
        if self.summary == "final":
            return float(history.column(self.metric)[-1])
        return float(min(values) if self.maximize is False else max(values))

    def _check_direction(self, trial: optuna.Trial) -> None:
        import optuna

        if self.maximize is None:
            return
        maximizing = trial.study.direction == optuna.study.StudyDirection.MAXIMIZE
        if maximizing != self.maximize:
            want = "maximize" if self.maximize else "minimize"
            raise ValueError(
                f"The metric {self.metric!r} should be {want}d, but the study "
                f"{trial.study.study_name!r} is set to {trial.study.direction.name.lower()}; "
                f"create it with direction={want!r}."
            )

    def _shared_data(self) -> DataSplits | StreamingSplits:
        with self._lock:
            if self._data is None:
                self._data = self.task.load_data()
            return self._data

    # ---------------------------------------------------------------- MLflow parent run

    def _parent_run(self, study: optuna.Study, uri: str | None) -> str:
        """The study's parent MLflow run: read from the study's user attrs (so every process
        sharing the storage nests under one run), created and stored there by whoever comes
        first. On a local (SQLite) MLflow store the check-and-create is serialised across
        processes by a lock file; with a remote tracking server two processes starting at the
        same moment may each create one (their trials then split between the two)."""
        from hpo._tracking import log_params, mlflow_client, resolve_tracking_uri, start_run

        uri = resolve_tracking_uri(uri)
        client = mlflow_client(uri)  # before the lock: creating a client takes it too
        with self._lock, sqlite_init_lock(uri):
            attrs = study.user_attrs
            existing = attrs.get(PARENT_ATTR)
            if existing:
                if study.study_name not in self._parents and TRACKING_URI_ATTR not in attrs:
                    study.set_user_attr(TRACKING_URI_ATTR, _portable_uri(uri))  # older study
                self._parents[study.study_name] = existing
                return str(existing)
            run_id = start_run(
                client,
                self.experiment,
                self.run_name or study.study_name,
                {"hpo.role": "study", "optuna.study": study.study_name},
            )
            params: dict[str, Any] = {
                "study_name": study.study_name,
                "direction": study.direction.name.lower(),
                "sampler": type(study.sampler).__name__,
                "pruner": type(study.pruner).__name__,
                "value_metric": self.metric,
                "summary": self.summary,
                **resolved_params(self.task),
            }
            log_params(client, run_id, params)
            study.set_user_attr(TRACKING_URI_ATTR, _portable_uri(uri))
            study.set_user_attr(PARENT_ATTR, run_id)
            self._parents[study.study_name] = run_id
            return run_id

    def close(self, status: str = "FINISHED") -> None:
        """Mark the parent MLflow runs this objective used as ended (``FINISHED`` by default)."""
        if not self._parents:
            return
        from hpo._tracking import mlflow_client

        client = mlflow_client(self.tracking if isinstance(self.tracking, str) else None)
        for run_id in self._parents.values():
            client.set_terminated(run_id, status)

    def __enter__(self) -> Objective:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close("FINISHED" if exc is None else "FAILED")


def objective(
    task: Task,
    strategy_factory: Callable[[optuna.Trial], Strategy],
    metric: str | None = None,
    *,
    summary: str = "best",
    budget: Budget | None = None,
    tracking: bool | str = True,
    experiment: str = "hpo",
    data: DataSplits | StreamingSplits | None = None,
    report: str | None = None,
    run_name: str | None = None,
) -> Objective:
    """An Optuna objective: each trial runs the strategy ``strategy_factory(trial)`` builds.

    The metric is reported every epoch (``trial.report(value, epoch)``) and
    ``trial.should_prune()`` is honoured, so every Optuna pruner works (Median, Hyperband,
    SuccessiveHalving, Threshold, ...). A diverged run (``hpo.DivergenceRule``: a non-finite or
    exploding loss, or a score back at chance after it had learned) ends as a *pruned* trial
    with ``trial.user_attrs["diverged"] = True``, ``["diverged_epoch"]`` and
    ``["diverged_reason"]``: it never raises out of ``study.optimize`` and never becomes the
    best trial. Every trial is an MLflow
    run (name ``trial N``, the trial's params as ``trial.*``, per-epoch metrics) nested under the
    study's parent run (name = the study's name); the trial stores its run id in
    ``trial.user_attrs["mlflow_run_id"]``. Works with any storage, so several processes can
    share one study; on ``hpo.storage(url)`` a trial whose worker died is failed, retried and
    its MLflow run closed as ``KILLED`` (the retry's run is tagged ``hpo.retry_of_trial`` and
    ``hpo.retry_of_mlflow_run_id``).

    Args:
        task: The training problem (the same seed for every trial).
        strategy_factory: ``trial -> strategy``; draws the strategy's hyperparameters with
            ``trial.suggest_*``. A registered strategy's ``suggest`` classmethod is one.
        metric: The trial's value: ``None`` (default) for the task's metric on the validation
            split (``val_acc`` for accuracy, ``val_mse`` for MSE...), or ``val_loss``,
            ``train_<key>``, ``train_loss`` or a strategy's own metric. The study's direction
            must match the metric's (checked).
        summary: The trial's value: the ``best`` epoch's metric (default) or the ``final`` one.
        budget: Limits of each run (default: the task's epochs).
        tracking: ``True`` (MLflow at ``MLFLOW_TRACKING_URI``), a URI, or ``False``.
        experiment: The MLflow experiment.
        data: Pre-loaded splits (loaded once on the first trial otherwise).
        report: The metric reported each epoch for pruning, when it is not ``metric`` (NOS
            prunes on training accuracy and returns the best validation accuracy). The best
            ``metric`` so far is kept in ``trial.user_attrs["value_so_far"]``, so a pruned
            trial's score is known. A strategy's decisions that carry ``report=value`` are
            reported too, before the epochs (NOS's lr sweep).
        run_name: The MLflow parent run's name (default: the study's name).

    Returns:
        An ``Objective``; ``with hpo.objective(...) as obj:`` closes the parent run at the end.

    Example:
        >>> import optuna, hpo
        >>> from strategies import Constant
        >>> study = optuna.create_study(direction="maximize",
        ...                             sampler=optuna.samplers.RandomSampler(seed=0))
        >>> obj = hpo.objective(hpo.testing.boring_task(epochs=2), Constant.suggest,
        ...                     tracking=False)
        >>> study.optimize(obj, n_trials=2)
        >>> len(study.trials)
        2
    """
    return Objective(
        task,
        strategy_factory,
        metric,
        summary=summary,
        budget=budget,
        tracking=tracking,
        experiment=experiment,
        data=data,
        report=report,
        run_name=run_name,
    )


class _Reporter(Callback):
    """Reports to the trial and prunes when the pruner says so.

    Decisions that carry ``report=value`` are reported at steps 0, 1, ... as they come; epochs
    at ``step = epoch + (the number of such decisions)``. Without decision reports an epoch's
    step is its number, as users expect.
    """

    def __init__(
        self,
        trial: optuna.Trial,
        metric: str,
        mlflow_cb: MLflowCallback | None,
        value_metric: str,
        maximize: bool | None,
    ):
        self.trial = trial
        self.metric = metric
        self.mlflow_cb = mlflow_cb
        self.value_metric = value_metric
        self.maximize = maximize is not False
        self.offset = 0
        self.best: float | None = None

    def on_run_start(self, history: History, trainer: Trainer) -> None:
        if self.mlflow_cb is not None and self.mlflow_cb.run_id is not None:
            self.trial.set_user_attr("mlflow_run_id", self.mlflow_cb.run_id)

    def on_decision(self, history: History, decision: Decision) -> None:
        value = decision.details.get("report")
        if value is None:
            return
        step, self.offset = self.offset, self.offset + 1
        if isinstance(value, (int, float)) and math.isfinite(value):
            self.trial.report(float(value), step)
        self._maybe_prune(step, value)

    def on_epoch_end(self, history: History, record: EpochRecord) -> None:
        best = _metric(history, record, self.value_metric)
        if math.isfinite(best) and (
            self.best is None or (best > self.best if self.maximize else best < self.best)
        ):
            self.best = best
            self.trial.set_user_attr("value_so_far", best)
        value = _metric(history, record, self.metric)
        if not math.isfinite(value):
            return  # a diverged epoch: the run ends and the objective marks the trial
        step = self.offset + record.epoch
        self.trial.report(float(value), step)
        self._maybe_prune(step, value)

    def _maybe_prune(self, step: int, value: float) -> None:
        import optuna

        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} ({self.metric}={value:.4g})")


def _retry_tags(trial: optuna.Trial) -> dict[str, str]:
    """MLflow tags of a trial that retries one whose worker died (Optuna's system attrs
    ``failed_trial`` / ``retry_history``, ``hpo.StaleTrialCallback``'s user attrs)."""
    system_attrs = trial.storage.get_trial_system_attrs(trial._trial_id)
    history = system_attrs.get("retry_history")
    if not history:
        return {}
    tags = {
        "hpo.retry_of_trial": str(history[-1]),
        "hpo.retry_history": ",".join(str(n) for n in history),
    }
    run_id = trial.user_attrs.get(RETRY_OF_RUN_ATTR)
    if run_id:
        tags["hpo.retry_of_mlflow_run_id"] = str(run_id)
    return tags


def _portable_uri(uri: str) -> str:
    """``uri`` with a relative ``sqlite:///`` path made absolute, so that a worker started
    elsewhere reaches the same store."""
    import os

    path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else None
    if path and path != ":memory:" and not os.path.isabs(path):
        return f"sqlite:///{os.path.abspath(path)}"
    return uri


def _metric(history: History, record: EpochRecord, name: str) -> float:
    """``name`` of ``record`` (a field, or a strategy's metric).

    Raises:
        ValueError: The run records no such metric.
    """
    value = getattr(record, history._field(name), None)
    if value is None:
        value = record.metrics.get(name, math.nan)  # a strategy may record it some epochs
    return float(value)


def _name_the_value(study: optuna.Study, metric: str) -> None:
    """Name the study's value ``metric`` (``study.set_metric_names``), so that Optuna's plots
    and ``optuna-dashboard`` say ``val_acc`` rather than "Objective 0"; a name set already (by
    the user, or another worker) is kept."""
    import optuna

    if study.metric_names is not None or len(study.directions) != 1:
        return
    with warnings.catch_warnings():  # Optuna marks it experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([metric])


def _check_recorded(history: History, name: str) -> None:
    """Raise when no epoch of the run recorded ``name``.

    Raises:
        ValueError: The run records no such metric (the message lists those it records).
    """
    if not history.records or hasattr(history.records[0], history._field(name)):
        return
    if any(name in r.metrics for r in history.records):
        return
    recorded = sorted({k for r in history.records for k in r.metrics})
    fields = [f"train_{history.metric}", f"val_{history.metric}", "train_loss", "val_loss"]
    raise ValueError(
        f"objective: `metric`={name!r} is not recorded by {history.strategy!r}: it records "
        f"{', '.join([*fields, *recorded])}."
    )


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's INFO logging (study creation, trial results) inside the block."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def make_storage(url: str | None) -> Any:
    """An Optuna storage from a URL: ``None`` (in memory), ``sqlite:///...``,
    ``postgresql://...`` (RDBStorage), or ``journal:PATH`` (JournalStorage on a file), without
    a heartbeat (``hpo.storage`` is the same with crashed workers recovered).

    Raises:
        ValueError: The URL's scheme is none of these.
    """
    from hpo._recovery import storage

    return storage(url, heartbeat_interval=None)


def sampler_by_name(name: str, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """``tpe``, ``gp``, ``cmaes``, ``random`` or ``qmc`` (see ``SAMPLERS``)."""
    import optuna

    check_choice("sampler_by_name", "name", name, tuple(SAMPLERS))
    sampler: optuna.samplers.BaseSampler = getattr(optuna.samplers, SAMPLERS[name])(seed=seed)
    return sampler


def pruner_by_name(name: str) -> optuna.pruners.BasePruner:
    """``none``, ``median``, ``hyperband``, ``sha`` (successive halving) or ``percentile``
    (see ``PRUNERS``)."""
    import optuna

    check_choice("pruner_by_name", "name", name, tuple(PRUNERS))
    cls, kwargs = PRUNERS[name]
    pruner: optuna.pruners.BasePruner = getattr(optuna.pruners, cls)(**kwargs)
    return pruner
