"""Storages with Optuna's heartbeat: the journal storage's equivalent, and RDBStorage hardened.

Optuna finds a worker that died in the middle of a trial by its heartbeat. While a trial runs,
a thread of ``study.optimize`` calls ``storage.record_heartbeat(trial_id)`` every
``heartbeat_interval`` seconds; before each new trial, ``optuna.storages.fail_stale_trials``
fails every RUNNING trial whose last heartbeat is older than ``grace_period`` and hands it to
the storage's ``heartbeat_stale_trial_callback`` (which may enqueue a retry). A storage takes
part by also implementing ``optuna.storages._heartbeat.BaseHeartbeat``: Optuna 5's
``RDBStorage`` does, its ``JournalStorage`` does not. This module adds:

- ``JournalHeartbeatStorage``: a ``JournalStorage`` that records heartbeats in the journal
  itself, so that Optuna's own machinery (the heartbeat thread, ``fail_stale_trials`` at each
  trial start, the stale-trial callback) works unchanged on journal files;
- ``RDBHeartbeatStorage``: ``RDBStorage`` with two gaps closed. Optuna ignores a RUNNING trial
  that has no heartbeat yet, so a worker killed between creating its trial and the heartbeat
  thread's first beat (``study.ask()`` runs the sampler in between, seconds for a GP) would
  leave that trial RUNNING for ever: here a trial's start counts as its first heartbeat. And a
  transient database error in ``record_heartbeat`` (SQLite busy for longer than its timeout)
  ends Optuna's heartbeat thread silently, after which the live trial is failed as stale: here
  the error is logged and the next beat tries again. The journal storage behaves the same way.

Both keep Optuna's semantics otherwise: ``grace_period=None`` means ``2 * heartbeat_interval``,
and a trial is stale once ``now - last sign of life > grace_period``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from hpo._validation import check_range

if TYPE_CHECKING:
    from optuna.storages.journal import BaseJournalBackend

_logger = logging.getLogger(__name__)

#: The trial system attr that holds a journal trial's last heartbeat (seconds since the epoch,
#: the writing worker's clock).
HEARTBEAT_ATTR = "hpo:heartbeat"

StaleTrialCallbackType = Callable[["optuna.Study", FrozenTrial], None]


class JournalHeartbeatStorage(JournalStorage, BaseHeartbeat):
    """A ``JournalStorage`` with Optuna's heartbeat, so that a crashed worker's trial is found.

    A heartbeat is the trial system attr ``hpo:heartbeat`` (``time.time()`` of the worker),
    appended to the journal like any other write. A trial is stale when it is RUNNING and
    neither its last heartbeat nor its start (``datetime_start``: so a worker that died before
    its first beat is found too) lies within ``grace_period`` seconds of now. The finder's
    clock is compared with the writer's, so machines sharing a journal file (NFS) need clocks
    that agree to well within ``grace_period`` (NTP does). The cost is one journal line per
    running trial every ``heartbeat_interval`` seconds, which every worker replays.

    With ``heartbeat_interval=None`` it is a plain ``JournalStorage``.

    Args:
        backend: The journal's backend (``JournalFileBackend(path)``, Redis, ...).
        heartbeat_interval: Seconds between a running trial's heartbeats (an int >= 1), or
            ``None`` for no heartbeat.
        grace_period: Seconds without a sign of life after which a RUNNING trial is stale (an
            int >= 1; default ``2 * heartbeat_interval``, as Optuna's RDBStorage).
        heartbeat_stale_trial_callback: Called with ``(study, trial)`` for each stale trial once
            it is failed (``hpo.StaleTrialCallback``, Optuna's
            ``RetryHeartbeatStaleTrialCallback``, ...).

    Raises:
        TypeError: An interval or grace period that is not an int.
        ValueError: An interval or grace period below 1.

    Example:
        >>> import os, tempfile, optuna
        >>> from optuna.storages.journal import JournalFileBackend
        >>> from hpo._heartbeat import JournalHeartbeatStorage
        >>> path = os.path.join(tempfile.mkdtemp(), "study.log")
        >>> storage = JournalHeartbeatStorage(JournalFileBackend(path), heartbeat_interval=1)
        >>> study = optuna.create_study(storage=storage)
        >>> study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
        >>> "hpo:heartbeat" in study.trials[0].system_attrs
        True
    """

    def __init__(
        self,
        backend: BaseJournalBackend,
        *,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        heartbeat_stale_trial_callback: StaleTrialCallbackType | None = None,
    ) -> None:
        _check_heartbeat("JournalHeartbeatStorage", heartbeat_interval, grace_period)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback
        super().__init__(backend)

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
        except UpdateFinishedTrialError:
            pass  # the trial ended meanwhile (e.g. another worker failed it as stale)
        except Exception as err:  # noqa: BLE001 - a lost beat must not end the thread
            _logger.warning("Could not record the heartbeat of trial %d: %s", trial_id, err)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        assert self.heartbeat_interval is not None  # only called with the heartbeat on
        grace = self.grace_period or 2 * self.heartbeat_interval
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            if now - _last_sign_of_life(trial) > grace:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> StaleTrialCallbackType | None:
        return self.heartbeat_stale_trial_callback


class RDBHeartbeatStorage(RDBStorage):
    """Optuna's ``RDBStorage`` whose trials have a heartbeat from their start, and whose
    heartbeat survives a transient database error (see the module's docstring).

    It takes ``RDBStorage``'s arguments; ``heartbeat_interval`` and ``grace_period`` are
    checked as in ``JournalHeartbeatStorage``.

    Example:
        >>> import optuna
        >>> from hpo._heartbeat import RDBHeartbeatStorage
        >>> storage = RDBHeartbeatStorage("sqlite:///:memory:", heartbeat_interval=1)
        >>> study = optuna.create_study(storage=storage)
        >>> trial_id = storage.create_new_trial(study._study_id)  # what study.ask() does
        >>> storage._get_stale_trial_ids(study._study_id)  # its start is a sign of life
        []
    """

    def __init__(self, url: str, *, heartbeat_interval: int | None = None, **kwargs: Any) -> None:
        _check_heartbeat("RDBHeartbeatStorage", heartbeat_interval, kwargs.get("grace_period"))
        with warnings.catch_warnings():
            # Optuna calls the heartbeat experimental; using it is this class's purpose
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(url, heartbeat_interval=heartbeat_interval, **kwargs)

    def _create_new_trial(
        self, study_id: int, template_trial: FrozenTrial | None = None
    ) -> FrozenTrial:
        # _CachedStorage calls this method, RDBStorage.create_new_trial too
        trial = super()._create_new_trial(study_id, template_trial)
        if trial.state == TrialState.RUNNING and self.heartbeat_interval is not None:
            self.record_heartbeat(trial._trial_id)
        return trial

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        popped = super().set_trial_state_values(trial_id, state, values)
        if popped and state == TrialState.RUNNING and self.heartbeat_interval is not None:
            self.record_heartbeat(trial_id)  # a WAITING trial (a retry) starts running
        return popped

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as err:  # noqa: BLE001 - a lost beat must not end the thread
            _logger.warning("Could not record the heartbeat of trial %d: %s", trial_id, err)


def _last_sign_of_life(trial: FrozenTrial) -> float:
    """Seconds since the epoch of a journal trial's last heartbeat, or of its start when that
    is later (a retry inherits its original's attrs, a popped WAITING trial restarts)."""
    beat = trial.system_attrs.get(HEARTBEAT_ATTR)
    start = trial.datetime_start.timestamp() if trial.datetime_start is not None else -1.0
    return max(float(beat) if isinstance(beat, (int, float)) else -1.0, start)


def _check_heartbeat(owner: str, interval: int | None, grace: object) -> None:
    if interval is not None:
        check_range(owner, "heartbeat_interval", interval, 1, high_closed=False, integer=True)
    if grace is not None:
        check_range(owner, "grace_period", grace, 1, high_closed=False, integer=True)
