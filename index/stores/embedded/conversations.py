"""Each chat's recent turns in process memory, beside the button results (index/stores/embedded/results.py):
an embedded library is served by one bot process (the server store keeps them in the shared database:
index/stores/postgres/conversations.py)."""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Sequence

from index.stores.base import Turn


class MemoryConversations:
    """The newest ``turns`` turns of each chat, kept ``ttl`` after the chat's last turn; at most
    ``max_chats`` chats (the least recently active forgotten first)."""

    def __init__(self, ttl: timedelta, turns: int, max_chats: int = 10_000) -> None:
        self.ttl = ttl
        self.turns = turns
        self.max_chats = max_chats
        self._chats: OrderedDict[int, list[Turn]] = OrderedDict()
        self._lock = threading.Lock()

    def recent(self, chat_id: int, now: datetime) -> list[Turn]:
        with self._lock:
            turns = self._chats.get(chat_id)
            if not turns:
                return []
            if now - turns[-1].asked_at > self.ttl:
                del self._chats[chat_id]
                return []
            return list(turns)

    def add(self, chat_id: int, turn: Turn) -> None:
        with self._lock:
            turns = self._chats.get(chat_id, [])
            if turns and turn.asked_at - turns[-1].asked_at > self.ttl:
                turns = []  # the old conversation had expired: this turn starts a new one
            self._chats[chat_id] = (turns + [turn])[-self.turns:]
            self._chats.move_to_end(chat_id)
            while len(self._chats) > self.max_chats:
                self._chats.popitem(last=False)

    def attach_messages(self, chat_id: int, token: str, message_ids: Sequence[int]) -> None:
        with self._lock:
            turns = self._chats.get(chat_id, [])
            for number, turn in enumerate(turns):
                if turn.token == token:
                    turns[number] = dataclasses.replace(turn, message_ids=turn.message_ids + tuple(message_ids))

    def by_message(self, chat_id: int, message_id: int) -> Turn | None:
        with self._lock:
            return next((turn for turn in reversed(self._chats.get(chat_id, [])) if message_id in turn.message_ids),
                        None)

    def forget(self, chat_id: int) -> None:
        with self._lock:
            self._chats.pop(chat_id, None)
