"""Feed locks for the embedded store: one process serves the library and its FeedPoller already polls
one feed at a time, so every lock is granted (the server store's are index/stores/postgres/feed_locks.py)."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator


class ProcessFeedLocks:
    """The embedded store: one process polls, one feed at a time (FeedPoller's own lock), so always True."""

    @asynccontextmanager
    async def hold(self, feed_id: int, wait: float = 0.0) -> AsyncIterator[bool]:
        """Always granted."""
        yield True
