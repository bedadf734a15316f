"""Up-front checks of the resources a run needs: an Optuna storage, an MLflow tracking URI and
an output folder.

A study that fails after an hour of training because its database's folder is missing, or a
command that hangs for minutes while MLflow retries a server that is down, wastes that hour.
These checks run before any training, finish within a bounded time (a server that does not
answer fails after ``timeout`` seconds) and raise a :class:`ResourceError` whose message is one
line naming the flag, the value and what is wrong or allowed::

    --storage: the folder /x/y of sqlite:////x/y/s.db does not exist (create it first)

They create nothing: a missing folder is an error, not a ``mkdir``. Passwords in database URLs
are shown as ``***``.

Example:
    >>> check_storage_url(None)  # an in-memory study needs nothing
    >>> check_storage_url("redis://localhost")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hpo._resources.ResourceError: --storage: 'redis://localhost' has the scheme 'redis'; ...
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

__all__ = ["ResourceError", "check_output_dir", "check_storage_url", "check_tracking_uri"]

#: The storage URLs ``hpo._optuna.make_storage`` builds (``None``: an in-memory study).
STORAGE_FORMS = ("sqlite:///PATH", "postgresql://...", "mysql://...", "journal:PATH")
#: The tracking URIs MLflow's store registry builds a tracking store for (plus the schemes of
#: installed ``mlflow.tracking_store`` plugins). ``databricks-uc`` and ``uc`` are registered
#: too, but MLflow refuses them as tracking URIs (they name model registries).
TRACKING_FORMS = (
    "sqlite:///PATH",
    "postgresql://...",
    "mysql://...",
    "mssql://...",
    "http(s)://HOST:PORT",
    "file:PATH or a folder",
    "databricks[://PROFILE]",
)
#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"


class ResourceError(ValueError):
    """A storage, tracking URI or output folder that a run cannot use.

    The message is one line: ``"--<flag>: <reason>"``, where the reason names the value.

    Args:
        flag: The command-line flag without its dashes (``"storage"``), or an environment
            variable's name (``"MLFLOW_TRACKING_URI"``).
        value: The value checked, as it may be shown (passwords masked).
        reason: What is wrong with it; it names ``value``.

    Attributes:
        flag: As given.
        value: As given.
        reason: As given.
    """

    def __init__(self, flag: str, value: str, reason: str) -> None:
        self.flag = flag
        self.value = value
        self.reason = reason
        super().__init__(f"{_label(flag)}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable, e.g. across worker processes
        return (type(self), (self.flag, self.value, self.reason))


# =============================================================================================
# Optuna storages
# =============================================================================================


def check_storage_url(url: str | None, *, flag: str = "storage", timeout: float = 10.0) -> None:
    """Check that an Optuna storage URL can be opened, before any training.

    The forms are those of ``hpo._optuna.make_storage``:

    - ``None``: an in-memory study; nothing to check.
    - ``sqlite:///PATH`` (or ``sqlite+DRIVER``): the folder of ``PATH`` must exist (it is not
      created) and be writable; an existing ``PATH`` must be a SQLite database file (its
      16-byte header is ``SQLite format 3``; an empty file is fine), writable, and not an MLflow
      tracking database (the two cannot share one file). ``sqlite://`` (in memory) passes.
    - ``journal:PATH``: the folder must exist and be writable (the journal's lock file goes
      there); an existing ``PATH`` must be a file whose first lines are Optuna journal entries
      (JSON objects with an ``op_code``); an empty file is fine.
    - ``postgresql://...`` and ``mysql://...`` (with an optional ``+DRIVER``): the SQLAlchemy
      driver must be installed, and the server must accept a connection within ``timeout``
      seconds (a refused connection, an unknown host, a wrong password or a missing database
      fail with the driver's reason).

    Args:
        url: The storage URL, or ``None`` for an in-memory study.
        flag: The flag (without dashes) or environment variable named in the messages.
        timeout: Seconds to wait for a database server, in ``(0, inf)``. The check returns or
            raises within about this time.

    Raises:
        ResourceError: The storage cannot be used (a ``ValueError``).
        TypeError: ``url`` is not a string or ``None``.
        ValueError: ``timeout`` is not positive.

    Example:
        >>> check_storage_url("sqlite://")  # in memory
        >>> check_storage_url("postgres://localhost/db")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hpo._resources.ResourceError: --storage: 'postgres://localhost/db' has the scheme ...
    """
    _check_timeout("check_storage_url", timeout)
    if url is None:
        return
    if not isinstance(url, str):
        raise TypeError(f"`url` must be a str or None, but got {type(url).__name__}.")
    if url.startswith("journal:"):
        _check_journal(url, flag)
        return
    scheme = url.split(":", 1)[0] if ":" in url else ""
    if scheme.split("+", 1)[0] not in ("sqlite", "postgresql", "mysql"):
        allowed = ", ".join(STORAGE_FORMS)
        shown = _hide_url_password(url)
        raise ResourceError(
            flag,
            shown,
            f"{_scheme_problem(shown, scheme)}; use one of {allowed} "
            "(or leave it out for an in-memory study)",
        )
    parsed = _parse_db_url(url, flag)
    if scheme.startswith("sqlite"):
        _check_sqlite(parsed, url, flag, timeout, use="an Optuna storage")
    else:
        _check_db_server(parsed, flag, timeout)


# =============================================================================================
# MLflow tracking URIs
# =============================================================================================


def check_tracking_uri(
    uri: str | None, *, flag: str = "tracking-uri", timeout: float = 10.0
) -> None:
    """Check that an MLflow tracking URI can be logged to, before any training.

    - ``None``: the URI MLflow would use: ``MLFLOW_TRACKING_URI`` (messages then name that
      variable) or MLflow's default (``sqlite:///mlflow.db`` in the working folder, or
      ``./mlruns`` where that holds runs).
    - ``sqlite:///PATH``: as for :func:`check_storage_url`; an existing file must not be an
      Optuna storage.
    - ``http://`` and ``https://``: the server must answer MLflow's REST call
      ``GET api/2.0/mlflow/experiments/search`` with JSON within ``timeout`` seconds. A refused
      connection, an unknown host, no answer, an HTTP error (401/403: the credentials, taken
      from ``MLFLOW_TRACKING_TOKEN`` or ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD`` as MLflow
      does) or an answer that is not MLflow's fails. TLS follows
      ``MLFLOW_TRACKING_INSECURE_TLS`` and ``MLFLOW_TRACKING_SERVER_CERT_PATH``.
    - ``postgresql://``, ``mysql://``, ``mssql://`` (MLflow's SQL store): the driver must be
      installed and the server must accept a connection within ``timeout`` seconds.
    - ``file:PATH`` and plain paths (MLflow's file store): where the installed MLflow refuses
      file stores unless ``MLFLOW_ALLOW_FILE_STORE=true`` (MLflow 3.x) and that is not set, an
      error. An existing ``PATH`` must be a writable folder; otherwise its parent must be a
      writable folder (MLflow creates ``PATH``). A path to a SQLite file is refused with a
      hint to write ``sqlite:///PATH``.
    - ``databricks`` / ``databricks://PROFILE`` and the schemes of installed MLflow
      tracking-store plugins pass unchecked: they need credentials that MLflow resolves.
      ``databricks-uc`` and ``uc`` name model registries, which MLflow refuses as tracking URIs.

    Any other scheme is an error that lists the allowed forms.

    Args:
        uri: The tracking URI, or ``None`` for MLflow's own choice.
        flag: The flag (without dashes) or environment variable named in the messages.
        timeout: Seconds to wait for a server, in ``(0, inf)``. The check returns or raises
            within about this time.

    Raises:
        ResourceError: The tracking URI cannot be used (a ``ValueError``).
        TypeError: ``uri`` is not a string or ``None``.
        ValueError: ``timeout`` is not positive.

    Example:
        >>> check_tracking_uri("sqlite://")  # in memory
        >>> check_tracking_uri("s3://bucket/mlruns")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        hpo._resources.ResourceError: --tracking-uri: 's3://bucket/mlruns' has the scheme ...
    """
    _check_timeout("check_tracking_uri", timeout)
    if uri is None or uri == "":
        uri, flag = _default_tracking_uri(flag)
    if not isinstance(uri, str):
        raise TypeError(f"`uri` must be a str or None, but got {type(uri).__name__}.")
    # the scheme as MLflow's store registry reads it
    if uri in ("databricks", "databricks-uc", "uc"):
        scheme = uri
    else:
        scheme = urllib.parse.urlsplit(uri).scheme
        if len(scheme) == 1:  # a Windows drive letter: a path
            scheme = ""
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        _check_sqlite(_parse_db_url(uri, flag), uri, flag, timeout, use="an MLflow tracking store")
    elif base in ("postgresql", "mysql", "mssql"):
        _check_db_server(_parse_db_url(uri, flag), flag, timeout)
    elif scheme in ("http", "https"):
        _check_mlflow_server(uri, flag, timeout)
    elif scheme in ("", "file"):
        _check_file_store(uri, flag)
    elif scheme in ("databricks-uc", "uc"):
        raise ResourceError(
            flag,
            uri,
            f"{uri!r} names a Unity Catalog model registry, which MLflow does not accept as a "
            "tracking URI (set it as the registry URI instead)",
        )
    elif scheme != "databricks" and scheme not in _plugin_tracking_schemes():
        allowed = ", ".join(TRACKING_FORMS)
        shown = _hide_url_password(uri)
        raise ResourceError(flag, shown, f"{_scheme_problem(shown, scheme)}; use one of {allowed}")


# =============================================================================================
# Output folders
# =============================================================================================


def check_output_dir(path: str | os.PathLike[str], *, flag: str = "output-dir") -> None:
    """Check that a folder can hold a run's output files, without creating it.

    An existing ``path`` must be a writable folder (not a file). A missing one is created
    later with its missing parents, so its nearest existing ancestor must be a writable folder.

    Args:
        path: The output folder.
        flag: The flag (without dashes) named in the messages.

    Raises:
        ResourceError: The folder cannot be used (a ``ValueError``).
        TypeError: ``path`` is not a string or path.

    Example:
        >>> import tempfile
        >>> check_output_dir(os.path.join(tempfile.gettempdir(), "hpo-doctest", "new"))
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or os.PathLike, but got {type(path).__name__}.")
    shown = os.fspath(path)
    if shown == "":
        raise ResourceError(flag, shown, "'' is not a folder (give a path)")
    full = os.path.abspath(shown)
    if os.path.exists(full):
        if not os.path.isdir(full):
            raise ResourceError(flag, shown, f"{shown} is a file, not a folder")
        if not _writable(full):
            raise ResourceError(flag, shown, f"the folder {shown} is not writable")
        return
    ancestor = os.path.dirname(full)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ResourceError(
            flag, shown, f"{shown} cannot be created: {ancestor} is a file, not a folder"
        )
    if not _writable(ancestor):
        raise ResourceError(
            flag, shown, f"{shown} cannot be created: the folder {ancestor} is not writable"
        )


# =============================================================================================
# Helpers: constants
# =============================================================================================

_T = TypeVar("_T")
#: Default ports, for messages only.
_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "mssql": 1433}
#: How each DB-API driver takes a connect timeout (in whole seconds).
_CONNECT_TIMEOUT_ARG = {
    "psycopg": "connect_timeout",
    "psycopg2": "connect_timeout",
    "pg8000": "timeout",
    "pymysql": "connect_timeout",
    "mysqldb": "connect_timeout",
    "mariadbconnector": "connect_timeout",
    "mysqlconnector": "connection_timeout",
    "pyodbc": "timeout",
    "pymssql": "login_timeout",
}
#: The pip package that provides each DB-API driver, where its name differs.
_PIP_NAME = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "mysqldb": "mysqlclient",
    "pymysql": "PyMySQL",
    "mariadbconnector": "mariadb",
    "mysqlconnector": "mysql-connector-python",
}
#: Tables that tell an MLflow tracking database and an Optuna storage apart (the two share the
#: ``alembic_version`` table, so one database cannot serve both).
_MLFLOW_TABLES = frozenset({"experiments", "runs"})
_OPTUNA_TABLES = frozenset({"studies", "trials", "version_info"})
#: The REST call that tells an MLflow tracking server from any other web server.
_MLFLOW_PROBE = "api/2.0/mlflow/experiments/search?max_results=1"


# =============================================================================================
# Helpers: SQLite files and Optuna journals
# =============================================================================================


def _check_sqlite(url: URL, raw: str, flag: str, timeout: float, *, use: str) -> None:
    """A ``sqlite:`` URL: a writable folder, and an existing file that is a SQLite database
    fit for ``use`` (``"an Optuna storage"`` or ``"an MLflow tracking store"``)."""
    database = url.database or ""
    if database.startswith("file:"):  # SQLite's own URI form (``?uri=true``)
        split = urllib.parse.urlsplit(database)
        if "mode=memory" in split.query:
            return
        database = urllib.parse.unquote(split.path)
    if database in ("", ":memory:"):
        return
    path = os.path.abspath(database)
    hint = " (~ is not expanded in URLs: write the full path)" if database.startswith("~") else ""
    if os.path.isdir(path):
        raise ResourceError(flag, raw, f"{path} of {raw} is a folder, not a SQLite database file")
    _check_folder(os.path.dirname(path), raw, flag, hint)
    if not os.path.exists(path):
        return
    head = _file_head(path, raw, flag)
    if not head:
        return  # SQLite turns an empty file into a database
    if head != SQLITE_HEADER:
        if _looks_like_journal(path):
            what = "is an Optuna journal, not a SQLite database (use journal:PATH)"
        else:
            what = "is not a SQLite database (it does not start with 'SQLite format 3')"
        raise ResourceError(flag, raw, f"{path} of {raw} {what}")
    if not os.access(path, os.W_OK):
        raise ResourceError(flag, raw, f"the database {path} of {raw} is read-only")
    tables = _sqlite_tables(path, timeout)
    if isinstance(tables, str):
        raise ResourceError(
            flag, raw, f"{path} of {raw} is not a usable SQLite database: {tables}"
        )
    if use == "an Optuna storage" and _MLFLOW_TABLES <= tables:
        other = "an MLflow tracking database"
    elif use != "an Optuna storage" and _OPTUNA_TABLES <= tables:
        other = "an Optuna storage"
    else:
        return
    raise ResourceError(
        flag,
        raw,
        f"{path} of {raw} is {other}; {use} needs a database of its own (the two cannot share "
        "a file)",
    )


def _sqlite_tables(path: str, timeout: float) -> frozenset[str] | str:
    """The tables of a SQLite database opened read-only, or why it cannot be read.

    A database locked by a writer (or one whose write-ahead log a reader may not replay) is
    taken as fine (an empty set): it is in use, so it works.
    """
    import sqlite3

    uri = "file:" + urllib.request.pathname2url(path) + "?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=min(timeout, 5.0))
        try:
            rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            return frozenset(str(row[0]) for row in rows)
        finally:
            connection.close()
    except sqlite3.DatabaseError as err:
        # in use by a writer (a read-only connection cannot replay another's write-ahead log
        # and reports "readonly"): it works, since it is being written
        if any(word in str(err) for word in ("locked", "busy", "readonly")):
            return frozenset()
        return _one_line(err)


def _check_journal(url: str, flag: str) -> None:
    """A ``journal:PATH`` URL (``make_storage`` also takes ``journal://PATH``)."""
    path = url[len("journal:") :].removeprefix("//")
    if not path:
        raise ResourceError(flag, url, f"{url!r} names no file; write journal:PATH")
    full = os.path.abspath(path)
    if os.path.isdir(full):
        raise ResourceError(flag, url, f"{full} of {url} is a folder, not a journal file")
    _check_folder(os.path.dirname(full), url, flag, "")
    if not os.path.exists(full):
        return
    head = _file_head(full, url, flag)
    if head == SQLITE_HEADER:
        raise ResourceError(
            flag,
            url,
            f"{full} of {url} is a SQLite database, not an Optuna journal (use sqlite:///PATH)",
        )
    if head and not _looks_like_journal(full):
        raise ResourceError(
            flag,
            url,
            f"{full} of {url} is not an Optuna journal (its first line is not a JSON journal "
            "entry with an 'op_code')",
        )
    if not os.access(full, os.W_OK):
        raise ResourceError(flag, url, f"the journal {full} of {url} is read-only")


def _looks_like_journal(path: str, lines: int = 3) -> bool:
    """Whether the first ``lines`` complete lines of a file are Optuna journal entries."""
    limit = 1 << 20  # a line longer than this is not read whole: it cannot be judged
    try:
        with open(path, "rb") as handle:
            for _ in range(lines):
                line = handle.readline(limit)
                if not line or (len(line) == limit and not line.endswith(b"\n")):
                    return True  # the end, or a line too long to judge
                try:
                    entry = json.loads(line.decode("utf-8"))
                except ValueError:  # json's errors and UnicodeDecodeError
                    return False
                if not isinstance(entry, dict) or not isinstance(entry.get("op_code"), int):
                    return False
    except OSError:
        return False
    return True


def _file_head(path: str, shown: str, flag: str) -> bytes:
    """The first bytes of ``path`` (as many as a SQLite header), or a ``ResourceError``."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_HEADER))
    except OSError as err:
        raise ResourceError(
            flag, shown, f"{path} of {shown} cannot be read: {_one_line(err)}"
        ) from err


def _check_folder(folder: str, raw: str, flag: str, hint: str) -> None:
    """The folder of a file-backed store: it must exist (it is not created) and be writable."""
    if not os.path.exists(folder):
        raise ResourceError(
            flag, raw, f"the folder {folder} of {raw} does not exist (create it first){hint}"
        )
    if not os.path.isdir(folder):
        raise ResourceError(flag, raw, f"{folder} of {raw} is a file, not a folder")
    if not _writable(folder):
        raise ResourceError(flag, raw, f"the folder {folder} of {raw} is not writable")


# =============================================================================================
# Helpers: database servers
# =============================================================================================


def _parse_db_url(url: str, flag: str) -> URL:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except (ArgumentError, ValueError) as err:
        shown = _hide_url_password(url)
        raise ResourceError(
            flag, shown, f"{shown!r} is not a valid database URL: {_one_line(err)}"
        ) from err


def _check_db_server(url: URL, flag: str, timeout: float) -> None:
    """A server database: its driver is installed and the server accepts a connection."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError, NoSuchModuleError
    from sqlalchemy.pool import NullPool

    shown = url.render_as_string(hide_password=True)
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError as err:
        raise ResourceError(
            flag,
            shown,
            f"SQLAlchemy has no driver {url.drivername!r} for {shown} (e.g. "
            "postgresql+psycopg, postgresql+psycopg2, postgresql+pg8000, mysql+pymysql, "
            "mysql+mysqldb)",
        ) from err
    driver = str(dialect.driver)
    try:
        dialect.import_dbapi()
    except ImportError as err:
        pip = _PIP_NAME.get(driver, driver)
        raise ResourceError(
            flag,
            shown,
            f"the database driver {driver!r} for {shown} is not installed "
            f"(pip install '{pip}', or name an installed one as {url.get_backend_name()}+DRIVER)",
        ) from err
    if getattr(dialect, "is_async", False):
        raise ResourceError(
            flag,
            shown,
            f"the driver {driver!r} of {shown} is an asyncio driver; Optuna and MLflow need a "
            "synchronous one (e.g. postgresql+psycopg, mysql+pymysql)",
        )
    connect_args: dict[str, Any] = {}
    if driver in _CONNECT_TIMEOUT_ARG:
        connect_args[_CONNECT_TIMEOUT_ARG[driver]] = max(1, math.ceil(timeout))
    host = url.host or url.query.get("host") or "localhost"
    where = f"{host}:{url.port or _PORTS.get(url.get_backend_name(), '?')}"

    def connect() -> None:
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
        try:
            with engine.connect():
                pass
        finally:
            engine.dispose()

    try:
        _within(timeout, connect)
    except TimeoutError as err:
        raise ResourceError(
            flag,
            shown,
            f"the database server {where} of {shown} did not answer within {timeout:g} s",
        ) from err
    except Exception as err:
        reason = err.orig if isinstance(err, DBAPIError) and err.orig is not None else err
        text = _one_line(reason)
        if url.password and len(str(url.password)) >= 3:
            text = text.replace(str(url.password), "***")
        if "timeout" in text.lower() or "timed out" in text.lower():
            # the driver's own connect timeout (set to ours above) can fire first
            raise ResourceError(
                flag,
                shown,
                f"the database server {where} of {shown} did not answer within {timeout:g} s "
                f"({text})",
            ) from err
        raise ResourceError(
            flag, shown, f"cannot connect to the database server {where} of {shown}: {text}"
        ) from err


# =============================================================================================
# Helpers: MLflow servers and file stores
# =============================================================================================


def _check_mlflow_server(uri: str, flag: str, timeout: float) -> None:
    """An ``http(s)://`` tracking URI: an MLflow server answers its REST API in time."""
    split = urllib.parse.urlsplit(uri)
    shown = _hide_url_password(uri)
    if not split.hostname:
        raise ResourceError(flag, shown, f"{shown!r} names no host; write http://HOST:PORT")
    try:
        port = split.port or (443 if split.scheme == "https" else 80)
    except ValueError as err:  # a port that is not a number
        raise ResourceError(flag, shown, f"{shown!r} has a bad port: {err}") from err
    where = f"{split.hostname}:{port}"
    probe = uri.rstrip("/") + "/" + _MLFLOW_PROBE
    request = urllib.request.Request(probe, headers=_mlflow_auth_headers())
    context = _mlflow_tls_context() if split.scheme == "https" else None

    def fetch() -> tuple[int, bytes]:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return int(response.status), bytes(response.read(1 << 20))

    try:
        status, body = _within(timeout, fetch)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code in (401, 403):
            reason = (
                f"the server {where} of {shown} refused the credentials (HTTP {err.code}); set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD, or MLFLOW_TRACKING_TOKEN"
            )
        elif 400 <= err.code < 500:
            reason = (
                f"the server {where} of {shown} is not an MLflow tracking server (GET "
                f"{_MLFLOW_PROBE.split('?')[0]} answered HTTP {err.code} {err.reason})"
            )
        else:
            reason = f"the server {where} of {shown} failed: HTTP {err.code} {err.reason}"
        raise ResourceError(flag, shown, reason) from err
    except (TimeoutError, socket.timeout) as err:
        raise ResourceError(
            flag, shown, f"the server {where} of {shown} did not answer within {timeout:g} s"
        ) from err
    except (urllib.error.URLError, OSError, ValueError) as err:
        cause = err.reason if isinstance(err, urllib.error.URLError) else err
        if isinstance(cause, (TimeoutError, socket.timeout)):
            reason = f"the server {where} of {shown} did not answer within {timeout:g} s"
        elif isinstance(cause, socket.gaierror):
            reason = f"cannot resolve the host {split.hostname!r} of {shown}: {_one_line(cause)}"
        elif isinstance(cause, ConnectionRefusedError):
            reason = f"cannot connect to {where} of {shown}: connection refused (is it running?)"
        else:
            reason = f"cannot connect to {where} of {shown}: {_one_line(cause)}"
        raise ResourceError(flag, shown, reason) from err
    try:
        answer = json.loads(body.decode("utf-8"))
    except ValueError:
        answer = None
    if status != 200 or not isinstance(answer, dict):
        raise ResourceError(
            flag,
            shown,
            f"the server {where} of {shown} is not an MLflow tracking server (GET "
            f"{_MLFLOW_PROBE.split('?')[0]} answered HTTP {status} without MLflow's JSON)",
        )


def _mlflow_auth_headers() -> dict[str, str]:
    """The credentials MLflow's REST client sends, from the same environment variables."""
    import base64

    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        pair = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return {"Authorization": f"Basic {pair}"}
    return {}


def _mlflow_tls_context() -> ssl.SSLContext:
    """TLS as in MLflow's REST client (``MLFLOW_TRACKING_INSECURE_TLS``, ``..._CERT_PATH``)."""
    if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() in ("true", "1"):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH"))


def _check_file_store(uri: str, flag: str) -> None:
    """A ``file:`` URI or a plain path: MLflow's file store, a folder MLflow can create."""
    split = urllib.parse.urlsplit(uri)
    if split.scheme == "file":
        if split.netloc not in ("", "localhost"):
            raise ResourceError(
                flag, uri, f"{uri!r} names the remote host {split.netloc!r}; write file:///PATH"
            )
        path = urllib.request.url2pathname(urllib.parse.unquote(split.path))
    else:
        path = uri
    full = os.path.abspath(path)
    named = uri if full == uri else f"{full} of {uri}"
    if os.path.isfile(full):
        try:
            with open(full, "rb") as handle:
                is_sqlite = handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER
        except OSError:
            is_sqlite = False
        hint = f" (it is a SQLite database: write sqlite:///{path})" if is_sqlite else ""
        raise ResourceError(flag, uri, f"{named} is a file, not a folder{hint}")
    refused = _file_store_refused()
    if refused:
        raise ResourceError(flag, uri, f"{uri} is an MLflow file store, but {refused}")
    if os.path.exists(full):
        if not _writable(full):
            raise ResourceError(flag, uri, f"the folder {named} is not writable")
        return
    _check_folder(os.path.dirname(full), uri, flag, "")


def _file_store_refused() -> str | None:
    """Why the installed MLflow refuses file stores, or ``None`` when it takes them.

    MLflow 3.x raises on a file store unless ``MLFLOW_ALLOW_FILE_STORE`` is true; earlier
    versions have no such switch and take them.
    """
    from mlflow import environment_variables

    switch = getattr(environment_variables, "MLFLOW_ALLOW_FILE_STORE", None)
    if switch is None:
        return None
    try:
        allowed = bool(switch.get())
    except ValueError as err:
        return f"MLFLOW_ALLOW_FILE_STORE is not a boolean: {_one_line(err)}"
    if allowed:
        return None
    return (
        "this MLflow refuses file stores unless MLFLOW_ALLOW_FILE_STORE=true; "
        "use a database such as sqlite:///mlflow.db"
    )


def _default_tracking_uri(flag: str) -> tuple[str, str]:
    """The URI MLflow uses when none is given, and the name to report it under."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env, "MLFLOW_TRACKING_URI"
    import mlflow

    return str(mlflow.get_tracking_uri()), flag


def _plugin_tracking_schemes() -> frozenset[str]:
    """The schemes that installed ``mlflow.tracking_store`` plugins register."""
    from importlib.metadata import entry_points

    return frozenset(ep.name for ep in entry_points(group="mlflow.tracking_store"))


# =============================================================================================
# Helpers: small
# =============================================================================================


def _within(timeout: float, fn: Callable[[], _T]) -> _T:
    """``fn()``, or ``TimeoutError`` when it has not returned after ``timeout`` seconds.

    ``fn`` runs in a daemon thread, so that nothing (a DNS lookup, a driver that ignores its
    own timeout) can hold the caller longer; an abandoned call ends on its own socket timeout
    and never keeps the process alive.
    """
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as err:  # handed to the caller, not lost in the thread
            outcome.append((False, err))

    thread = threading.Thread(target=target, name="hpo-resource-check", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise TimeoutError(f"no answer within {timeout:g} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    result: _T = value
    return result


def _check_timeout(owner: str, timeout: float) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(
            f"{owner}.`timeout` must be a real number, but got timeout={timeout!r} "
            f"of type {type(timeout).__name__}."
        )
    if not 0 < timeout < math.inf:
        raise ValueError(f"{owner}.`timeout` must be in (0, inf), but got timeout={timeout!r}.")


def _scheme_problem(value: str, scheme: str) -> str:
    """What is wrong with a value's scheme, with a hint for the usual slips."""
    if not scheme:
        problem = f"{value!r} has no scheme"
        if value.endswith((".db", ".sqlite", ".sqlite3")):
            problem += f" (a SQLite file is written sqlite:///{value})"
        return problem
    problem = f"{value!r} has the scheme {scheme!r}"
    if scheme.split("+", 1)[0] == "postgres":
        problem += " (SQLAlchemy spells it postgresql://)"
    return problem


def _hide_url_password(uri: str) -> str:
    """``uri`` with the password of its ``user:password@`` part shown as ``***``."""
    return re.sub(r"(://[^/:@]*):[^/@]*@", r"\1:***@", uri, count=1)


def _writable(folder: str) -> bool:
    """Whether files can be created in ``folder`` (write and search permission)."""
    return os.access(folder, os.W_OK | os.X_OK)


def _one_line(err: object) -> str:
    """An error's text on one line (drivers' messages span several)."""
    return " ".join(str(err).split()) or type(err).__name__


def _label(flag: str) -> str:
    """``--flag`` for a flag's name; an environment variable's name or ``--x`` as it is."""
    return flag if flag.startswith(("-", "`")) or flag.isupper() else f"--{flag}"
