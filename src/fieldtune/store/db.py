"""Engines and migrations: SQLite by default (``runs/fieldtune.db``), PostgreSQL by URL.

The URL comes from the argument, else ``FIELDTUNE_DB_URL``, else the default SQLite file.
Opening a store brings its schema to the newest Alembic revision, once, under a lock, so
several server workers starting together never race on a migration.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from ..errors import UserError

DB_URL_ENV = "FIELDTUNE_DB_URL"
DEFAULT_URL = "sqlite:///runs/fieldtune.db"
MIGRATIONS = Path(__file__).parent / "migrations"
_WRITERS: dict[str, threading.RLock] = {}  # SQLite database -> this process's write lock (every engine on it)
_WRITERS_GUARD = threading.Lock()


def database_url(url: str | None = None) -> str:
    return url or os.environ.get(DB_URL_ENV) or DEFAULT_URL


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise UserError(
            f"not a database URL: {url!r}",
            hint=f"use sqlite:///path/to/file.db or postgresql+psycopg://user:pass@host/db (env {DB_URL_ENV})",
        ) from None
    if parsed.drivername == "postgresql":  # psycopg 3 is the driver we ship
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except ImportError as e:
        raise UserError(f"no driver for {parsed.drivername}: {e}", hint="pip install 'psycopg[binary]'") from None


@contextmanager
def write_lock(engine: Engine) -> Iterator[None]:
    """On SQLite, one writing thread of this process at a time (a no-op on PostgreSQL).

    SQLite has one write lock per database; threads that find it taken wait in SQLite's busy handler,
    which sleeps 1, 2, 5 ... 100 ms between tries. Eight server threads logging conversations at once
    spent up to 0.4 s there (5% of three-write exchanges over 30 ms, none alone); a Python lock wakes
    the next writer as soon as the last commits. The lock is per database file, shared by every engine
    (store object) on it, and re-entrant. Other processes still wait in the busy handler.
    """
    if engine.dialect.name != "sqlite":
        yield
        return
    with _WRITERS_GUARD:
        lock = _WRITERS.setdefault(str(engine.url.database), threading.RLock())
    with lock:
        yield


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """``engine.begin()`` under :func:`write_lock`."""
    with write_lock(engine), engine.begin() as conn:
        yield conn


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer (the server logs while we read)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> None:
    """Upgrade the schema to head (no-op when already there)."""
    url = safe_url(engine.url.render_as_string(hide_password=False))
    try:
        if current_revision(engine) == head_revision():
            return
        with _migration_lock(engine), engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7172381)")  # one migrator at a time
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except OperationalError as e:
        raise UserError(
            f"cannot open the database {url}: {str(e.orig).strip().splitlines()[0]}",
            hint=f"check {DB_URL_ENV} (server running? credentials? folder writable?)",
        ) from None


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """A file lock next to a SQLite database (PostgreSQL uses an advisory lock instead)."""
    db = engine.url.database if engine.dialect.name == "sqlite" else None
    if not db or db == ":memory:":
        yield
        return
    with open(f"{db}.migrate.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
