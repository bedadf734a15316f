"""Crashed workers are recovered: a killed worker's trial is failed, retried and its MLflow run
closed, on every storage (real processes, real storages, real MLflow)."""

from __future__ import annotations

import datetime
import os
import pickle
import signal
import time
import warnings

import optuna
import pytest
from mlflow import MlflowClient
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

import hpo
from hpo._cli import main
from hpo._heartbeat import HEARTBEAT_ATTR, JournalHeartbeatStorage, RDBHeartbeatStorage
from hpo._tracking import mlflow_client, start_run
from tests.hpo._study import (
    GRACE,
    HEARTBEAT,
    dispose,
    postgres_server,
    study_process,
    wait_for_running_trial,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "journal", "postgresql"])
def storage_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    if request.param == "journal":
        return f"journal:{tmp_path / 'study.log'}"
    return request.getfixturevalue("postgres_url")


def retried_trial_number(trial: FrozenTrial) -> int | None:
    with warnings.catch_warnings():  # Optuna marks it experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


# =============================================================================================
# A worker killed with SIGKILL in the middle of its trial
# =============================================================================================


def test_a_killed_workers_trial_is_failed_retried_and_its_mlflow_run_closed(storage_url, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    name = f"crash-{tmp_path.name}"  # the PostgreSQL server is shared by the module's tests
    storage = hpo._optuna.make_storage(storage_url)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.enqueue_trial({"lr": 0.01})  # an lr that learns, so that the retry completes
    # the victim's trial would take minutes: it is killed while it runs
    victim = study_process(
        storage_url, name, uri, tmp_path, n_trials=1, epochs=1000, extra=HEARTBEAT
    )
    try:
        running = wait_for_running_trial(study, victim)
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        victim.communicate()
    assert victim.returncode == -signal.SIGKILL
    time.sleep(GRACE)  # its last heartbeat is now older than the grace period
    # the next worker (1 epoch a trial) finds the dead trial when it starts its own
    finder = study_process(storage_url, name, uri, tmp_path, n_trials=1, extra=HEARTBEAT)
    out, err = finder.communicate(timeout=300)
    assert finder.returncode == 0, err
    assert (
        f"study {name!r}: 2 trials in the storage (1 complete, 0 pruned, 1 failed (retried 1))"
        in out
    )

    killed, retry = study.trials
    dispose(storage)
    assert killed.number == running.number and killed.state == TrialState.FAIL
    assert retry.state == TrialState.COMPLETE and retry.params == killed.params == {"lr": 0.01}
    assert retried_trial_number(retry) == killed.number
    assert retry.system_attrs["retry_history"] == [killed.number]
    killed_run = killed.user_attrs["mlflow_run_id"]
    assert retry.user_attrs["retry_of"] == killed.number
    assert retry.user_attrs["retry_of_mlflow_run_id"] == killed_run
    assert retry.user_attrs["mlflow_run_id"] != killed_run

    client = MlflowClient(uri)
    dead = client.get_run(killed_run)
    assert dead.info.status == "KILLED"
    assert dead.data.tags["hpo.status"] == "killed"
    assert dead.data.tags["hpo.error"] == (
        f"worker died: no heartbeat for more than {GRACE} s; retried as trial {retry.number}"
    )
    assert dead.data.tags["hpo.retried_as_trial"] == str(retry.number)
    again = client.get_run(retry.user_attrs["mlflow_run_id"])
    assert again.info.status == "FINISHED"
    assert again.data.tags["hpo.retry_of_trial"] == str(killed.number)
    assert again.data.tags["hpo.retry_of_mlflow_run_id"] == killed_run
    experiment = client.get_experiment_by_name("hpo").experiment_id
    runs = client.search_runs([experiment])
    assert [r.info.status for r in runs].count("RUNNING") == 0
    assert sum(r.data.tags.get("hpo.role") == "study" for r in runs) == 1


# =============================================================================================
# The journal storage's heartbeat
# =============================================================================================


def journal(tmp_path, **kwargs) -> JournalHeartbeatStorage:
    return JournalHeartbeatStorage(JournalFileBackend(str(tmp_path / "j.log")), **kwargs)


def running_trial(storage, study_id: int, *, started: float, beat: float | None = None) -> int:
    """A RUNNING trial that started ``started`` seconds ago (and beat ``beat`` seconds ago)."""
    now = datetime.datetime.now()
    template = FrozenTrial(
        number=0,
        state=TrialState.RUNNING,
        value=None,
        datetime_start=now - datetime.timedelta(seconds=started),
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs={} if beat is None else {HEARTBEAT_ATTR: time.time() - beat},
        intermediate_values={},
        trial_id=0,
    )
    return storage.create_new_trial(study_id, template_trial=template)


def test_journal_stale_trials_are_running_ones_silent_for_the_grace_period(tmp_path):
    storage = journal(tmp_path, heartbeat_interval=1, grace_period=5)
    study = optuna.create_study(storage=storage)
    fresh = running_trial(storage, study._study_id, started=1)
    beating = running_trial(storage, study._study_id, started=60, beat=1)
    silent = running_trial(storage, study._study_id, started=60, beat=30)
    never_beat = running_trial(storage, study._study_id, started=60)  # died before its first
    old_beat_new_start = running_trial(storage, study._study_id, started=1, beat=60)  # a retry
    done = running_trial(storage, study._study_id, started=60)
    storage.set_trial_state_values(done, TrialState.COMPLETE, [1.0])
    stale = storage._get_stale_trial_ids(study._study_id)
    assert sorted(stale) == sorted([silent, never_beat])
    assert {fresh, beating, old_beat_new_start, done}.isdisjoint(stale)


def test_journal_heartbeat_is_recorded_and_fail_stale_trials_uses_it(tmp_path):
    found = []

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        found.append(trial.number)

    storage = journal(tmp_path, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage)
    dead = running_trial(storage, study._study_id, started=60, beat=30)
    before = time.time()
    storage.record_heartbeat(dead)  # a beat: alive again
    assert storage.get_trial(dead).system_attrs[HEARTBEAT_ATTR] >= before
    assert storage._get_stale_trial_ids(study._study_id) == []
    # Optuna's own run loop: fail_stale_trials before each trial, a heartbeat thread during it
    storage2 = journal(  # another worker
        tmp_path, heartbeat_interval=1, grace_period=2, heartbeat_stale_trial_callback=callback
    )
    study2 = optuna.load_study(study_name=study.study_name, storage=storage2)
    time.sleep(2.2)
    study2.optimize(lambda t: (time.sleep(1.5), 1.0)[1], n_trials=1)
    trials = study2.trials
    assert trials[0].state == TrialState.FAIL and found == [0]
    assert trials[1].state == TrialState.COMPLETE
    assert trials[1].system_attrs[HEARTBEAT_ATTR] > trials[1].datetime_start.timestamp()
    storage.record_heartbeat(dead)  # a late beat of a failed trial is ignored, not raised


def test_journal_heartbeat_storage_pickles_and_is_plain_without_interval(tmp_path):
    storage = journal(tmp_path, heartbeat_interval=7, grace_period=9)
    copy = pickle.loads(pickle.dumps(storage))
    assert (copy.get_heartbeat_interval(), copy.grace_period) == (7, 9)
    plain = journal(tmp_path)
    assert not optuna.storages._heartbeat.is_heartbeat_enabled(plain)


def test_rdb_trials_have_a_heartbeat_from_their_start(tmp_path):
    # Optuna's RDBStorage ignores a RUNNING trial without heartbeat: a worker killed while
    # study.ask() ran the sampler would leave it RUNNING for ever
    storage = RDBHeartbeatStorage(
        f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=1, grace_period=1
    )
    study = optuna.create_study(storage=storage)
    trial_id = storage.create_new_trial(study._study_id)  # then the worker dies
    assert storage._get_stale_trial_ids(study._study_id) == []
    time.sleep(2.5)  # SQLite's CURRENT_TIMESTAMP counts whole seconds
    assert storage._get_stale_trial_ids(study._study_id) == [trial_id]
    dispose(storage)


# =============================================================================================
# StaleTrialCallback: the dead trial's MLflow run, and MLflow errors
# =============================================================================================


def dead_trial_study(tmp_path, tracking_uri: str | None, *, max_retry: int = 2):
    """A study whose trial 0 died after creating its MLflow run, before storing its id; the
    trial is already failed, as ``fail_stale_trials`` leaves it for the callback."""
    storage = hpo.storage(
        f"journal:{tmp_path / 'j.log'}", heartbeat_interval=1, max_retry=max_retry
    )
    study = optuna.create_study(study_name="dead", storage=storage, direction="maximize")
    client = mlflow_client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = start_run(client, "recovery", "dead", {"hpo.role": "study"})
    child = start_run(
        client,
        "recovery",
        "trial 0",
        {"mlflow.parentRunId": parent, "optuna.study": "dead", "optuna.trial": 0},
    )
    study.set_user_attr("mlflow_parent_run_id", parent)
    if tracking_uri is not None:
        study.set_user_attr("mlflow_tracking_uri", tracking_uri)
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)})
    storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return study, storage.get_trial(trial._trial_id), client, child


def test_the_callback_finds_a_run_whose_id_was_never_stored(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with warnings.catch_warnings():  # ask() outside optimize on a heartbeat storage warns
        warnings.simplefilter("ignore", UserWarning)
        study, dead, client, child = dead_trial_study(tmp_path, uri)
    hpo.StaleTrialCallback(max_retry=2)(study, dead)
    run = client.get_run(child)
    assert run.info.status == "KILLED" and run.data.tags["hpo.retried_as_trial"] == "1"
    retry = study.trials[1]
    assert retry.state == TrialState.WAITING and retried_trial_number(retry) == 0
    assert retry.params == dead.params and "retry_of_mlflow_run_id" not in retry.user_attrs


@pytest.mark.parametrize("max_retry", [1, 0])
def test_an_mlflow_error_is_recorded_not_raised(tmp_path, max_retry):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        study, dead, client, child = dead_trial_study(tmp_path, None, max_retry=max_retry)
    hpo.StaleTrialCallback(max_retry=max_retry)(study, dead)  # no tracking URI: cannot close
    assert client.get_run(child).info.status == "RUNNING"
    if max_retry:
        error = study.trials[1].user_attrs["mlflow_recovery_error"]
    else:
        assert len(study.trials) == 1  # no retry
        error = study.user_attrs["mlflow_recovery_error_trial_0"]
    assert "mlflow_tracking_uri" in error


# =============================================================================================
# Arguments
# =============================================================================================


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param(
            {"heartbeat_interval": -1},
            ValueError,
            r"`heartbeat_interval` must be in \[0, inf\)",
            id="interval",
        ),
        pytest.param(
            {"heartbeat_interval": 1.5},
            TypeError,
            "`heartbeat_interval` must be an int",
            id="interval-type",
        ),
        pytest.param(
            {"heartbeat_interval": 10, "grace_period": 10},
            ValueError,
            r"`grace_period` must be in \(10, inf\)",
            id="grace",
        ),
        pytest.param(
            {"heartbeat_interval": 0, "grace_period": 10},
            ValueError,
            "`grace_period` needs a heartbeat",
            id="grace-off",
        ),
        pytest.param(
            {"max_retry": -1}, ValueError, r"`max_retry` must be in \[0, inf\)", id="max-retry"
        ),
        pytest.param(
            {"url": "redis://x"},
            ValueError,
            "`storage`: 'redis://x' has the scheme 'redis'",
            id="scheme",
        ),
    ],
)
def test_storage_rejects_bad_arguments(kwargs, error, match):
    url = kwargs.pop("url", None)
    with pytest.raises(error, match=match):
        hpo.storage(url, **kwargs)


def test_storage_builds_each_kind(tmp_path):
    assert hpo.storage(None) is None
    rdb = hpo.storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=5, max_retry=1)
    assert isinstance(rdb, RDBHeartbeatStorage) and rdb.get_heartbeat_interval() == 5
    assert rdb.get_heartbeat_stale_trial_callback().max_retry == 1
    dispose(rdb)
    log = hpo.storage(f"journal:{tmp_path / 'j.log'}", grace_period=90)
    assert isinstance(log, JournalHeartbeatStorage) and (
        log.heartbeat_interval,
        log.grace_period,
    ) == (30, 90)
    off = hpo.storage(f"journal:{tmp_path / 'j.log'}", heartbeat_interval=0)
    assert not optuna.storages._heartbeat.is_heartbeat_enabled(off)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["--heartbeat-interval", "-1"], "--heartbeat-interval must be >= 0", id="interval"
        ),
        pytest.param(
            ["--grace-period", "20", "--heartbeat-interval", "30"],
            "--grace-period must be longer",
            id="grace",
        ),
        pytest.param(
            ["--grace-period", "20", "--heartbeat-interval", "0"],
            "--grace-period needs a heartbeat",
            id="grace-off",
        ),
        pytest.param(["--max-retry", "-1"], "--max-retry must be >= 0", id="max-retry"),
    ],
)
def test_study_recovery_flags_give_one_line_and_exit_2(capsys, argv, message):
    code = main(["study", *argv, "--no-tracking"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
