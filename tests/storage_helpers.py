"""Storage test helpers: the ``store`` fixtures (SQLite, then PostgreSQL) and ``wait_for``.

Here under tests/, not in the storage package, so shipped code never imports pytest. ``PostgresCluster``
starts a throwaway PostgreSQL server (Debian's ``postgresql`` package) on a free loopback port in a temporary
folder, so the same scenarios run against a real server without touching any system cluster. Test modules
import the fixtures they use by name: ``store`` runs a test on SQLite and, when a server can be started, on
PostgreSQL as well.
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import Store, open_store

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_unavailable() -> str | None:
    """Why a throwaway server cannot be started here, or None when it can."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    if not any((d / "initdb").exists() for d in PG_BIN_DIRS) and not shutil.which("initdb"):
        return "PostgreSQL server binaries not found (apt-get install postgresql)"
    if os.geteuid() == 0 and not shutil.which("runuser"):
        return "running as root and runuser is missing (initdb refuses to run as root)"
    return None


class PostgresCluster:
    """``initdb`` + ``pg_ctl start`` in a temp dir; trust auth on 127.0.0.1 only; removed on stop."""

    def __init__(self) -> None:
        bindir = next((d for d in PG_BIN_DIRS if (d / "initdb").exists()), None)
        self.bin = bindir or Path(shutil.which("initdb") or "initdb").parent
        self.dir = Path(tempfile.mkdtemp(prefix="ps-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self._n = 0

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse root: run as the package's user
            shutil.chown(self.dir, "postgres")
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresCluster:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database's URL (one per test keeps tests independent)."""
        import psycopg

        self._n += 1
        name = f"t{os.getpid()}_{self._n}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@functools.cache
def shared_cluster() -> PostgresCluster | str:
    """One throwaway server per test process (started on first use, stopped at exit), or the reason
    none can be started. Cached because every test module imports the fixtures separately."""
    reason = postgres_unavailable()
    if reason:
        return reason
    cluster = PostgresCluster()
    try:
        cluster.start()
    except (subprocess.SubprocessError, OSError) as exc:
        log = cluster.dir / "log"
        detail = log.read_text()[-500:] if log.exists() else str(exc)
        cluster.stop()
        return f"could not start a throwaway server: {detail}"
    atexit.register(cluster.stop)
    return cluster


@pytest.fixture
def pg_cluster() -> PostgresCluster:
    cluster = shared_cluster()
    if isinstance(cluster, str):
        pytest.skip(f"PostgreSQL tests skipped: {cluster}")
    return cluster


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store on SQLite, then on PostgreSQL (skipped with the reason when no server)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'studio.db'}"
    else:
        cluster = shared_cluster()
        if isinstance(cluster, str):
            pytest.skip(f"PostgreSQL tests skipped: {cluster}")
        url = cluster.new_database()
    st = open_store(url, tmp_path / "artifacts")
    yield st
    st.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    st = open_store(f"sqlite:///{tmp_path / 'studio.db'}", tmp_path / "artifacts")
    yield st
    st.close()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.02) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true or ``timeout``; for tests that coordinate with subprocesses."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
