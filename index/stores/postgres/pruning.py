"""Expired rows of the tables replicas share (button answers, conversations) deleted now and then."""

from __future__ import annotations

import threading
import time
from typing import Callable

# Seconds between prunes, and rows deleted (at most) by one.
PRUNE_SECONDS = 60.0
PRUNE_BATCH = 1000


class Pruner:
    """Runs ``prune`` (which deletes at most PRUNE_BATCH rows and says how many) at most every
    PRUNE_SECONDS, from whichever thread calls ``maybe`` first; again at once when a full batch went."""

    def __init__(self, prune: Callable[[], int]) -> None:
        self._prune = prune
        self._next = 0.0
        self._lock = threading.Lock()

    def maybe(self) -> None:
        now = time.monotonic()
        if now < self._next or not self._lock.acquire(blocking=False):
            return
        try:
            self._next = now + PRUNE_SECONDS
            if self._prune() >= PRUNE_BATCH:
                self._next = 0.0
        finally:
            self._lock.release()
