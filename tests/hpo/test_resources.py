"""Up-front checks of storages, tracking URIs and output folders, on real resources.

Every case builds the thing it checks: SQLite databases made by ``sqlite3``, Optuna and MLflow,
Optuna journals, HTTP servers on 127.0.0.1 (one that is not MLflow, one that never answers),
ports that refuse connections. A bad value must raise ``ResourceError`` naming the flag and the
value, within the timeout and a margin, and must create nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hpo._resources import (
    ResourceError,
    check_output_dir,
    check_storage_url,
    check_tracking_uri,
)
from tests.hpo.test_postgres import postgres_url  # noqa: F401  (a fixture: a real server)

#: The timeout given to every check; a check must end within it plus ``MARGIN``.
TIMEOUT = 2.0
MARGIN = 5.0

as_root = pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions"
)
needs_psycopg = pytest.mark.skipif(
    importlib.util.find_spec("psycopg") is None, reason="psycopg is not installed"
)
without_pg8000 = pytest.mark.skipif(
    importlib.util.find_spec("pg8000") is not None, reason="pg8000 is installed"
)
without_mysqldb = pytest.mark.skipif(
    importlib.util.find_spec("MySQLdb") is not None, reason="mysqlclient is installed"
)

#: A case's value from ``fx`` (``request.getfixturevalue``) and the test's ``tmp_path``.
Make = Callable[[Callable[[str], Any], Path], Any]


# =============================================================================================
# Real resources
# =============================================================================================


def _text_file(tmp: Path) -> Path:
    path = tmp / "notes.txt"
    path.write_text("not a database\n")
    return path


def _sqlite_db(tmp: Path) -> Path:
    path = tmp / "plain.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE t (x INTEGER)")
    connection.close()
    return path


def _journal(tmp: Path) -> Path:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = tmp / "study.log"
    storage = JournalStorage(JournalFileBackend(str(path)))
    optuna.create_study(storage=storage, study_name="s").optimize(
        lambda t: t.suggest_float("x", 0, 1), n_trials=2
    )
    return path


def _garbage(tmp: Path) -> Path:
    path = tmp / "garbage.log"
    path.write_bytes(b"\x00\xff binary junk\nmore\n")
    return path


def _read_only(path: Path) -> Path:
    path.chmod(0o444)
    return path


def _locked_folder(tmp: Path) -> Path:
    folder = tmp / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.fixture(autouse=True)
def _direct_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to 127.0.0.1 reach the tests' servers, whatever proxy the machine sets."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(scope="module")
def optuna_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Optuna storage (SQLite)."""
    import optuna

    path = tmp_path_factory.mktemp("optuna") / "optuna.db"
    optuna.create_study(storage=f"sqlite:///{path}", study_name="s")
    return path


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real MLflow tracking database (SQLite)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def _handler(status: int, content_type: str, body: bytes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


#: Web servers by kind: (status, content type, body) of every GET.
HTTP_KINDS = {
    "not-found": (404, "text/html", b"<html>nothing here</html>"),
    "html": (200, "text/html", b"<html>a web page</html>"),
    "auth": (401, "application/json", b'{"error_code": "UNAUTHENTICATED"}'),
    "broken": (500, "text/plain", b"internal error"),
    # answers MLflow's REST call the way a tracking server does
    "mlflow-like": (200, "application/json", json.dumps({"experiments": []}).encode()),
}


@pytest.fixture
def http_server() -> Iterator[Callable[[str], str]]:
    """Start real HTTP servers on 127.0.0.1: ``http_server(kind)`` gives the URL of one."""
    servers: list[ThreadingHTTPServer] = []

    def start(kind: str) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(*HTTP_KINDS[kind]))
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# =============================================================================================
# Bad values: one table per check
# =============================================================================================

STORAGE_ERRORS = [
    pytest.param(
        lambda fx, t: "redis://localhost:6379",
        r"'redis'.*sqlite:///PATH.*postgresql://.*mysql://.*journal:PATH",
        id="unknown-scheme",
    ),
    pytest.param(
        lambda fx, t: "postgres://u@localhost/db",
        r"SQLAlchemy spells it postgresql://",
        id="postgres-not-postgresql",
    ),
    pytest.param(lambda fx, t: "study.db", r"no scheme.*sqlite:///study\.db", id="bare-file-name"),
    pytest.param(
        lambda fx, t: f"sqlite:///{t}/missing/s.db",
        r"folder .*missing of .* does not exist \(create it first\)",
        id="sqlite-missing-folder",
    ),
    pytest.param(
        lambda fx, t: f"sqlite:///{_text_file(t)}/s.db",
        r"notes\.txt of .* is a file, not a folder",
        id="sqlite-folder-is-a-file",
    ),
    pytest.param(
        lambda fx, t: f"sqlite:///{t}",
        r"is a folder, not a SQLite database file",
        id="sqlite-path-is-a-folder",
    ),
    pytest.param(
        lambda fx, t: f"sqlite:///{_text_file(t)}",
        r"is not a SQLite database \(it does not start with 'SQLite format 3'\)",
        id="sqlite-text-file",
    ),
    pytest.param(
        lambda fx, t: f"sqlite:///{_journal(t)}",
        r"is an Optuna journal, not a SQLite database \(use journal:PATH\)",
        id="sqlite-on-a-journal",
    ),
    pytest.param(
        lambda fx, t: f"sqlite:///{fx('mlflow_db')}",
        r"is an MLflow tracking database; an Optuna storage needs a database of its own",
        id="sqlite-on-mlflow-db",
    ),
    pytest.param(
        lambda fx, t: f"sqlite:///{_locked_folder(t)}/s.db",
        r"folder .*locked of .* is not writable",
        id="sqlite-unwritable-folder",
        marks=as_root,
    ),
    pytest.param(
        lambda fx, t: f"sqlite:///{_read_only(_sqlite_db(t))}",
        r"database .*plain\.db of .* is read-only",
        id="sqlite-read-only-db",
        marks=as_root,
    ),
    pytest.param(lambda fx, t: "journal:", r"names no file", id="journal-no-path"),
    pytest.param(
        lambda fx, t: f"journal:{t}/missing/study.log",
        r"folder .*missing of .* does not exist \(create it first\)",
        id="journal-missing-folder",
    ),
    pytest.param(
        lambda fx, t: f"journal:{t}",
        r"is a folder, not a journal file",
        id="journal-path-is-a-folder",
    ),
    pytest.param(
        lambda fx, t: f"journal:{_garbage(t)}", r"is not an Optuna journal", id="journal-garbage"
    ),
    pytest.param(
        lambda fx, t: f"journal:{_text_file(t)}",
        r"is not an Optuna journal",
        id="journal-text-file",
    ),
    pytest.param(
        lambda fx, t: f"journal:{_sqlite_db(t)}",
        r"is a SQLite database, not an Optuna journal \(use sqlite:///PATH\)",
        id="journal-on-sqlite-db",
    ),
    pytest.param(
        lambda fx, t: f"journal:{_read_only(_journal(t))}",
        r"journal .* is read-only",
        id="journal-read-only",
        marks=as_root,
    ),
    pytest.param(
        lambda fx, t: "postgresql://u@127.0.0.1:notaport/db",
        r"not a valid database URL",
        id="bad-port",
    ),
    pytest.param(
        lambda fx, t: "mysql+notadriver://u@127.0.0.1/db",
        r"no driver 'mysql\+notadriver'",
        id="unknown-driver",
    ),
    pytest.param(
        lambda fx, t: "postgresql+pg8000://u@127.0.0.1/db",
        r"driver 'pg8000' .* is not installed \(pip install 'pg8000'",
        id="missing-driver-pg8000",
        marks=without_pg8000,
    ),
    pytest.param(
        lambda fx, t: "mysql://u@127.0.0.1/db",
        r"driver 'mysqldb' .* is not installed \(pip install 'mysqlclient'.*mysql\+DRIVER",
        id="missing-default-mysql-driver",
        marks=without_mysqldb,
    ),
    pytest.param(
        lambda fx, t: "postgresql+asyncpg://u@127.0.0.1/db", r"driver 'asyncpg'", id="asyncpg"
    ),
    pytest.param(
        lambda fx, t: f"postgresql://u@127.0.0.1:{fx('closed_port')}/db",
        r"cannot connect to the database server 127\.0\.0\.1:\d+ .*refused",
        id="postgresql-refused",
        marks=needs_psycopg,
    ),
    pytest.param(
        lambda fx, t: f"postgresql://u@127.0.0.1:{fx('blackhole_port')}/db",
        r"database server 127\.0\.0\.1:\d+ .* did not answer within 2 s",
        id="postgresql-no-answer",
        marks=needs_psycopg,
    ),
]

TRACKING_ERRORS = [
    pytest.param(
        lambda fx, t: "s3://bucket/mlruns",
        r"'s3'.*sqlite:///PATH.*http\(s\)://HOST:PORT.*file:PATH",
        id="unknown-scheme",
    ),
    pytest.param(
        lambda fx, t: "databricks-uc", r"Unity Catalog model registry", id="unity-catalog"
    ),
    pytest.param(
        lambda fx, t: f"sqlite:///{t}/missing/mlflow.db",
        r"folder .*missing of .* does not exist \(create it first\)",
        id="sqlite-missing-folder",
    ),
    pytest.param(
        lambda fx, t: f"sqlite:///{_text_file(t)}",
        r"is not a SQLite database",
        id="sqlite-text-file",
    ),
    pytest.param(
        lambda fx, t: f"sqlite:///{fx('optuna_db')}",
        r"is an Optuna storage; an MLflow tracking store needs a database of its own",
        id="sqlite-on-optuna-db",
    ),
    pytest.param(
        lambda fx, t: f"sqlite:///{_locked_folder(t)}/mlflow.db",
        r"is not writable",
        id="sqlite-unwritable-folder",
        marks=as_root,
    ),
    pytest.param(lambda fx, t: "http://", r"names no host", id="http-no-host"),
    pytest.param(
        lambda fx, t: f"http://127.0.0.1:{fx('closed_port')}",
        r"cannot connect to 127\.0\.0\.1:\d+ .*connection refused",
        id="http-refused",
    ),
    pytest.param(
        lambda fx, t: f"http://127.0.0.1:{fx('blackhole_port')}",
        r"server 127\.0\.0\.1:\d+ .* did not answer within 2 s",
        id="http-no-answer",
    ),
    pytest.param(
        lambda fx, t: "http://no-such-host.invalid:5000",
        r"cannot resolve the host 'no-such-host\.invalid'|did not answer within",
        id="http-unknown-host",
    ),
    pytest.param(
        lambda fx, t: fx("http_server")("not-found"),
        r"is not an MLflow tracking server .*HTTP 404",
        id="http-not-mlflow-404",
    ),
    pytest.param(
        lambda fx, t: fx("http_server")("html"),
        r"is not an MLflow tracking server .*HTTP 200 without MLflow's JSON",
        id="http-not-mlflow-html",
    ),
    pytest.param(
        lambda fx, t: fx("http_server")("auth"),
        r"refused the credentials \(HTTP 401\).*MLFLOW_TRACKING_TOKEN",
        id="http-unauthorised",
    ),
    pytest.param(
        lambda fx, t: fx("http_server")("broken"), r"failed: HTTP 500", id="http-server-error"
    ),
    pytest.param(
        lambda fx, t: "mysql+notadriver://u@127.0.0.1/db",
        r"no driver 'mysql\+notadriver'",
        id="unknown-driver",
    ),
    pytest.param(
        lambda fx, t: f"postgresql://u@127.0.0.1:{fx('closed_port')}/db",
        r"cannot connect to the database server .*refused",
        id="postgresql-refused",
        marks=needs_psycopg,
    ),
    pytest.param(
        lambda fx, t: f"file://otherhost{t}/mlruns",
        r"names the remote host 'otherhost'",
        id="file-remote-host",
    ),
    pytest.param(
        lambda fx, t: str(_sqlite_db(t)),
        r"is a file, not a folder \(it is a SQLite database: write sqlite:///",
        id="path-to-a-sqlite-file",
    ),
    pytest.param(
        lambda fx, t: f"file:{t}/mlruns",
        r"MLflow file store, but .*MLFLOW_ALLOW_FILE_STORE=true",
        id="file-store-refused",
    ),
    pytest.param(
        lambda fx, t: _allow_file_store(fx, f"{t}/missing/mlruns"),
        r"folder .*missing of .* does not exist",
        id="file-store-missing-parent",
    ),
    pytest.param(
        lambda fx, t: _allow_file_store(fx, f"file:{_locked_folder(t)}/mlruns"),
        r"is not writable",
        id="file-store-unwritable",
        marks=as_root,
    ),
]

OUTPUT_DIR_ERRORS = [
    pytest.param(lambda fx, t: "", r"'' is not a folder", id="empty"),
    pytest.param(
        lambda fx, t: str(_text_file(t)), r"notes\.txt is a file, not a folder", id="a-file"
    ),
    pytest.param(
        lambda fx, t: f"{_text_file(t)}/sub/dir",
        r"cannot be created: .*notes\.txt is a file, not a folder",
        id="under-a-file",
    ),
    pytest.param(
        lambda fx, t: str(_locked_folder(t)),
        r"folder .*locked is not writable",
        id="unwritable",
        marks=as_root,
    ),
    pytest.param(
        lambda fx, t: f"{_locked_folder(t)}/new/run",
        r"cannot be created: the folder .*locked is not writable",
        id="unwritable-ancestor",
        marks=as_root,
    ),
]


def _allow_file_store(fx: Callable[[str], Any], value: str) -> str:
    fx("monkeypatch").setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return value


def _expect_error(
    check: Callable[[str], None], value: str, match: str, flag: str, tmp: Path
) -> ResourceError:
    before = sorted(tmp.rglob("*"))
    start = time.monotonic()
    with pytest.raises(ResourceError, match=match) as info:
        check(value)
    elapsed = time.monotonic() - start
    err = info.value
    message = str(err)
    assert isinstance(err, ValueError)
    assert message.startswith(f"--{flag}: "), message
    assert "\n" not in message, message
    assert err.flag == flag and err.value in message
    assert _masked(value) in message, message
    assert elapsed < TIMEOUT + MARGIN, f"took {elapsed:.1f} s"
    assert sorted(tmp.rglob("*")) == before, "a failed check created files"
    return err


def _masked(value: str) -> str:
    """``value`` with a URL's password shown as the messages show it."""
    if "://" in value and "@" in value.split("://", 1)[1].split("/", 1)[0]:
        head, rest = value.split("://", 1)
        userinfo, host = rest.split("@", 1)
        if ":" in userinfo:
            return f"{head}://{userinfo.split(':', 1)[0]}:***@{host}"
    return value


@pytest.mark.parametrize("make, match", STORAGE_ERRORS)
def test_bad_storage(
    request: pytest.FixtureRequest, tmp_path: Path, make: Make, match: str
) -> None:
    value = make(request.getfixturevalue, tmp_path)
    _expect_error(
        lambda v: check_storage_url(v, timeout=TIMEOUT), value, match, "storage", tmp_path
    )


@pytest.mark.parametrize("make, match", TRACKING_ERRORS)
def test_bad_tracking_uri(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make: Make,
    match: str,
) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    value = make(request.getfixturevalue, tmp_path)
    _expect_error(
        lambda v: check_tracking_uri(v, timeout=TIMEOUT), value, match, "tracking-uri", tmp_path
    )


@pytest.mark.parametrize("make, match", OUTPUT_DIR_ERRORS)
def test_bad_output_dir(
    request: pytest.FixtureRequest, tmp_path: Path, make: Make, match: str
) -> None:
    value = make(request.getfixturevalue, tmp_path)
    _expect_error(check_output_dir, value, match, "output-dir", tmp_path)


@pytest.mark.parametrize(
    "check, url",
    [
        pytest.param(
            check_storage_url,
            "postgresql://hpo:s3cret@127.0.0.1:{port}/db",
            id="storage-postgresql",
            marks=needs_psycopg,
        ),
        pytest.param(
            check_tracking_uri,
            "postgresql://hpo:s3cret@127.0.0.1:{port}/db",
            id="tracking-postgresql",
            marks=needs_psycopg,
        ),
        pytest.param(
            check_tracking_uri, "http://hpo:s3cret@127.0.0.1:{port}/", id="tracking-http"
        ),
    ],
)
def test_passwords_are_masked(check: Callable[..., None], url: str, closed_port: int) -> None:
    with pytest.raises(ResourceError) as info:
        check(url.format(port=closed_port), timeout=TIMEOUT)
    assert "s3cret" not in str(info.value) and "s3cret" not in info.value.value
    assert "hpo:***@127.0.0.1" in str(info.value)


def test_flag_and_environment_variable_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/missing/s.db"
    with pytest.raises(ResourceError, match=r"^--study-storage: "):
        check_storage_url(url, flag="study-storage")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    with pytest.raises(ResourceError, match=r"^MLFLOW_TRACKING_URI: the folder .*missing"):
        check_tracking_uri(None)


def test_error_survives_pickling() -> None:
    err = ResourceError("storage", "x://y", "'x://y' has the scheme 'x'")
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), str(copy), copy.flag, copy.value) == (
        ResourceError,
        str(err),
        "storage",
        "x://y",
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        pytest.param(
            lambda: check_storage_url(None, timeout=0),
            ValueError,
            r"`timeout` must be in \(0, inf\), but got timeout=0",
            id="zero-timeout",
        ),
        pytest.param(
            lambda: check_tracking_uri(None, timeout=float("nan")),
            ValueError,
            r"timeout=nan",
            id="nan-timeout",
        ),
        pytest.param(
            lambda: check_storage_url(None, timeout=float("inf")),
            ValueError,
            r"timeout=inf",
            id="inf-timeout",
        ),
        pytest.param(
            lambda: check_storage_url(None, timeout="1"),
            TypeError,
            r"`timeout` must be a real number",
            id="str-timeout",
        ),
        pytest.param(
            lambda: check_storage_url(5), TypeError, r"`url` must be a str or None", id="int-url"
        ),
        pytest.param(
            lambda: check_tracking_uri(5), TypeError, r"`uri` must be a str or None", id="int-uri"
        ),
        pytest.param(
            lambda: check_output_dir(None),
            TypeError,
            r"`path` must be a str or os.PathLike",
            id="none-path",
        ),
    ],
)
def test_bad_arguments(call: Callable[[], None], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


# =============================================================================================
# Good values pass, and create nothing
# =============================================================================================

STORAGE_OK = [
    pytest.param(lambda fx, t: None, id="in-memory-none"),
    pytest.param(lambda fx, t: "sqlite://", id="sqlite-in-memory"),
    pytest.param(lambda fx, t: "sqlite:///:memory:", id="sqlite-memory-name"),
    pytest.param(lambda fx, t: f"sqlite:///{t}/new.db", id="sqlite-new-file"),
    pytest.param(
        lambda fx, t: f"sqlite+pysqlite:///{t}/new.db?timeout=20", id="sqlite-driver-and-query"
    ),
    pytest.param(lambda fx, t: f"sqlite:///{_sqlite_db(t)}", id="sqlite-plain-db"),
    pytest.param(lambda fx, t: f"sqlite:///{fx('optuna_db')}", id="sqlite-optuna-db"),
    pytest.param(lambda fx, t: f"sqlite:///{_empty(t / 'empty.db')}", id="sqlite-empty-file"),
    pytest.param(lambda fx, t: f"journal:{t}/new.log", id="journal-new-file"),
    pytest.param(lambda fx, t: f"journal://{t}/new.log", id="journal-slashes"),
    pytest.param(lambda fx, t: f"journal:{_journal(t)}", id="journal-optuna"),
    pytest.param(lambda fx, t: f"journal:{_empty(t / 'empty.log')}", id="journal-empty-file"),
]

TRACKING_OK = [
    pytest.param(lambda fx, t: "sqlite://", id="sqlite-in-memory"),
    pytest.param(lambda fx, t: f"sqlite:///{t}/mlflow.db", id="sqlite-new-file"),
    pytest.param(lambda fx, t: f"sqlite:///{fx('mlflow_db')}", id="sqlite-mlflow-db"),
    pytest.param(lambda fx, t: fx("http_server")("mlflow-like"), id="http-mlflow-answer"),
    pytest.param(lambda fx, t: fx("http_server")("mlflow-like") + "/", id="http-trailing-slash"),
    pytest.param(lambda fx, t: _allow_file_store(fx, f"file:{t}/mlruns"), id="file-store-new"),
    pytest.param(lambda fx, t: _allow_file_store(fx, str(t)), id="file-store-existing-folder"),
    pytest.param(lambda fx, t: "databricks", id="databricks-unchecked"),
    pytest.param(
        lambda fx, t: _set_env(fx, "MLFLOW_TRACKING_URI", f"sqlite:///{t}/env.db"),
        id="none-from-environment",
    ),
    pytest.param(lambda fx, t: _mlflow_default(fx, t), id="none-mlflow-default"),
]

OUTPUT_DIR_OK = [
    pytest.param(lambda fx, t: str(t), id="existing"),
    pytest.param(lambda fx, t: f"{t}/a/b/c", id="new-nested"),
    pytest.param(lambda fx, t: t / "new", id="pathlike"),
]


def _empty(path: Path) -> Path:
    path.touch()
    return path


def _set_env(fx: Callable[[str], Any], name: str, value: str) -> None:
    fx("monkeypatch").setenv(name, value)
    return None


def _mlflow_default(fx: Callable[[str], Any], folder: Path) -> None:
    """No URI and no ``MLFLOW_TRACKING_URI``: MLflow's default, ``mlflow.db`` in ``folder``."""
    fx("monkeypatch").delenv("MLFLOW_TRACKING_URI", raising=False)
    fx("monkeypatch").chdir(folder)
    return None


def _expect_ok(check: Callable[[Any], None], value: Any, tmp: Path) -> None:
    before = sorted(tmp.rglob("*"))
    start = time.monotonic()
    check(value)
    assert time.monotonic() - start < TIMEOUT + MARGIN
    assert sorted(tmp.rglob("*")) == before, "a check created files"


@pytest.mark.parametrize("make", STORAGE_OK)
def test_good_storage(request: pytest.FixtureRequest, tmp_path: Path, make: Make) -> None:
    _expect_ok(
        lambda v: check_storage_url(v, timeout=TIMEOUT),
        make(request.getfixturevalue, tmp_path),
        tmp_path,
    )


@pytest.mark.parametrize("make", TRACKING_OK)
def test_good_tracking_uri(request: pytest.FixtureRequest, tmp_path: Path, make: Make) -> None:
    _expect_ok(
        lambda v: check_tracking_uri(v, timeout=TIMEOUT),
        make(request.getfixturevalue, tmp_path),
        tmp_path,
    )


@pytest.mark.parametrize("make", OUTPUT_DIR_OK)
def test_good_output_dir(request: pytest.FixtureRequest, tmp_path: Path, make: Make) -> None:
    _expect_ok(check_output_dir, make(request.getfixturevalue, tmp_path), tmp_path)


def test_checked_storages_open(tmp_path: Path) -> None:
    """What passes the check is what ``make_storage`` opens: a new SQLite file and journal."""
    import optuna

    from hpo._optuna import make_storage

    for url in (f"sqlite:///{tmp_path}/s.db", f"journal:{tmp_path}/s.log"):
        check_storage_url(url)
        optuna.create_study(storage=make_storage(url)).optimize(
            lambda t: t.suggest_float("x", 0, 1), n_trials=1
        )


# =============================================================================================
# Real servers (slow: they take seconds to start)
# =============================================================================================


@pytest.mark.slow
def test_real_mlflow_server(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mlflow = Path(sys.executable).with_name("mlflow")
    server = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--default-artifact-root",
            str(tmp_path / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("mlflow server did not start")
                time.sleep(0.5)
        check_tracking_uri(url, timeout=TIMEOUT)
        check_tracking_uri(url + "/", timeout=TIMEOUT)
        with pytest.raises(ResourceError, match=r"is not an MLflow tracking server .*HTTP 404"):
            check_tracking_uri(f"{url}/not-a-prefix", timeout=TIMEOUT)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.slow
@needs_psycopg
def test_real_postgresql(postgres_url: str) -> None:  # noqa: F811
    check_storage_url(postgres_url, timeout=TIMEOUT)
    check_tracking_uri(postgres_url, timeout=TIMEOUT)
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(
        ResourceError, match=r"cannot connect to the database server .*no_such_db.*does not exist"
    ):
        check_storage_url(missing, timeout=TIMEOUT)
