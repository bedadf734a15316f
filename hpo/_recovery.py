"""Crashed workers are recovered, in Optuna's own way: ``hpo.storage`` and ``StaleTrialCallback``.

A worker of a shared study (``hpo study`` or ``study.optimize(hpo.objective(...))``) may die
in the middle of a trial: ``kill -9``, the OOM killer, a preempted machine. Its trial would
stay RUNNING for ever, and so would the trial's MLflow run. With ``hpo.storage`` every running
trial has a heartbeat (``hpo._heartbeat``); the next worker to start a trial fails the trials
whose heartbeat stopped (Optuna's ``fail_stale_trials``) and hands each to
``StaleTrialCallback``, which enqueues a retry (Optuna's ``RetryHeartbeatStaleTrialCallback``)
and closes the dead trial's MLflow run as ``KILLED``, saying why.
"""

from __future__ import annotations

import copy
import logging
import warnings
from typing import TYPE_CHECKING, Any

from hpo._tracking import retry_on_db_race, sqlite_init_lock
from hpo._validation import check_range

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

_logger = logging.getLogger(__name__)

#: ``hpo.storage``'s default: seconds between a running trial's heartbeats.
DEFAULT_HEARTBEAT_INTERVAL = 30
#: ``hpo.storage``'s default: how often a trial whose worker died is retried.
DEFAULT_MAX_RETRY = 2
#: User attrs of a retry: the trial it retries, and that trial's MLflow run.
RETRY_OF_ATTR = "retry_of"
RETRY_OF_RUN_ATTR = "retry_of_mlflow_run_id"
#: Where an MLflow failure met while closing a dead trial's run is recorded: a user attr of the
#: retry, or of the study (suffixed with the trial's number) when there is no retry.
MLFLOW_ERROR_ATTR = "mlflow_recovery_error"
#: User attrs that belong to one run of a trial, not to its retry.
_PER_RUN_ATTRS = (
    "mlflow_run_id",
    "value_so_far",
    "diverged",
    "diverged_epoch",
    "diverged_reason",
    MLFLOW_ERROR_ATTR,
)


def storage(
    url: str | None,
    *,
    heartbeat_interval: int | None = DEFAULT_HEARTBEAT_INTERVAL,
    grace_period: int | None = None,
    max_retry: int | None = DEFAULT_MAX_RETRY,
) -> optuna.storages.BaseStorage | None:
    """An Optuna storage on which a crashed worker's trial is failed, retried and closed.

    Every running trial records a heartbeat every ``heartbeat_interval`` seconds. Before each
    trial it starts, a worker fails the RUNNING trials that have shown no sign of life for
    ``grace_period`` seconds (their worker died) and, through ``StaleTrialCallback``, enqueues
    each for a retry with the same parameters (run by the next worker that asks for a trial)
    and closes its MLflow run as ``KILLED`` with tags ``hpo.status=killed`` and ``hpo.error``
    (the reason). This is Optuna's heartbeat (``RDBStorage(heartbeat_interval=...,
    grace_period=..., heartbeat_stale_trial_callback=...)``), given the journal storage too.
    It takes effect in ``study.optimize``; the dead worker's trial is found once some worker
    starts a trial after the grace period (a study whose last worker died is cleaned up by
    the next one that joins).

    Choosing the numbers: a trial is found at most ``grace_period`` seconds after its worker
    died, plus until another worker starts a trial. The grace period must be longer than any
    silence of a live worker (the heartbeat runs in its own thread, but also ``study.ask()``:
    a GP sampler's fit, before the thread starts), or a live trial is failed and its worker
    stops with an error when it reports. Each beat is a write: a row update on a database, a
    line in a journal file.

    Args:
        url: ``sqlite:///PATH``, ``postgresql://...``, ``mysql://...`` (Optuna's RDBStorage),
            ``journal:PATH`` (a JournalStorage on a file), or ``None``: in memory, one
            process, where nothing needs recovering (returns ``None``).
        heartbeat_interval: Seconds between heartbeats, an int >= 1 (default 30: one write
            per running trial every 30 s is nothing next to a trial's own logging). ``None``
            or 0 turns recovery off (Optuna's plain storage).
        grace_period: Seconds of silence after which a running trial is stale, an int >
            ``heartbeat_interval`` (default ``None``: Optuna's ``2 * heartbeat_interval``).
        max_retry: How often one trial is retried after its worker died, an int >= 0, or
            ``None`` for always (default 2: a retry makes up for a preempted or killed worker;
            a trial that took three workers down with it, e.g. one the OOM killer stops, is
            the likely cause and stays failed). With 0 a stale trial is failed and its MLflow
            run closed, but not retried.

    Returns:
        The storage to pass to ``optuna.create_study`` / ``optuna.load_study``.

    Raises:
        TypeError: A number that is not an int.
        ValueError: A number out of range; ``hpo._resources.ResourceError`` (a ValueError): an
            unknown URL scheme, a missing folder, a file that is not a database or journal, a
            server that does not answer within 10 s, a missing driver.

    Example:
        >>> import os, tempfile, optuna, hpo
        >>> from strategies import Constant
        >>> path = os.path.join(tempfile.mkdtemp(), "study.db")
        >>> study = optuna.create_study(
        ...     storage=hpo.storage(f"sqlite:///{path}", heartbeat_interval=10),
        ...     direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
        >>> obj = hpo.objective(hpo.testing.boring_task(epochs=1), Constant.suggest,
        ...                     tracking=False)
        >>> study.optimize(obj, n_trials=1)
        >>> study.trials[0].state.name
        'COMPLETE'
    """
    import optuna

    if heartbeat_interval is not None:
        check_range(
            "storage", "heartbeat_interval", heartbeat_interval, 0, high_closed=False, integer=True
        )
    heartbeat = heartbeat_interval or None
    if grace_period is not None:
        if heartbeat is None:
            raise ValueError(
                f"storage: `grace_period` needs a heartbeat, but got grace_period="
                f"{grace_period!r} with heartbeat_interval={heartbeat_interval!r}."
            )
        check_range(
            "storage",
            "grace_period",
            grace_period,
            heartbeat,
            low_closed=False,
            high_closed=False,
            integer=True,
        )
    if max_retry is not None:
        check_range("storage", "max_retry", max_retry, 0, high_closed=False, integer=True)
    if url is None:
        return None
    from hpo._resources import check_storage_url

    check_storage_url(url, flag="`storage`")  # a missing folder is an error, not a mkdir
    callback = StaleTrialCallback(max_retry) if heartbeat else None
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        from hpo._heartbeat import JournalHeartbeatStorage

        backend = JournalFileBackend(url[len("journal:") :].removeprefix("//"))
        if heartbeat is None:
            return JournalStorage(backend)
        return JournalHeartbeatStorage(
            backend,
            heartbeat_interval=heartbeat,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=callback,
        )
    if url.split(":", 1)[0].split("+", 1)[0] in ("sqlite", "postgresql", "mysql"):
        from hpo._heartbeat import RDBHeartbeatStorage

        def open_rdb() -> optuna.storages.RDBStorage:
            if heartbeat is None:
                return optuna.storages.RDBStorage(url)
            return RDBHeartbeatStorage(
                url,
                heartbeat_interval=heartbeat,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=callback,
            )

        # Several processes opening a new database at once race to create its tables: on one
        # machine (SQLite) a lock file serialises that; elsewhere the losers retry.
        with sqlite_init_lock(url):
            rdb: optuna.storages.RDBStorage = retry_on_db_race(open_rdb)
            return rdb
    raise ValueError(
        "`storage` must be 'sqlite:///PATH', 'postgresql://...', 'mysql://...' or "
        f"'journal:PATH', but got storage={url!r}."
    )


class StaleTrialCallback:
    """What becomes of a trial whose worker died: Optuna's retry, and its MLflow run closed.

    A storage's ``heartbeat_stale_trial_callback`` (``hpo.storage`` installs one). Whichever
    worker finds the stale trial, already FAIL, calls it with ``(study, trial)``:

    1. Optuna's ``RetryHeartbeatStaleTrialCallback(max_retry)`` enqueues a WAITING copy of the
       trial (same parameters; system attrs ``failed_trial``, the first trial of the series,
       and ``retry_history``). The copy's user attrs also name the trial it retries
       (``retry_of``) and that trial's MLflow run (``retry_of_mlflow_run_id``);
       ``hpo.objective`` puts both on the retry's MLflow run as tags.
    2. The dead trial's MLflow run (its ``mlflow_run_id``, or a RUNNING child of the study's
       parent run tagged with its number: the worker may have died before storing the id) is
       terminated ``KILLED`` with tags ``hpo.status=killed``, ``hpo.error`` ("worker died: no
       heartbeat for more than 60 s; retried as trial 14") and ``hpo.retried_as_trial``. The
       tracking URI is the study's user attr ``mlflow_tracking_uri``, written with the parent
       run. An MLflow error never reaches the worker: it is logged and recorded in the
       retry's user attr ``mlflow_recovery_error`` (or the study's
       ``mlflow_recovery_error_trial_N`` when there is no retry).

    Args:
        max_retry: Retries per original trial, an int >= 0, or ``None`` for no limit.

    Raises:
        TypeError: ``max_retry`` is not an int.
        ValueError: ``max_retry`` < 0.

    Example:
        ``hpo.storage(url)`` installs it; with a storage of your own, pass it as Optuna's
        retry callback would be passed
        (``RDBStorage(url, heartbeat_interval=30, heartbeat_stale_trial_callback=...)``):

        >>> import hpo
        >>> hpo.StaleTrialCallback(max_retry=1).max_retry
        1
    """

    def __init__(self, max_retry: int | None = DEFAULT_MAX_RETRY) -> None:
        if max_retry is not None:
            check_range(
                "StaleTrialCallback", "max_retry", max_retry, 0, high_closed=False, integer=True
            )
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=self.max_retry)
        retry(study, _retry_template(trial))
        retried_as = _retry_of(study, trial.number)
        reason = f"worker died: no heartbeat for more than {_grace_period(study)} s; " + (
            f"retried as trial {retried_as.number}"
            if retried_as is not None
            else f"not retried (max_retry={self.max_retry} reached)"
        )
        try:
            _close_mlflow_runs(study, trial, reason, retried_as)
        except Exception as err:  # noqa: BLE001 - MLflow must not stop the finder's worker
            message = f"{type(err).__name__}: {err}"[:2000]
            _logger.warning(
                "Could not close the MLflow run of stale trial %d: %s", trial.number, message
            )
            try:
                if retried_as is not None:
                    study._storage.set_trial_user_attr(
                        retried_as._trial_id, MLFLOW_ERROR_ATTR, message
                    )
                else:
                    study.set_user_attr(f"{MLFLOW_ERROR_ATTR}_trial_{trial.number}", message)
            except Exception as again:  # noqa: BLE001 - e.g. the retry already finished
                _logger.warning("Could not record that error either: %s", again)


def _retry_template(trial: FrozenTrial) -> FrozenTrial:
    """The trial as Optuna's retry callback should copy it: without its heartbeat and its
    per-run user attrs, with ``retry_of`` and ``retry_of_mlflow_run_id``."""
    from hpo._heartbeat import HEARTBEAT_ATTR

    template = copy.deepcopy(trial)
    template.system_attrs = {k: v for k, v in trial.system_attrs.items() if k != HEARTBEAT_ATTR}
    skip = (*_PER_RUN_ATTRS, RETRY_OF_RUN_ATTR)  # the latter, if any, names an older run
    user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in skip}
    user_attrs[RETRY_OF_ATTR] = trial.number
    if trial.user_attrs.get("mlflow_run_id"):
        user_attrs[RETRY_OF_RUN_ATTR] = trial.user_attrs["mlflow_run_id"]
    template.user_attrs = user_attrs
    return template


def _retry_of(study: optuna.Study, number: int) -> FrozenTrial | None:
    """The trial that retries trial ``number``, if one was enqueued."""
    for t in reversed(study._storage.get_all_trials(study._study_id, deepcopy=False)):
        history = t.system_attrs.get("retry_history")
        if isinstance(history, list) and history and history[-1] == number:
            return t
    return None


def _grace_period(study: optuna.Study) -> int | None:
    """The study's storage's grace period (Optuna's default: twice the interval)."""
    from optuna.storages import _CachedStorage

    storage: Any = study._storage
    if isinstance(storage, _CachedStorage):
        storage = storage._backend
    interval = storage.get_heartbeat_interval()
    return getattr(storage, "grace_period", None) or (None if interval is None else 2 * interval)


def _close_mlflow_runs(
    study: optuna.Study, trial: FrozenTrial, reason: str, retried_as: FrozenTrial | None
) -> None:
    """Terminate the dead trial's MLflow runs that are still RUNNING (``KILLED``, tagged)."""
    from hpo._optuna import PARENT_ATTR, TRACKING_URI_ATTR
    from hpo._tracking import mlflow_client

    attrs = study.user_attrs
    parent = attrs.get(PARENT_ATTR)
    if not parent:
        return  # the study is not tracked in MLflow (or the worker died before its parent)
    uri = attrs.get(TRACKING_URI_ATTR)
    if not uri:
        raise RuntimeError(
            f"the study has an MLflow parent run ({parent}) but no {TRACKING_URI_ATTR!r}"
        )
    client = mlflow_client(uri)
    run_ids = [trial.user_attrs["mlflow_run_id"]] if trial.user_attrs.get("mlflow_run_id") else []
    experiment_id = client.get_run(parent).info.experiment_id
    for run in client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.mlflow.parentRunId = '{parent}' and tags.`optuna.trial` = '{trial.number}' "
            "and attributes.status = 'RUNNING'"
        ),
    ):
        if run.data.tags.get("optuna.study") == study.study_name:
            run_ids.append(run.info.run_id)
    tags = {"hpo.status": "killed", "hpo.error": reason}
    if retried_as is not None:
        tags["hpo.retried_as_trial"] = str(retried_as.number)
    for run_id in dict.fromkeys(run_ids):
        if client.get_run(run_id).info.status != "RUNNING":
            continue  # it ended (the worker died after closing it, before telling Optuna)
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        client.set_terminated(run_id, "KILLED")
