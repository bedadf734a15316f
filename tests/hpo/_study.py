"""Helpers of the shared-study tests: ``hpo study`` workers in child processes, a throwaway
PostgreSQL server, and a NOS worker (``python -m tests.hpo._study nos ...``)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

#: Recovery flags for tests: a heartbeat every second, a trial is dead after 3 s of silence.
HEARTBEAT = ("--heartbeat-interval", "1", "--grace-period", "3")
GRACE = 3


def study_process(
    storage: str,
    name: str,
    tracking_uri: str,
    cwd: Path,
    *,
    n_trials: int = 2,
    epochs: int = 1,
    extra: Sequence[str] = (),
    output: IO[str] | None = None,
) -> subprocess.Popen:
    """Start ``hpo study`` for ``n_trials`` trials of ``constant`` (``epochs`` each, 300
    examples) on ``storage``'s study ``name``, logging to ``tracking_uri``; stdout and stderr
    are piped (text), or both go to ``output``."""
    cmd = [
        sys.executable,
        "-m",
        "hpo",
        "study",
        "--strategy",
        "constant",
        "--n-trials",
        str(n_trials),
        "--storage",
        storage,
        "--study-name",
        name,
        "--epochs",
        str(epochs),
        "--train-size",
        "300",
        "--device",
        "cpu",
        "--pruner",
        "none",
        "--tracking-uri",
        tracking_uri,
        *extra,
    ]
    return subprocess.Popen(cmd, cwd=cwd, text=True, **_pipes(output))


def _pipes(output: IO[str] | None) -> dict[str, Any]:
    if output is None:
        return {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    return {"stdout": output, "stderr": subprocess.STDOUT}


def ended_normally(trial: object) -> bool:
    """A trial that completed, or was pruned because its run diverged (the drawn lr may be too
    large for Adam: an exploding loss is pruned, never a crash)."""
    import optuna

    state = trial.state  # type: ignore[attr-defined]
    return state == optuna.trial.TrialState.COMPLETE or (
        state == optuna.trial.TrialState.PRUNED and trial.user_attrs.get("diverged") is True  # type: ignore[attr-defined]
    )


def wait_for_running_trial(study: Any, proc: subprocess.Popen, timeout: float = 120.0) -> Any:
    """The first RUNNING trial of ``study`` that has its MLflow run, once there is one (the
    worker ``proc`` is in the middle of it)."""
    import optuna

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if "mlflow_run_id" in t.user_attrs:
                return t
        if proc.poll() is not None:
            raise AssertionError(f"the worker ended before its trial: {proc.communicate()}")
        time.sleep(0.2)
    raise AssertionError(f"no running trial after {timeout} s")


def dispose(storage: Any) -> None:
    """Close an RDB storage's connections (before its PostgreSQL server stops)."""
    backend = getattr(storage, "_backend", storage)
    if hasattr(backend, "engine"):
        backend.remove_session()
        backend.engine.dispose()


# =============================================================================================
# A throwaway PostgreSQL server
# =============================================================================================


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL cluster started for the block (initdb + pg_ctl, as the ``postgres`` user
    when the tests run as root): yields its URL. Skips the test where PostgreSQL's binaries or
    the ``psycopg`` driver (SQLAlchemy 2.1's default for postgresql://) are missing."""
    import pytest

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
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200",
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


# =============================================================================================
# A NOS worker: NOSSampler + NOSEvaluation through hpo.objective on hpo.storage
# =============================================================================================


def nos_process(
    storage: str,
    name: str,
    tracking_uri: str,
    cwd: Path,
    *,
    n_trials: int,
    heartbeat_interval: int = 1,
    grace_period: int = GRACE,
    output: IO[str] | None = None,
) -> subprocess.Popen:
    """Start a NOS worker (``python -m tests.hpo._study nos``) on ``storage``'s study
    ``name``: ``n_trials`` candidate optimizers of a small GA, each a 1-epoch NOS evaluation
    (two sweep lrs) through ``hpo.objective`` on ``hpo.storage``; stdout and stderr are piped
    (text), or both go to ``output``."""
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
    args = [storage, name, tracking_uri, n_trials, heartbeat_interval, grace_period]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.hpo._study", "nos", *map(str, args)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
        text=True,
        **_pipes(output),
    )


def _nos_worker(
    storage_url: str,
    name: str,
    tracking_uri: str,
    n_trials: int,
    heartbeat_interval: int,
    grace_period: int,
) -> None:
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # as the hpo command does
    import optuna

    import hpo
    from strategies.nos import NOSEvaluation, NOSPruner, NOSSampler, genome_of

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        storage=hpo.storage(
            storage_url, heartbeat_interval=heartbeat_interval, grace_period=grace_period
        ),
        direction="maximize",
        sampler=NOSSampler(population=2, mutations=2, init_size=4),
        pruner=NOSPruner(sweep_steps=2),
        load_if_exists=True,
    )

    def make(trial: optuna.Trial) -> NOSEvaluation:
        return NOSEvaluation(
            genome=genome_of(trial).to_json(), sweep_lrs=(0.01, 0.001), sweep_epochs=1
        )

    task = hpo.testing.boring_task(epochs=1)
    with hpo.objective(task, make, "val_acc", report="train_acc", tracking=tracking_uri) as obj:
        study.optimize(obj, n_trials=n_trials)
    print(f"nos worker: {len(study.trials)} trials in the storage")


if __name__ == "__main__":  # python -m tests.hpo._study nos STORAGE NAME URI N INTERVAL GRACE
    if sys.argv[1] != "nos":
        raise SystemExit(f"unknown worker {sys.argv[1]!r}")
    storage_url, name, tracking_uri = sys.argv[2:5]
    _nos_worker(storage_url, name, tracking_uri, *map(int, sys.argv[5:8]))
