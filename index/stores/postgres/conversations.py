"""Each chat's recent turns in PostgreSQL, so that a follow-up is understood by any bot replica.

Same interface as MemoryConversations (index/stores/embedded/conversations.py). Rows live in
``bot_conversations`` (migration 0004): each chat keeps its newest ``turns`` rows, trimmed as it adds
one; the conversation ends ``ttl`` after its newest turn, and ended ones are deleted in bounded batches
at most once a minute per process."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from index.stores.base import Turn
from index.stores.postgres.pruning import PRUNE_BATCH, Pruner
from index.stores.postgres.store import PostgresStore

_COLUMNS = "question, asked_at, context_words, article_ids, passage_ids, title, token, message_ids"


def _turn(row: Sequence[Any]) -> Turn:
    question, asked_at, words, articles, passages, title, token, messages = row
    return Turn(question=question, asked_at=asked_at, context_words=tuple(words), article_ids=tuple(articles),
                passage_ids=tuple(passages), title=title, token=token, message_ids=tuple(messages))


class PgConversations:
    """Turns keyed by chat in the shared database."""

    def __init__(self, store: PostgresStore, ttl: timedelta, turns: int) -> None:
        self.store = store
        self.ttl = ttl
        self.turns = turns
        self._pruner = Pruner(self.prune)

    def recent(self, chat_id: int, now: datetime) -> list[Turn]:
        with self.store.connection() as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM bot_conversations WHERE chat_id = %s ORDER BY turn_id DESC LIMIT %s",
                (chat_id, self.turns)).fetchall()
        turns = [_turn(row) for row in reversed(rows)]
        if not turns or now - turns[-1].asked_at > self.ttl:
            return []
        return turns

    def add(self, chat_id: int, turn: Turn) -> None:
        with self.store.connection() as connection:
            # An ended conversation is not continued by this turn.
            connection.execute("DELETE FROM bot_conversations WHERE chat_id = %s AND NOT EXISTS (SELECT 1 FROM"
                               " bot_conversations WHERE chat_id = %s AND asked_at >= %s)",
                               (chat_id, chat_id, turn.asked_at - self.ttl))
            connection.execute(
                f"INSERT INTO bot_conversations(chat_id, {_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (chat_id, turn.question, turn.asked_at, list(turn.context_words), list(turn.article_ids),
                 list(turn.passage_ids), turn.title, turn.token, list(turn.message_ids)))
            connection.execute(
                "DELETE FROM bot_conversations WHERE chat_id = %s AND turn_id IN (SELECT turn_id FROM"
                " bot_conversations WHERE chat_id = %s ORDER BY turn_id DESC OFFSET %s)",
                (chat_id, chat_id, self.turns))
        self._pruner.maybe()

    def attach_messages(self, chat_id: int, token: str, message_ids: Sequence[int]) -> None:
        with self.store.connection() as connection:
            connection.execute("UPDATE bot_conversations SET message_ids = message_ids || %s::BIGINT[]"
                               " WHERE chat_id = %s AND token = %s", (list(message_ids), chat_id, token))

    def by_message(self, chat_id: int, message_id: int) -> Turn | None:
        with self.store.connection() as connection:
            row = connection.execute(
                f"SELECT {_COLUMNS} FROM bot_conversations WHERE chat_id = %s AND %s = ANY(message_ids)"
                " ORDER BY turn_id DESC LIMIT 1", (chat_id, message_id)).fetchone()
        return _turn(row) if row is not None else None

    def forget(self, chat_id: int) -> None:
        with self.store.connection() as connection:
            connection.execute("DELETE FROM bot_conversations WHERE chat_id = %s", (chat_id,))

    def prune(self, now: datetime | None = None) -> int:
        """Delete up to PRUNE_BATCH turns of conversations that ended; returns how many."""
        cutoff = (now or datetime.now(timezone.utc)) - self.ttl
        with self.store.connection() as connection:
            cursor = connection.execute(
                "DELETE FROM bot_conversations WHERE turn_id IN (SELECT turn_id FROM bot_conversations old"
                " WHERE asked_at < %s AND NOT EXISTS (SELECT 1 FROM bot_conversations newer"
                " WHERE newer.chat_id = old.chat_id AND newer.asked_at >= %s) LIMIT %s)",
                (cutoff, cutoff, PRUNE_BATCH))
            return max(cursor.rowcount, 0)
