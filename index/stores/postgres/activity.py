"""Reader activity in the shared PostgreSQL database (tables of migration 0005), so that every replica
records into and reads from the same place: a vote pressed on one replica counts on all, and a waiting
alert is taken (and sent) by exactly one replica."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import psycopg

from index.activity.sql import Connection, SharedActivitySql
from index.stores.postgres.rows import Row, placeholders
from index.stores.postgres.store import PostgresStore


class _Translating:
    """A pooled connection that takes the shared ``?`` SQL."""

    def __init__(self, connection: psycopg.Connection[Row]) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Row]:
        return self._connection.execute(placeholders(sql), tuple(params))


class PgActivity(SharedActivitySql):
    """Reader activity on the library's connection pool."""

    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        with self.store.connection() as connection:
            yield _Translating(connection)
