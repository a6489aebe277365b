"""Feed locks for the server store: at most one bot replica at a time polls a feed.

Several replicas run the polling job against one database: each feed is polled under a PostgreSQL
session advisory lock, held on one pooled connection for the whole poll and released after, so a
replica that cannot take it skips the feed (or waits, for /subscribe). A replica that dies mid-poll
loses its connection, and with it the lock."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import psycopg

from index.stores.postgres.store import PostgresStore

log = logging.getLogger(__name__)
# The upper 32 bits of every feed's advisory lock key ("feed" in ASCII); the lower 32 are the feed id.
FEED_LOCK_SPACE = 0x66656564
# Seconds between tries while waiting for a lock another process holds.
RETRY_SECONDS = 0.5


def feed_lock_key(feed_id: int) -> int:
    """The feed's 64-bit advisory lock key, apart from other advisory locks (e.g. the schema lock)."""
    return (FEED_LOCK_SPACE << 32) | (int(feed_id) & 0xFFFFFFFF)


class PgFeedLocks:
    """PostgreSQL session advisory locks, one per feed, taken without blocking the event loop."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    @asynccontextmanager
    async def hold(self, feed_id: int, wait: float = 0.0) -> AsyncIterator[bool]:
        """Try to take the feed's lock (again every RETRY_SECONDS up to ``wait``); released on leaving."""
        key = feed_lock_key(feed_id)
        deadline = time.monotonic() + wait
        with self.store.connection() as connection:
            while not _try_lock(connection, key):
                if time.monotonic() >= deadline:
                    yield False
                    return
                await asyncio.sleep(RETRY_SECONDS)
            try:
                yield True
            finally:
                _unlock(connection, key, feed_id)


def _try_lock(connection: psycopg.Connection[Any], key: int) -> bool:
    taken = bool(connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0])
    connection.commit()  # a session lock outlives the transaction; the connection must not idle in one
    return taken


def _unlock(connection: psycopg.Connection[Any], key: int, feed_id: int) -> None:
    try:
        released = bool(connection.execute("SELECT pg_advisory_unlock(%s)", (key,)).fetchone()[0])
        connection.commit()
    except psycopg.Error as exc:  # a lost connection has released the lock already
        log.warning("could not release the poll lock of feed #%d: %s", feed_id, exc)
        return
    if not released:
        log.warning("the poll lock of feed #%d was no longer held", feed_id)
