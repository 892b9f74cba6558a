"""The tracking store, made usable once before anything runs on it.

MLflow creates a new SQLite store on first use, in place: two processes doing that at once race
(`table ... already exists`), and a process killed during it leaves a half-migrated file that
every later command fails on. `prepare_store` instead creates a new SQLite store aside (a
temporary file in the same folder, fully migrated there) and moves it into place atomically,
under a file lock that makes concurrent first users wait for the one creating it. An existing
store left broken by such a kill (before llsbench did this) is detected and named in one line.
Other stores (an MLflow server, a database server) are created by their owners.
"""
from __future__ import annotations

import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

import mlflow

from llsbench.errors import LLSBenchError

SQLITE_PREFIX = "sqlite:///"
_CREATING = ".creating-"  # infix of the aside files a store is created in
_prepared: set[str] = set()


class BrokenStoreError(LLSBenchError):
    """A SQLite store MLflow cannot open (a creation or migration that was killed halfway)."""


def prepare_store(tracking_uri: str | None = None, artifact_root: str | None = None) -> str:
    """The resolved tracking URI, its SQLite store created safely if new (once per process)."""
    uri = tracking_uri or mlflow.get_tracking_uri()
    if uri in _prepared:
        return uri
    path = sqlite_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(path.with_name(f".{path.name}.lock")):
            _remove_aside_files(path)  # left by a creator that was killed: it held this lock
            if _is_new(path):
                _create_aside(path, artifact_root)
            _check_usable(path, uri)
    _prepared.add(uri)
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///...` URI (relative to the working directory); None otherwise."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    name = unquote(uri[len(SQLITE_PREFIX):].split("?", 1)[0])
    return Path(name).absolute() if name and name != ":memory:" else None


@contextmanager
def _file_lock(lock_path: Path):
    try:
        import fcntl
    except ImportError:  # no flock (Windows): MLflow's own creation, without the cross-process lock
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_aside_files(path: Path) -> None:
    for leftover in path.parent.glob(f".{path.name}{_CREATING}*"):
        leftover.unlink(missing_ok=True)


def _tables(path: Path) -> set[str]:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {row[0] for row in connection.execute("select name from sqlite_master where type = 'table'")}
    finally:
        connection.close()


def _is_new(path: Path) -> bool:
    return not path.exists() or path.stat().st_size == 0 or not _tables(path)


def _create_aside(path: Path, artifact_root: str | None) -> None:
    """A complete, migrated store in a temporary file beside `path`, then renamed onto it."""
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    aside = path.with_name(f".{path.name}{_CREATING}{os.getpid()}")
    store = SqlAlchemyStore(SQLITE_PREFIX + str(aside), artifact_root or DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH)
    store.engine.dispose()
    os.replace(aside, path)


def _check_usable(path: Path, uri: str) -> None:
    from mlflow.store.db.utils import _get_latest_schema_revision

    tables = _tables(path)
    leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
    revision = _revision(path) if "alembic_version" in tables else None
    if leftovers or revision is None:
        what = f"table {leftovers[0]} left by a killed migration" if leftovers else "no schema version"
        raise BrokenStoreError(f"the tracking store {path} is half-created ({what}); move it aside "
                               f"(mv {path} {path}.broken) and run again, or use another --tracking-uri")
    head = _get_latest_schema_revision()
    if revision != head:
        raise BrokenStoreError(f"the tracking store {path} has schema {revision}, this MLflow needs {head}: back it "
                               f"up, then run `mlflow db upgrade {uri}` (or move it aside if it holds nothing)")


def _revision(path: Path) -> str | None:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = connection.execute("select version_num from alembic_version").fetchone()
        return row[0] if row else None
    finally:
        connection.close()
