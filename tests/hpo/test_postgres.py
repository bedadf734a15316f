"""A real PostgreSQL server as Optuna's RDBStorage: two processes share one study.

The server is a throwaway cluster started by the test (``tests.hpo._study.postgres_server``:
initdb + pg_ctl, as the ``postgres`` user when the tests run as root); the test is skipped
where PostgreSQL's binaries or the ``psycopg`` driver (SQLAlchemy 2.1's default for
postgresql://) are missing. Recovery from a killed worker on PostgreSQL is in
``test_recovery.py``.
"""

from __future__ import annotations

import optuna
import pytest

from tests.hpo._study import dispose, ended_normally, postgres_server, study_process


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


def test_two_processes_share_one_postgresql_study(postgres_url, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    procs = [study_process(postgres_url, "pg", uri, tmp_path) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    storage = optuna.storages.RDBStorage(postgres_url)
    try:
        trials = optuna.load_study(study_name="pg", storage=storage).trials
    finally:
        dispose(storage)  # close the pool's connections before the server stops
    assert len(trials) == 4
    assert all(ended_normally(t) for t in trials)
    assert len({t.user_attrs["mlflow_run_id"] for t in trials}) == 4
