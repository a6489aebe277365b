"""The embedded library's data directory: the names of its files and the lock file its writers hold."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from index.errors import LibraryBusy

DATABASE_FILE = "library.sqlite3"
VECTORS_FILE = "vectors.faiss"
KEYWORDS_FILE = "keywords.postings"
LOCK_FILE = "write.lock"


class WriterLock:
    """The data directory's lock file: one writer at a time among the processes of this machine."""

    def __init__(self, data_dir: Path, timeout: float) -> None:
        """``timeout``: seconds ``acquire`` waits before LibraryBusy."""
        self.data_dir = data_dir
        self.timeout = timeout
        self._lock = FileLock(str(data_dir / LOCK_FILE), timeout=timeout, thread_local=False)

    def acquire(self) -> None:
        """Take the lock, or raise LibraryBusy when another process held it for all of ``timeout``."""
        try:
            self._lock.acquire()
        except Timeout:
            raise LibraryBusy(
                f"The library in {self.data_dir} is being changed by another process "
                f"(waited {self.timeout:g} s); try again in a moment.") from None

    def release(self) -> None:
        self._lock.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        """The lock, taken for the block."""
        self.acquire()
        try:
            yield
        finally:
            self.release()
