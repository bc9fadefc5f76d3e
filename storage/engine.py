"""Engines that never answer "database is locked", and schema upgrades that many processes can race.

SQLite: every connection gets WAL (readers never block the writer), foreign keys, a 30 s busy timeout
and synchronous=NORMAL (durable at each WAL checkpoint, fast commits). pysqlite's own transaction
handling is switched off and we emit BEGIN ourselves: plain (deferred) ``BEGIN`` for reads, and
``BEGIN IMMEDIATE`` for writes, which takes the write lock up front. Why: a deferred transaction that
reads and then writes must *upgrade* its lock, and SQLite fails such an upgrade at once with SQLITE_BUSY
(busy_timeout cannot help, it would deadlock); taking the lock first makes concurrent writers queue.
Writes therefore go through :func:`writer`, an engine view whose connections carry the option.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from .errors import SchemaTooNew, StorageError
from .paths import redact_url

BEGIN_OPTION = "storage_begin_immediate"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant works: it names the PostgreSQL advisory lock that serialises concurrent schema upgrades.
_PG_MIGRATION_LOCK = 0x50524F4D  # "PROM"


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with the settings above (file folders are created as needed)."""
    try:
        u = make_url(url)
    except ArgumentError as exc:
        raise StorageError(f"database URL {redact_url(url)!r} is not a valid SQLAlchemy URL: {exc}") from None
    if u.get_backend_name() != "sqlite":
        try:
            return create_engine(u, pool_pre_ping=True, pool_size=2, max_overflow=4)
        except ModuleNotFoundError as exc:
            raise StorageError(f"database URL {redact_url(url)!r} needs the driver {exc.name!r}, which is not "
                               f"installed") from None
        except ArgumentError as exc:
            raise StorageError(f"database URL {redact_url(url)!r}: {exc}") from None
    memory = u.database in (None, "", ":memory:")
    if not memory and not str(u.database).startswith("file:"):
        Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
    if memory:  # one shared connection, or every checkout would see a new empty database
        kwargs["poolclass"] = StaticPool
    engine = create_engine(u, **kwargs)
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def writer(engine: Engine) -> Engine:
    """The same engine (pool, events) whose transactions start with ``BEGIN IMMEDIATE`` on SQLite."""
    return engine.execution_options(**{BEGIN_OPTION: True})


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see module docstring)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(BEGIN_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def upgrade_schema(engine: Engine) -> None:
    """Bring the schema to Alembic ``head``; safe when many processes call it at once.

    The check and the upgrade run in one write transaction: on SQLite ``BEGIN IMMEDIATE`` makes the
    others wait, and DDL is transactional, so a process killed mid-upgrade leaves the old schema; on
    PostgreSQL an advisory transaction lock does the same. Whoever comes second finds ``head`` and does
    nothing, which is also the fast path of every later start.
    """
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    scripts = ScriptDirectory.from_config(cfg)
    head = scripts.get_current_head()
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:   # outside any transaction, where SQLite honours it (see _foreign_keys)
            _foreign_keys(conn, False)
        try:
            with conn.execution_options(**{BEGIN_OPTION: True}).begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                current = MigrationContext.configure(conn).get_current_revision()
                if current == head:
                    return
                if current is not None and current not in {r.revision for r in scripts.walk_revisions()}:
                    # Alembic would fail with a traceback; leaving the transaction by raising changes nothing
                    raise SchemaTooNew(f"this database was written by a newer Prompt Studio (schema {current}); "
                                       f"upgrade Prompt Studio to open it, nothing was changed")
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if sqlite:
                    bad = conn.exec_driver_sql("PRAGMA foreign_key_check").first()
                    if bad is not None:   # raising rolls the whole upgrade back
                        raise StorageError(f"schema upgrade would break a reference: {tuple(bad)}")
        finally:
            if sqlite:
                _foreign_keys(conn, True)


def _foreign_keys(conn: Connection, on: bool) -> None:
    """Switch SQLite's foreign keys on the raw connection, outside SQLAlchemy's transaction.

    Why off during upgrades: SQLite cannot alter a constraint, so a migration copies the table and drops the
    old one, and dropping a table deletes its rows first — with foreign keys on, that delete would cascade
    to every version of every template (``ON DELETE CASCADE``). The copy keeps the ids, and
    ``PRAGMA foreign_key_check`` proves every reference still holds before the upgrade commits.
    """
    conn.connection.dbapi_connection.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def dispose_after_fork(engine: Engine, owner_pid: int) -> bool:
    """Drop pooled connections inherited through ``fork`` (sharing them corrupts both processes)."""
    if os.getpid() != owner_pid:
        engine.dispose(close=False)
        return True
    return False
