"""Read replicas: the reads of a search go to PostgreSQL streaming standbys (``postgres.read_dsns``) while
writes, locks, migrations and every other read go to the primary.

A standby serves a read only while it is current: it is in recovery with its WAL receiver running, it has
replayed this process's own last write (the primary's WAL position after that commit), and what it has
received but not yet replayed is at most ``replica_max_lag_seconds`` old. A standby that lags or fails is
skipped, with a log line when that changes, and the read goes to the next standby or to the primary; a
failed one is tried again after ``RETRY_AFTER`` seconds. Standbys take turns."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from index.stores.postgres.rows import Row

log = logging.getLogger(__name__)
T = TypeVar("T")
# Seconds a standby that failed (refused connections, lost one, timed out) is left alone.
RETRY_AFTER = 10.0
# Seconds a standby's state is trusted before it is read again (sooner when this process wrote since).
CHECK_EVERY = 1.0
# Seconds to wait for a standby's connection before reading the primary instead.
CONNECT_WAIT = 2.0
# A standby's state: in recovery, WAL receiver running, replayed WAL position (bytes), seconds behind.
STATE_SQL = """
SELECT pg_is_in_recovery(),
       EXISTS (SELECT 1 FROM pg_stat_wal_receiver),
       pg_last_wal_replay_lsn() - '0/0'::pg_lsn,
       CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END"""


@dataclass
class Standby:
    """One read replica: its pool and what was last seen of it."""

    where: str  # for people and logs (never a password)
    pool: ConnectionPool[psycopg.Connection[Row]]
    checked_at: float = -math.inf
    replayed: int = -1  # WAL position replayed when last checked (bytes); -1: unknown
    usable: bool = True  # by the last check
    failed_until: float = 0.0
    reason: str = ""  # why it was last skipped ("" while it serves)
    served: int = 0  # reads it answered (a count for people and tests)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ReadReplicas:
    """Sends reads to current standbys, and to the primary when none is."""

    def __init__(self, dsns: Sequence[str], primary: ConnectionPool[psycopg.Connection[Row]],
                 configure: Callable[[psycopg.Connection[Any]], None], describe: Callable[[str], str],
                 max_lag: float, max_connections: int) -> None:
        self.primary = primary
        self.max_lag = max_lag
        self.primary_reads = 0  # reads the primary answered (no standby was current)
        self._written = -1  # the primary's WAL position after this process's last write (bytes)
        self._turns = itertools.count()
        self.standbys = [
            Standby(describe(dsn), ConnectionPool(dsn, min_size=0, max_size=max_connections, configure=configure,
                                                  timeout=CONNECT_WAIT, open=False, name=f"newsbot-read-{number}",
                                                  kwargs={"connect_timeout": max(1, round(CONNECT_WAIT))}))
            for number, dsn in enumerate(dsns, 1)]
        for standby in self.standbys:
            standby.pool.open(wait=False)  # a standby that is down does not hold the start back

    def close(self) -> None:
        for standby in self.standbys:
            standby.pool.close()

    def wrote(self, connection: psycopg.Connection[Any]) -> None:
        """Note the primary's WAL position after a commit on ``connection``: standbys must replay it before
        they serve this process again (it reads its own writes)."""
        row = connection.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn").fetchone()
        if row is not None:
            self._written = max(self._written, int(row[0]))

    def read(self, work: Callable[[psycopg.Connection[Row]], T]) -> T:
        """``work`` run on a current standby's connection, or on the primary's when none is current."""
        count = len(self.standbys)
        first = next(self._turns) % count if count else 0
        for standby in self.standbys[first:] + self.standbys[:first]:
            if time.monotonic() < standby.failed_until:  # failed a moment ago: not even a connection is asked for
                continue
            try:
                with standby.pool.connection(timeout=CONNECT_WAIT) as connection:
                    if not self._current(standby, connection):
                        continue
                    result = work(connection)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                self._skip(standby, f"failed ({str(exc).strip() or type(exc).__name__})",
                           retry_at=time.monotonic() + RETRY_AFTER)
                continue
            except psycopg.errors.SerializationFailure as exc:  # cancelled by a conflict with replay
                log.info("read on the standby %s cancelled (%s); reading the primary", standby.where,
                         str(exc).strip())
                break
            standby.served += 1
            return result
        with self.primary.connection() as connection:
            self.primary_reads += 1
            return work(connection)

    def _current(self, standby: Standby, connection: psycopg.Connection[Row]) -> bool:
        """True when the standby may serve (its state read again unless read just now, since the last write)."""
        now = time.monotonic()
        with standby.lock:
            if now - standby.checked_at < CHECK_EVERY and standby.replayed >= self._written:
                return standby.usable
        recovering, receiving, replayed, lag = connection.execute(STATE_SQL).fetchone()
        replayed = -1 if replayed is None else int(replayed)
        quietly = False  # a standby a moment behind this process's own write is no news
        if not recovering:
            reason = "it is not a standby (not in recovery: promoted, or a primary)"
        elif not receiving:
            reason = "it lags: its WAL receiver is not running (cut off from the primary)"
        elif replayed < self._written:
            reason, quietly = "it has not yet replayed this process's last write", True
        elif lag is None or float(lag) > self.max_lag:
            reason = f"it lags {'an unknown time' if lag is None else f'{float(lag):.1f} s'} behind the primary"
        else:
            reason = ""
        with standby.lock:
            standby.checked_at, standby.usable, standby.replayed = now, not reason, replayed
        self._log_change(standby, reason, logging.INFO if quietly else logging.WARNING)
        return not reason

    def _skip(self, standby: Standby, reason: str, retry_at: float) -> None:
        with standby.lock:
            standby.failed_until, standby.usable, standby.checked_at = retry_at, False, -math.inf
        self._log_change(standby, reason, logging.WARNING)
        try:
            standby.pool.check()  # drop the pool's other connections that died with this one
        except psycopg.Error:
            pass

    @staticmethod
    def _log_change(standby: Standby, reason: str, level: int) -> None:
        """One log line when a standby stops or starts serving (not one per read)."""
        if reason == standby.reason:
            return
        if reason:
            log.log(level, "read replica %s skipped, reading the primary instead: %s", standby.where, reason)
        else:
            log.info("read replica %s serves searches again", standby.where)
        standby.reason = reason
