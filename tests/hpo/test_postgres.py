"""A real PostgreSQL server as Optuna's RDBStorage: two processes share one study.

The server is a throwaway cluster started by the test (initdb + pg_ctl, as the ``postgres``
user when the tests run as root); the test is skipped where PostgreSQL's binaries or the
``psycopg`` driver (SQLAlchemy 2.1's default for postgresql://) are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest

from tests.hpo._study import ended_normally, study_process


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("psycopg")
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed")
    # pytest's temporary directories are private to the user running the tests; the server's
    # user needs one it can enter
    root = Path(tempfile.mkdtemp(prefix="hpo-postgres-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.skip("running as root without runuser to start PostgreSQL as another user")
        as_user = [runuser, "-u", "postgres", "--"]
        os.chmod(root, 0o777)
    data, sock, log = root / "data", root / "sock", root / "server.log"
    sock.mkdir()
    os.chmod(sock, 0o777)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "hpo"],
        check=True,
        capture_output=True,
        cwd=root,
    )
    subprocess.run(
        [
            *as_user,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(log),
            "-w",
            "-o",
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
        cwd=root,
    )
    try:
        yield f"postgresql://hpo@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


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
        storage.remove_session()
        storage.engine.dispose()  # close the pool's connections before the server stops
    assert len(trials) == 4
    assert all(ended_normally(t) for t in trials)
    assert len({t.user_attrs["mlflow_run_id"] for t in trials}) == 4
