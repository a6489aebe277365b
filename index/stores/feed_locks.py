"""Who polls a feed: at most one process at a time per feed.

With the embedded store one process serves the library and its FeedPoller already polls one feed at a
time, so every lock is granted. With the server store several bot replicas run the polling job against
one database: each feed is polled under a PostgreSQL session advisory lock, held on one pooled
connection for the whole poll and released after, so a replica that cannot take it skips the feed (or
waits, for /subscribe). A replica that dies mid-poll loses its connection, and with it the lock."""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, AsyncContextManager, AsyncIterator, Protocol

from index.stores.embedded.store import Store

if TYPE_CHECKING:
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


class FeedLocks(Protocol):
    """Per-feed locks shared by every process polling the library's feeds."""

    def hold(self, feed_id: int, wait: float = 0.0) -> AsyncContextManager[bool]:
        """Yields True while this process holds the feed's lock, False when it could not take it in ``wait`` s."""
        ...


class ProcessFeedLocks:
    """The embedded store: one process polls, one feed at a time (FeedPoller's own lock), so always True."""

    @asynccontextmanager
    async def hold(self, feed_id: int, wait: float = 0.0) -> AsyncIterator[bool]:
        """Always granted."""
        yield True


class PgFeedLocks:
    """PostgreSQL session advisory locks, one per feed, taken without blocking the event loop."""

    def __init__(self, store: "PostgresStore") -> None:
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


def _try_lock(connection: "psycopg.Connection", key: int) -> bool:
    taken = bool(connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0])
    connection.commit()  # a session lock outlives the transaction; the connection must not idle in one
    return taken


def _unlock(connection: "psycopg.Connection", key: int, feed_id: int) -> None:
    import psycopg

    try:
        released = bool(connection.execute("SELECT pg_advisory_unlock(%s)", (key,)).fetchone()[0])
        connection.commit()
    except psycopg.Error as exc:  # a lost connection has released the lock already
        log.warning("could not release the poll lock of feed #%d: %s", feed_id, exc)
        return
    if not released:
        log.warning("the poll lock of feed #%d was no longer held", feed_id)


def feed_locks_for(store: "Store | PostgresStore") -> FeedLocks:
    """The locks that fit the library's store."""
    if isinstance(store, Store):
        return ProcessFeedLocks()
    from index.stores.postgres.store import PostgresStore  # psycopg is only installed for the server store

    if isinstance(store, PostgresStore):
        return PgFeedLocks(store)
    raise TypeError(f"no feed locks for a library kept in {type(store).__name__}")
