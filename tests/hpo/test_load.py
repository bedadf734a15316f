"""A load test of recovery: 8 workers share a study, two are killed with SIGKILL at random
moments, and nothing is lost, stuck or duplicated (slow: run with ``pytest -m slow``).

Per storage (SQLite, a journal file, a real PostgreSQL server): 6 ``hpo study`` workers
(``constant``, 45 one-epoch trials each) share one study, and 2 NOS workers (``NOSSampler`` +
``NOSEvaluation`` through ``hpo.objective`` on ``hpo.storage``, 40 trials each) share a second
one, all logging to one MLflow store. Two workers are killed, each once its study has reached a
random point between 10 % and 40 % of its planned trials, so that the study's survivors still
start trials after the grace period and find the dead one's trial: nothing is respawned. (A
study whose every worker died is recovered by the next worker that joins it: that is
``test_recovery.py``.) Hence at most one NOS worker is killed. The seed of the draw is printed;
``HPO_LOAD_SEED`` replays it.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import time

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

import hpo
from tests.hpo._study import dispose, nos_process, postgres_server, study_process

pytestmark = pytest.mark.slow

#: Heartbeat of the load test: a beat every 2 s, dead after 10 s of silence (8 processes on 2
#: cores and a busy SQLite file may delay a beat by seconds; a live trial must never look dead).
INTERVAL, GRACE = 2, 10
CLI_WORKERS, CLI_TRIALS = 6, 45
NOS_WORKERS, NOS_TRIALS = 2, 40


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


@pytest.mark.parametrize("kind", ["sqlite", "journal", "postgresql"])
def test_eight_workers_two_killed_nothing_lost_stuck_or_duplicated(
    kind, tmp_path, request, monkeypatch
):
    # 8 workers on a few cores: one thread each, as one would run them (torch's default of a
    # thread per core oversubscribes the cores 8 times and makes every trial 3x slower)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    seed = int(os.environ.get("HPO_LOAD_SEED", time.time_ns() % 2**31))
    rng = random.Random(seed)
    url = {
        "sqlite": lambda: f"sqlite:///{tmp_path / 'study.db'}",
        "journal": lambda: f"journal:{tmp_path / 'study.log'}",
        "postgresql": lambda: request.getfixturevalue("postgres_url"),
    }[kind]()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    start = time.monotonic()
    workers = start_workers(url, uri, tmp_path)
    try:
        killed = kill_two_at_random(kind, seed, rng, workers, url, start)
    finally:
        for _, p in workers:  # whatever went wrong, no worker outlives the test
            if p.poll() is None:
                p.kill()
                p.wait()
    wall = time.monotonic() - start
    for i, (_, p) in enumerate(workers):
        p.wait()
        if i in killed:
            assert p.returncode == -signal.SIGKILL
        else:
            assert p.returncode == 0, (tmp_path / f"worker{i}.log").read_text()[-3000:]

    client = MlflowClient(uri)
    runs = client.search_runs(
        [client.get_experiment_by_name("hpo").experiment_id], max_results=5000
    )
    storage = hpo._optuna.make_storage(url)
    try:
        trials = {
            n: optuna.load_study(study_name=n, storage=storage).trials for n in ("load", "nos")
        }
    finally:
        dispose(storage)
    counts = {name: check_study(name, trials[name], runs) for name in trials}
    total = sum(c["trials"] for c in counts.values())
    for name, c in counts.items():
        print(f"[{kind}] {name}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    print(f"[{kind}] {total} trials in {wall:.0f} s (workers started to last worker ended)")
    assert total >= 200
    assert sum(c["failed"] for c in counts.values()) <= 2  # one trial per killed worker at most
    assert [r.info.status for r in runs].count("RUNNING") == 0  # every MLflow run closed


def start_workers(url: str, uri: str, tmp_path) -> list[tuple[str, subprocess.Popen]]:
    """The 6 ``hpo study`` workers and the 2 NOS workers, each writing to ``workerN.log``."""
    heartbeat = ("--heartbeat-interval", str(INTERVAL), "--grace-period", str(GRACE))
    workers: list[tuple[str, subprocess.Popen]] = []
    for i in range(CLI_WORKERS + NOS_WORKERS):
        with open(tmp_path / f"worker{i}.log", "w") as log:  # the worker keeps its own handle
            if i < CLI_WORKERS:
                proc = study_process(
                    url, "load", uri, tmp_path, n_trials=CLI_TRIALS, extra=heartbeat, output=log
                )
                workers.append(("cli", proc))
            else:
                proc = nos_process(
                    url,
                    "nos",
                    uri,
                    tmp_path,
                    n_trials=NOS_TRIALS,
                    heartbeat_interval=INTERVAL,
                    grace_period=GRACE,
                    output=log,
                )
                workers.append(("nos", proc))
    return workers


def kill_two_at_random(
    kind: str,
    seed: int,
    rng: random.Random,
    workers: list[tuple[str, subprocess.Popen]],
    url: str,
    start: float,
) -> list[int]:
    """Kill two workers with SIGKILL, each once its study has a random number of trials
    (10-40 % of those planned); wait for the others to end; return the victims."""
    # never both NOS workers (their study would keep no survivor)
    first = rng.randrange(len(workers))
    others = [
        i
        for i in range(len(workers))
        if i != first and not workers[i][0] == workers[first][0] == "nos"
    ]
    victims = [first, rng.choice(others)]
    planned = {"cli": CLI_WORKERS * CLI_TRIALS, "nos": NOS_WORKERS * NOS_TRIALS}
    kill_at = {
        i: rng.randint(planned[workers[i][0]] // 10, planned[workers[i][0]] * 2 // 5)
        for i in victims
    }
    print(f"\n[{kind}] seed {seed}: kill workers {kill_at} (worker: trials in its study)")
    storage = hpo._optuna.make_storage(url)
    studies: dict[str, optuna.Study] = {}
    killed: list[int] = []
    try:
        while any(p.poll() is None for _, p in workers):
            for i in [v for v in victims if v not in killed]:
                which = "load" if workers[i][0] == "cli" else "nos"
                if which not in studies:
                    try:
                        studies[which] = optuna.load_study(study_name=which, storage=storage)
                    except KeyError:  # not created yet
                        continue
                if len(studies[which].get_trials(deepcopy=False)) >= kill_at[i]:
                    workers[i][1].send_signal(signal.SIGKILL)
                    killed.append(i)
                    at = time.monotonic() - start
                    print(f"[{kind}] killed worker {i} ({workers[i][0]}) at {at:.0f} s")
            time.sleep(0.5)
    finally:
        dispose(storage)
    assert sorted(killed) == sorted(victims)
    return killed


def check_study(name: str, trials: list, runs: list) -> dict[str, int]:
    """Assert that no trial of the study is lost, stuck or duplicated; return its counts."""
    states = collections.Counter(t.state for t in trials)
    assert states[TrialState.RUNNING] == states[TrialState.WAITING] == 0, states  # none stuck
    retries = {
        t.system_attrs["retry_history"][-1]: t for t in trials if "retry_history" in t.system_attrs
    }
    for t in trials:
        if t.state == TrialState.FAIL:  # only a killed worker's trial fails, and it is retried
            assert t.number in retries, t
            # the retry keeps what the dead trial had drawn (nothing, if it died before)
            assert retries[t.number].params.items() >= t.params.items()
    parents = [
        r for r in runs if r.data.tags.get("hpo.role") == "study" and r.info.run_name == name
    ]
    assert len(parents) == 1  # one MLflow parent per study
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    per_trial = collections.Counter(r.data.tags["optuna.trial"] for r in children)
    duplicates = sum(n - 1 for n in per_trial.values())
    assert duplicates == 0
    for t in trials:  # every finished trial's run is a child; a dead trial's run was closed
        if t.state != TrialState.FAIL:
            assert per_trial[str(t.number)] == 1, t.number
    killed_runs = [r for r in children if r.data.tags.get("hpo.status") == "killed"]
    for r in killed_runs:  # closed by whoever found the dead trial (a pruned run is KILLED too)
        assert r.info.status == "KILLED", r.info
        assert r.data.tags["hpo.error"].startswith("worker died: no heartbeat"), r.data.tags
        assert int(r.data.tags["optuna.trial"]) in retries  # its trial was retried
    nos_duplicates = 0
    if name == "nos":  # a retry must not stay a second child of its original's GA slot
        slots = collections.Counter(
            (
                t.system_attrs.get("nos:particle"),
                t.system_attrs.get("nos:step"),
                t.system_attrs.get("nos:genome"),
            )
            for t in trials
            if t.system_attrs.get("nos:role") == "child"
        )
        nos_duplicates = sum(n - 1 for n in slots.values())
        assert nos_duplicates == 0
    return {
        "trials": len(trials),
        "complete": states[TrialState.COMPLETE],
        "pruned": states[TrialState.PRUNED],
        "failed": states[TrialState.FAIL],
        "retried": len(retries),
        "mlflow children": len(children),
        "killed runs": len(killed_runs),
        "running left": states[TrialState.RUNNING] + states[TrialState.WAITING],
        "duplicate children": duplicates,
        "duplicate NOS children": nos_duplicates,
    }
