"""Recent answers kept in process memory, so that "more" and "sources" buttons can page through them:
the embedded store has one bot process (the server store keeps them in the shared database:
index/stores/postgres/results.py)."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict

from index.search.hybrid import Answer


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
