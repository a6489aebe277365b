"""Recent answers in PostgreSQL, so that a button pressed on one bot replica works on any other.

Same interface as ResultCache (index/stores/embedded/results.py). Rows live in ``bot_results`` (migration 0002): the
question, the query vector (pgvector) and the ranking as JSON (index/stores/postgres/answer_codec.py). An answer is
served for ``ttl`` after it was made; each chat keeps its ``max_per_chat`` newest, trimmed as it
adds one, and expired rows are deleted in bounded batches at most once a minute per process."""

from __future__ import annotations

import secrets
from datetime import timedelta

from psycopg.types.json import Jsonb

from index.search.hybrid import Answer
from index.stores.postgres.answer_codec import decode, encode
from index.stores.postgres.pruning import PRUNE_BATCH, Pruner
from index.stores.postgres.store import PostgresStore, as_vector

_TOKEN_TRIES = 5  # tokens tried before giving up on a fresh one (a clash is all but impossible)


class PgResultStore:
    """Answers keyed by (chat, token) in the shared database; a token from another chat finds nothing."""

    def __init__(self, store: PostgresStore, ttl: timedelta = timedelta(hours=48), max_per_chat: int = 100) -> None:
        self.store = store
        self.ttl = ttl
        self.max_per_chat = max_per_chat
        self._pruner = Pruner(self.prune)

    def put(self, chat_id: int, answer: Answer) -> str:
        """Keep an answer; returns its token (unique within the chat)."""
        vector = None if answer.query_vector is None else as_vector(answer.query_vector).reshape(-1)
        with self.store.connection() as connection:
            for _ in range(_TOKEN_TRIES):
                token = secrets.token_urlsafe(6)
                inserted = connection.execute(
                    "INSERT INTO bot_results(chat_id, token, question, query_vector, answer)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (chat_id, token) DO NOTHING RETURNING token",
                    (chat_id, token, answer.question, vector, Jsonb(encode(answer)))).fetchone()
                if inserted is not None:
                    break
            else:
                raise RuntimeError(f"no free result token for chat {chat_id} after {_TOKEN_TRIES} tries")
            connection.execute(
                "DELETE FROM bot_results WHERE chat_id = %s AND token IN (SELECT token FROM bot_results"
                " WHERE chat_id = %s ORDER BY created_at DESC, token OFFSET %s)",
                (chat_id, chat_id, self.max_per_chat))
        self._pruner.maybe()
        return token

    def update(self, chat_id: int, token: str, answer: Answer) -> None:
        """Replace a kept answer (e.g. with more sentences marked); a token that expired stays gone."""
        with self.store.connection() as connection:
            connection.execute("UPDATE bot_results SET answer = %s"
                               " WHERE chat_id = %s AND token = %s AND created_at >= now() - %s",
                               (Jsonb(encode(answer)), chat_id, token, self.ttl))

    def get(self, chat_id: int, token: str) -> Answer | None:
        """The answer with its passages as they are now; None when expired, unknown or all removed."""
        with self.store.connection() as connection:
            row = connection.cursor(binary=True).execute(
                "SELECT question, query_vector, answer FROM bot_results"
                " WHERE chat_id = %s AND token = %s AND created_at >= now() - %s",
                (chat_id, token, self.ttl)).fetchone()
        if row is None:
            return None
        question, stored_vector, data = row
        vector = stored_vector.to_numpy() if stored_vector is not None else None
        if vector is not None and vector.shape[0] != self.store.dimension:
            vector = None  # made with another embedding model: its sentences are left unmarked
        return decode(question, data, vector, self.store)

    def prune(self) -> int:
        """Delete up to PRUNE_BATCH expired answers; returns how many."""
        with self.store.connection() as connection:
            cursor = connection.execute(
                "DELETE FROM bot_results WHERE (chat_id, token) IN (SELECT chat_id, token FROM bot_results"
                " WHERE created_at < now() - %s LIMIT %s)", (self.ttl, PRUNE_BATCH))
            return max(cursor.rowcount, 0)
