"""``MLflowCallback``: one MLflow run per strategy run.

It talks to MLflow through an explicit ``MlflowClient`` (never the fluent API's global active
run), so that several runs, threads or a study's trials can log side by side. A comparison or a
study is a parent run; each strategy run is a child (``parent_run_id``).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from hpo._callbacks import Callback

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from hpo._history import EpochRecord, History
    from trainers import Trainer

#: How ``History.status`` maps onto MLflow's run statuses.
MLFLOW_STATUS = {
    "finished": "FINISHED",
    "diverged": "FAILED",
    "failed": "FAILED",
    "pruned": "KILLED",
    "interrupted": "KILLED",
    "running": "FAILED",
}
DEFAULT_EXPERIMENT = "hpo"


class MLflowCallback(Callback):
    """Log a strategy's run to MLflow.

    Params: the task's (``dataset``, ``model``, ...) and the strategy's config, the latter
    prefixed ``strategy.``; tag ``hpo.strategy``. Metrics per epoch with ``step=epoch``: ``lr``,
    ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``spent_steps`` and the strategy's
    own signals. At the end: ``test_loss``, ``test_acc``, ``best_val_acc``, ``best_test_acc``,
    the History as ``history.json`` and the plot ``plots/history.png``; the run's status is
    ``FINISHED``, or ``FAILED`` when it diverged or raised (tag ``hpo.status`` says which).
    Scores are named by the task metric's key: ``val_acc``, ``test_acc`` for accuracy (the
    default), ``val_mse``, ``test_mse`` for MSE, and so on.

    Args:
        tracking_uri: Where to log; ``None`` uses ``MLFLOW_TRACKING_URI`` or MLflow's default.
        experiment: Experiment name (created when missing).
        run_name: The run's name (default: the strategy's name).
        parent_run_id: Nest the run under this one. When ``None`` and a fluent
            ``mlflow.start_run()`` block is active, the run is nested under that run.
        params: Extra params to log.
        tags: Extra tags.
        log_artifacts: Log the History JSON and the plots at the end.
        log_plots: With ``log_artifacts``, also the plots (the JSON alone is much cheaper).

    A run resumed from an ``hpo.Checkpoint`` goes on in the same MLflow run (status back to
    ``RUNNING``, tag ``hpo.resumed`` counting the resumptions); epochs it had logged after its
    last checkpoint are not logged twice.

    Attributes:
        run_id: The MLflow run's id, once the run has started.
    """

    def __init__(
        self,
        *,
        tracking_uri: str | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        log_artifacts: bool = True,
        log_plots: bool = True,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.params = dict(params or {})
        self.tags = dict(tags or {})
        self.log_artifacts = log_artifacts
        self.log_plots = log_plots
        self.run_id: str | None = None
        self._client: MlflowClient | None = None
        self._resumed = False
        self._logged_through = 0  # epochs already in the MLflow run (a resumed run)

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = mlflow_client(self.tracking_uri)
        return self._client

    # ---------------------------------------------------------------- hooks

    def state_dict(self) -> dict[str, Any] | None:
        """The MLflow run's id: a resumed run logs into the same run."""
        return None if self.run_id is None else {"run_id": self.run_id}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = str(state["run_id"])
        self._resumed = True

    def on_run_start(self, history: History, trainer: Trainer) -> None:
        if self.run_id is not None and self._resumed:
            # a resumed run: the same MLflow run goes on (params were logged the first time)
            self.client.update_run(self.run_id, status="RUNNING")
            tags = self.client.get_run(self.run_id).data.tags
            resumes = int(tags.get("hpo.resumed", "0")) + 1
            self.client.set_tag(self.run_id, "hpo.resumed", str(resumes))
            self.client.set_tag(self.run_id, "hpo.resumed_at_epoch", str(history.epochs))
            # epochs logged after the checkpoint, before the crash, are trained again with
            # the same numbers: they are not logged twice
            logged = self.client.get_metric_history(self.run_id, "train_loss")
            self._logged_through = max((m.step for m in logged), default=0)
            return
        parent = self.parent_run_id or _active_fluent_run_id()
        tags = {"hpo.strategy": history.strategy, **self.tags}
        if parent:
            tags["mlflow.parentRunId"] = parent
        n_params = sum(p.numel() for p in trainer.model.parameters())
        self.run_id = start_run(
            self.client, self.experiment, self.run_name or history.strategy, tags
        )
        params = {
            **history.task,
            **{f"strategy.{k}": v for k, v in history.config.items()},
            "model_parameters": n_params,
            "device": str(trainer.device),
            **self.params,
        }
        log_params(self.client, self.run_id, params)

    def on_epoch_end(self, history: History, record: EpochRecord) -> None:
        if self.run_id is not None and record.epoch > self._logged_through:
            log_metrics(
                self.client, self.run_id, epoch_metrics(record, history.metric), step=record.epoch
            )

    def on_run_end(self, history: History) -> None:
        if self.run_id is None:
            return
        client, run_id = self.client, self.run_id
        key = history.metric
        final = {
            "test_loss": history.test_loss,
            f"test_{key}": history.test_score,
            "best_test_loss": history.best_test_loss,
            f"best_test_{key}": history.best_test_score,
        }
        if history.best is not None:
            final[f"best_val_{key}"] = history.best.val_score
            final["best_epoch"] = history.best.epoch
        for key, value in history.info.get("summary_metrics", {}).items():
            if isinstance(value, (int, float)):  # strategy results (e.g. ensemble accuracy)
                final[key] = value
        log_metrics(client, run_id, final, step=history.epochs)
        if history.diverged_epoch is not None:
            final_tags = {
                "hpo.diverged_epoch": str(history.diverged_epoch),
                "hpo.diverged_reason": str(history.diverged_reason),
            }
        else:
            final_tags = {}
        final_tags["hpo.status"] = history.status
        if history.error:
            final_tags["hpo.error"] = history.error[:5000]
        for k, v in final_tags.items():
            client.set_tag(run_id, k, v)
        if self.log_artifacts:
            try:
                log_history_artifacts(client, run_id, history, plots=self.log_plots)
            except Exception as err:  # an artifact store problem must not hide the run's fate
                client.set_tag(run_id, "hpo.artifact_error", f"{type(err).__name__}: {err}"[:5000])
        client.set_terminated(run_id, MLFLOW_STATUS.get(history.status, "FAILED"))


# =============================================================================================
# Helpers shared with compare / the Optuna glue
# =============================================================================================


@contextlib.contextmanager
def parent_run(
    tracking: bool | str,
    experiment: str,
    run_name: str,
    *,
    tags: Mapping[str, Any],
    params: Mapping[str, Any],
    parent_run_id: str | None = None,
) -> Iterator[tuple[MlflowClient | None, str | None]]:
    """The parent run of a comparison or a bench: ``(client, run_id)``, or ``(None, None)``
    with ``tracking=False``.

    The run is created with ``tags`` and ``params`` (nested under ``parent_run_id`` if given) and
    ends ``FINISHED`` when the block does, ``FAILED`` when it raises (the error goes on).

    Args:
        tracking: ``True`` (``MLFLOW_TRACKING_URI`` or MLflow's default), a URI, or ``False``.
        experiment: The experiment (created if missing).
        run_name: The run's name.
        tags: Its tags.
        params: Its params.
        parent_run_id: Nest it under this run.
    """
    if tracking is False:
        yield None, None
        return
    client = mlflow_client(tracking if isinstance(tracking, str) else None)
    all_tags = dict(tags)
    if parent_run_id is not None:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run_id = start_run(client, experiment, run_name, all_tags)
    log_params(client, run_id, params)
    try:
        yield client, run_id
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def mlflow_client(uri: str | None) -> MlflowClient:
    """An ``MlflowClient`` for ``uri`` (``None``: ``MLFLOW_TRACKING_URI`` or MLflow's default).

    Creating a client on a new SQLite store creates its tables; two processes doing that at
    once corrupt the migration (``duplicate column name``). For ``sqlite:`` URIs the creation
    is serialised across processes with a lock file beside the database.

    Raises:
        hpo._resources.ResourceError: A ``sqlite:`` URI in a folder that does not exist, or a
            file that is not an MLflow database.
    """
    from mlflow import MlflowClient

    uri = resolve_tracking_uri(uri)
    if uri.startswith("sqlite:") and not _sqlite_file_exists(uri):
        # a new database: its folder must exist (an error, not a silent mkdir)
        from hpo._resources import check_tracking_uri

        check_tracking_uri(uri, flag="`tracking`")
    with sqlite_init_lock(uri):
        return MlflowClient(uri)


def resolve_tracking_uri(uri: str | None) -> str:
    """``uri``, or when it is ``None`` (or empty) ``MLFLOW_TRACKING_URI`` or MLflow's default."""
    if uri:
        return uri
    import mlflow

    return str(mlflow.get_tracking_uri())


def start_run(client: MlflowClient, experiment: str, run_name: str, tags: dict[str, Any]) -> str:
    """Create a run in ``experiment`` (created if missing, race-safe); return its id."""
    experiment_id = get_or_create_experiment(client, experiment)
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    return str(run.info.run_id)


def get_or_create_experiment(client: MlflowClient, name: str) -> str:
    """The experiment's id, creating it if missing (safe when processes race to create it)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(client.create_experiment(name))
    except MlflowException:  # another process created it first
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, Any]) -> None:
    """Log params in batches of 100, values as strings cut to MLflow's 6,000 characters."""
    from mlflow.entities import Param

    items = [Param(_key(k), _param_value(v)) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])


def log_metrics(
    client: MlflowClient, run_id: str, metrics: Mapping[str, float], *, step: int
) -> None:
    """Log numeric metrics at ``step`` in one batch (NaN is kept: MLflow stores it)."""
    from mlflow.entities import Metric

    ts = int(time.time() * 1000)
    items = [
        Metric(_key(k), float(v), ts, step)
        for k, v in metrics.items()
        if isinstance(v, (int, float))
    ]
    for i in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[i : i + 1000])


def epoch_metrics(record: EpochRecord, key: str = "acc") -> dict[str, float]:
    """The numbers of one epoch that go to MLflow (the scores as ``train_<key>`` /
    ``val_<key>``, ``key`` the metric's)."""
    out: dict[str, float] = {
        "lr": record.lr,
        "train_loss": record.train_loss,
        f"train_{key}": record.train_score,
        "val_loss": record.val_loss,
        f"val_{key}": record.val_score,
        "steps": record.steps,
        "spent_steps": record.spent_steps,
        "spent_examples": record.spent_examples,
        "wall_time": record.wall_time,
    }
    if record.lr_min != record.lr_max and math.isfinite(record.lr_min):
        out["lr_min"], out["lr_max"] = record.lr_min, record.lr_max
    out.update(record.metrics)
    return out


def log_history_artifacts(
    client: MlflowClient, run_id: str, history: History, *, plots: bool = True
) -> None:
    """The History as ``history.json`` and (with ``plots``) its plot as ``plots/history.png``
    and the strategy's own figures."""
    from hpo._plots import plot_history

    client.log_text(run_id, history.to_json(indent=1), "history.json")
    if not plots:
        return
    if history.records:
        fig = plot_history(history)
        client.log_figure(run_id, fig, "plots/history.png")
    for name, figure in history.figures.items():
        client.log_figure(run_id, figure, f"plots/{name}.png")


@contextlib.contextmanager
def sqlite_init_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock for a ``sqlite:///`` store (while it is opened and its tables
    created, or a check-and-create runs); a no-op for other URIs or where ``fcntl`` is missing.
    Re-entrant within a process is *not* supported.

    The lock file is ``lock_path(database)``, in the temporary folder, not beside the database:
    nothing is left in the user's folders. Processes on one machine share it.
    """
    path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        path = None
    if not path or path == ":memory:":
        yield
        return
    with open(lock_path(path), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_path(database: str) -> str:
    """``<tmp>/hpo-locks-<uid>/<hash of the database's absolute path>.lock``."""
    import hashlib
    import tempfile

    folder = os.path.join(tempfile.gettempdir(), f"hpo-locks-{os.getuid()}")
    os.makedirs(folder, exist_ok=True)
    digest = hashlib.sha1(os.path.abspath(database).encode()).hexdigest()[:20]
    return os.path.join(folder, f"{digest}.lock")


def _sqlite_file_exists(uri: str) -> bool:
    path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else ""
    return bool(path) and os.path.isfile(path)


def retry_on_db_race(fn: Callable[[], Any], attempts: int = 6) -> Any:
    """Call ``fn``, retrying (with back-off) when a concurrent process is creating the same
    database's tables (SQLAlchemy integrity/operational errors)."""
    from sqlalchemy.exc import IntegrityError, OperationalError

    for attempt in range(attempts):
        try:
            return fn()
        except (IntegrityError, OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.3 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _active_fluent_run_id() -> str | None:
    import mlflow

    active = mlflow.active_run()
    return None if active is None else str(active.info.run_id)


def _key(name: str) -> str:
    return re.sub(r"[^\w\-. /]", "_", str(name))[:250]


def _param_value(value: Any) -> str:
    return str(value)[:6000]
