"""Recent answers kept per chat so that "more" and "sources" buttons can page through them: in process
memory for the embedded store (one bot process), in the shared database for the server store (several
replicas, any of which may get the button press: index/stores/postgres/results.py)."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from index.config import Settings
from index.search.hybrid import Answer
from index.stores.embedded.store import Store

if TYPE_CHECKING:
    from index.library import Library


class ResultStore(Protocol):
    """Answers keyed by (chat, token)."""

    def put(self, chat_id: int, answer: Answer) -> str: ...

    def update(self, chat_id: int, token: str, answer: Answer) -> None: ...

    def get(self, chat_id: int, token: str) -> Answer | None: ...


def results_for(library: "Library", settings: Settings) -> ResultStore:
    """The result store that fits the library's store: memory for SQLite, the database for PostgreSQL."""
    if isinstance(library.store, Store):
        return ResultCache()
    from index.stores.postgres.store import PostgresStore  # psycopg is only installed for the server store

    if isinstance(library.store, PostgresStore):
        from index.stores.postgres.results import PgResultStore

        return PgResultStore(library.store, ttl=timedelta(hours=settings.postgres.result_ttl_hours),
                             max_per_chat=settings.postgres.result_max_per_chat)
    raise TypeError(f"no result store for a library kept in {type(library.store).__name__}")


class ResultCache:
    """A bounded store of answers keyed by (chat, token); a token from another chat finds nothing."""

    def __init__(self, max_entries: int = 2000) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, str], Answer] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, chat_id: int, answer: Answer) -> str:
        """Keep an answer (forgetting the least recently used beyond ``max_entries``); returns its token."""
        token = secrets.token_urlsafe(6)
        with self._lock:
            self._entries[(chat_id, token)] = answer
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return token

    def update(self, chat_id: int, token: str, answer: Answer) -> None:
        """Replace a kept answer (e.g. with more sentences marked); a token that expired stays gone."""
        with self._lock:
            if (chat_id, token) in self._entries:
                self._entries[(chat_id, token)] = answer

    def get(self, chat_id: int, token: str) -> Answer | None:
        """The kept answer, or None when the token is unknown, expired or from another chat."""
        with self._lock:
            answer = self._entries.get((chat_id, token))
            if answer is not None:
                self._entries.move_to_end((chat_id, token))
            return answer
