"""The store contract: what every store does, the rows it returns, and the Backend that bundles a store
with its indexes and writer lock.

Two stores implement it: SqliteStore (index/stores/embedded/store.py, with EmbeddedBackend in
index/stores/embedded/backend.py) and PostgresStore (index/stores/postgres/store.py, with PostgresBackend
in index/stores/postgres/backend.py). index/stores/backends.py picks one, once, from ``library.store``;
everything else talks to the protocols here."""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncContextManager, Protocol, Sequence

import numpy as np

from index.articles import Article, ArticleDraft, parse_date, utc_now

if TYPE_CHECKING:
    from index.activity.records import AskedQuestion, Forgotten, Outgoing, Topic
    from index.config import Settings
    from index.embedding.embedder import Embedder
    from index.search.hybrid import Answer

log = logging.getLogger(__name__)

# Words too common to help a keyword search; they only make it slower.
_STOPWORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have he her his how i if in into is it "
    "its me my no not of on or our she so than that the their them then there these they this to was we were what "
    "when where which who whom whose why will with would you your".split()
)
_WORDS = re.compile(r"\w+", re.UNICODE)


# -- rows -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PassageRow:
    """A passage with what a search result needs of its article."""

    id: int
    article_id: int
    ordinal: int
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class PassageOrigin:
    """What ranking a candidate passage needs of it without its text: its article and that article's date."""

    article_id: int
    published: date | None


class Row(Protocol):
    """A result row read by column name or position (sqlite3.Row, or postgres.rows.Row)."""

    def __getitem__(self, key: int | str) -> Any: ...

    def keys(self) -> list[str]: ...


class Transaction(Protocol):
    """One open transaction taking SQLite-style SQL (``?`` placeholders), like a sqlite3 connection."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> Any: ...


def article_fields(draft: ArticleDraft, identity: str, digest: str, added_by: str,
                   minhash: np.ndarray | None) -> tuple[object, ...]:
    """An article's column values, in the order of both stores' articles table (id aside)."""
    return (identity, digest, draft.title, draft.text, draft.url,
            draft.published.isoformat() if draft.published else None, draft.source, draft.author,
            added_by, utc_now().isoformat(timespec="seconds"),
            None if minhash is None else np.asarray(minhash, dtype=np.uint32).tobytes())


def article_from_row(row: Row) -> Article:
    """An article from a row of ``articles`` with a ``passage_count`` column (either store)."""
    return Article(
        id=int(row["id"]), title=row["title"], text=row["text"], url=row["url"],
        published=parse_date(row["published"]), source=row["source"], author=row["author"],
        added_by=row["added_by"], added_at=datetime.fromisoformat(row["added_at"]),
        passage_count=int(row["passage_count"]),
    )


# -- keyword search ---------------------------------------------------------------------------------------
def query_words(question: str) -> list[str]:
    """The question's content words, once each (all its words when it has no content word)."""
    words = [w for w in _WORDS.findall(question.casefold()) if w not in _STOPWORDS]
    if not words:
        words = _WORDS.findall(question.casefold())
    return list(dict.fromkeys(words))[:64]


def rarest_within(matches: dict[str, int], budget: int) -> list[str]:
    """The rarest words whose matches add up to at most ``budget`` passages (none when even the rarest
    matches more): with a keyword budget, only passages holding one of them are ranked."""
    chosen: list[str] = []
    total = 0
    for word in sorted(matches, key=matches.__getitem__):
        if total + matches[word] > budget:
            break
        chosen.append(word)
        total += matches[word]
    return chosen


class SharedSql:
    """What both stores say in the same SQL, run through each store's own ``query`` and ``transaction``;
    a store supplies the few statements its dialect words differently (the ``_`` methods)."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Transaction]:
        raise NotImplementedError

    def _insert_article(self, db: Transaction, fields: tuple[Any, ...]) -> int:
        """Insert an article row of ``article_fields``; its new id."""
        raise NotImplementedError

    def _delete_passages(self, db: Transaction, article_id: int) -> list[int]:
        """Delete an article's passages; their ids."""
        raise NotImplementedError

    def _insert_passages(self, db: Transaction, article_id: int, spans: Sequence[tuple[int, int]],
                         bodies: Sequence[str], vectors: np.ndarray) -> list[int]:
        """Insert an article's passages in order; their new ids."""
        raise NotImplementedError

    def save_article(self, draft: ArticleDraft, *, identity: str, digest: str, added_by: str,
                     spans: Sequence[tuple[int, int]], bodies: Sequence[str], vectors: np.ndarray,
                     minhash: np.ndarray | None = None,
                     replace_id: int | None = None) -> tuple[int, list[int], list[int]]:
        """Insert (or replace) an article with its passages in one transaction.

        Returns the article id, the new passage ids and the passage ids that were removed."""
        fields = article_fields(draft, identity, digest, added_by, minhash)
        with self.transaction() as db:
            removed: list[int] = []
            if replace_id is not None:
                removed = self._delete_passages(db, replace_id)
                db.execute("UPDATE articles SET identity=?, content_hash=?, title=?, text=?, url=?, published=?,"
                           " source=?, author=?, added_by=?, added_at=?, minhash=? WHERE id = ?",
                           (*fields, replace_id))
                article_id = replace_id
            else:
                article_id = self._insert_article(db, fields)
            passage_ids = self._insert_passages(db, article_id, spans, bodies, vectors)
        return article_id, passage_ids, removed

    def delete_article(self, article_id: int) -> list[int]:
        """Delete an article and its passages; returns the removed passage ids."""
        with self.transaction() as db:
            removed = self._delete_passages(db, article_id)
            db.execute("DELETE FROM articles WHERE id = ?", (article_id,))
        return removed

    def find_by_identity(self, identity: str) -> Row | None:
        """The article stored under a canonical URL or title key: its id and content hash."""
        rows = self.query("SELECT id, content_hash FROM articles WHERE identity = ?", (identity,))
        return rows[0] if rows else None

    def find_alias(self, identity: str) -> int | None:
        """The article a republished copy's identity points to."""
        rows = self.query("SELECT article_id FROM article_aliases WHERE identity = ?", (identity,))
        return int(rows[0][0]) if rows else None

    def signatures(self) -> list[tuple[int, np.ndarray]]:
        """Every article's near-duplicate signature."""
        rows = self.query("SELECT id, minhash FROM articles WHERE minhash IS NOT NULL")
        return [(int(r[0]), np.frombuffer(r[1], dtype=np.uint32).copy()) for r in rows]

    def find_by_hash(self, digest: str) -> int | None:
        """An article with exactly this text, whatever its URL."""
        rows = self.query("SELECT id FROM articles WHERE content_hash = ? LIMIT 1", (digest,))
        return int(rows[0]["id"]) if rows else None

    def get_article(self, article_id: int) -> Article | None:
        rows = self.query(
            "SELECT a.*, (SELECT COUNT(*) FROM passages p WHERE p.article_id = a.id) AS passage_count"
            " FROM articles a WHERE a.id = ?", (article_id,))
        return article_from_row(rows[0]) if rows else None

    def list_articles(self, offset: int = 0, limit: int = 20) -> list[Article]:
        """Articles newest first (by publication date, then by when they were added)."""
        rows = self.query(
            "SELECT a.*, (SELECT COUNT(*) FROM passages p WHERE p.article_id = a.id) AS passage_count"
            " FROM articles a ORDER BY a.published IS NULL, a.published DESC, a.added_at DESC, a.id DESC"
            " LIMIT ? OFFSET ?", (limit, offset))
        return [article_from_row(row) for row in rows]

    def count_articles(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM articles")[0][0])

    def count_passages(self) -> int:
        return int(self.query("SELECT COUNT(*) FROM passages")[0][0])

    def newest_date(self) -> str | None:
        """The latest publication date (ISO text), or None for an empty library."""
        rows = self.query("SELECT MAX(published) FROM articles")
        return rows[0][0] if rows else None


class KeywordSearch(Protocol):
    """Ranked keyword matches for a question: (passage id, score where higher is better), best first."""

    def lexical_search(self, question: str, limit: int) -> list[tuple[int, float]]: ...


class VectorSearch(Protocol):
    """The passages' vectors, searchable by cosine similarity (a FAISS index, or pgvector's HNSW index)."""

    @property
    def exact(self) -> bool:
        """True when search is exhaustive."""
        ...

    @property
    def layout(self) -> str:
        """The index's layout, for people."""
        ...

    def __len__(self) -> int: ...

    def outgrown(self, count: int | None = None) -> bool:
        """True when ``count`` vectors (default: those held) call for another layout."""
        ...

    def save(self, path: Path) -> None:
        """Write what is held in memory, if anything."""

    def ids(self) -> np.ndarray:
        """The passage ids that have a vector."""
        ...

    def add(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Hold these passages' vectors."""

    def remove(self, ids: Sequence[int] | np.ndarray) -> int:
        """Forget these passages' vectors; returns how many were held."""
        ...

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k nearest passages as (passage id, cosine similarity), best first."""
        ...

    def lookup(self, passage_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """The vectors of those of these passages that have one, by passage id."""
        ...

    def reconstruct(self, passage_ids: Sequence[int]) -> np.ndarray:
        """The vectors in the order asked; a passage without one is a KeyError."""
        ...


# -- the store --------------------------------------------------------------------------------------------
class Store(Protocol):
    """Articles, passages with their vectors, feeds and meta in one database; every change is one transaction."""

    def close(self) -> None:
        """Close the connections."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """BEGIN ... COMMIT around the block, rolled back on any error; SQL with ``?`` placeholders."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows (read like sqlite3.Row) of one statement with ``?`` placeholders."""
        ...

    def get_meta(self, key: str) -> str | None:
        """A meta value, or None when unset."""
        ...

    def set_meta(self, key: str, value: str, db: Any = None) -> None:
        """Set a meta value, inside the transaction ``db`` when given (else in one of its own)."""

    def data_version(self) -> int:
        """A number that changes whenever another connection (or process) commits."""
        ...

    def find_by_identity(self, identity: str) -> Row | None:
        """The article with this identity (its ``id`` and ``content_hash``), if stored."""
        ...

    def find_alias(self, identity: str) -> int | None:
        """The article an alias address points at."""
        ...

    def add_alias(self, identity: str, article_id: int) -> None:
        """Point an address at a stored article (a recognised copy of it)."""

    def signatures(self) -> list[tuple[int, np.ndarray]]:
        """Every article's near-duplicate signature."""
        ...

    def find_by_hash(self, digest: str) -> int | None:
        """An article with this content hash."""
        ...

    def save_article(self, draft: ArticleDraft, *, identity: str, digest: str, added_by: str,
                     spans: Sequence[tuple[int, int]], bodies: Sequence[str], vectors: np.ndarray,
                     minhash: np.ndarray | None = None,
                     replace_id: int | None = None) -> tuple[int, list[int], list[int]]:
        """Insert (or replace) an article with its passages: (article id, new passage ids, removed ones)."""
        ...

    def delete_article(self, article_id: int) -> list[int]:
        """Delete an article and its passages; returns the removed passage ids."""
        ...

    def get_article(self, article_id: int) -> Article | None:
        """One article with its passage count."""
        ...

    def get_articles(self, article_ids: Sequence[int]) -> dict[int, Article]:
        """These articles by id (passage counts not read)."""
        ...

    def list_articles(self, offset: int = 0, limit: int = 20) -> list[Article]:
        """Articles newest first (by publication date, then by when they were added)."""
        ...

    def count_articles(self) -> int: ...

    def count_passages(self) -> int: ...

    def newest_date(self) -> str | None:
        """The latest publication date (ISO), if any article has one."""
        ...

    def passage_ids(self) -> np.ndarray:
        """Every passage id."""
        ...

    def vectors(self, passage_ids: Sequence[int], dimension: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Stored vectors for these passages: (ids with a vector, their vectors, ids lacking one)."""
        ...

    def passage_bodies(self, passage_ids: Sequence[int]) -> dict[int, str]:
        """These passages' texts as embedded and indexed, by id."""
        ...

    def set_vectors(self, passage_ids: Sequence[int], vectors: np.ndarray) -> None:
        """Store these passages' vectors."""

    def clear_vectors(self) -> None:
        """Forget every passage's vector (the embedding model changed)."""

    def get_passages(self, passage_ids: Sequence[int]) -> dict[int, PassageRow]:
        """These passages with their text cut from their article, by id."""
        ...

    def passage_origins(self, passage_ids: Sequence[int]) -> dict[int, PassageOrigin]:
        """Each passage's article and that article's date, without reading texts or vectors."""
        ...

    def backup_to(self, path: Path) -> None:
        """Write a consistent copy of the database to ``path``."""

    def restore_from(self, path: Path) -> None:
        """Replace the database's content with a backup's."""

    def file_size(self) -> int:
        """Bytes on disk of the database."""
        ...


# -- what a bot process shares with the others ----------------------------------------------------------
class FeedLocks(Protocol):
    """Per-feed locks shared by every process polling the library's feeds."""

    def hold(self, feed_id: int, wait: float = 0.0) -> AsyncContextManager[bool]:
        """Yields True while this process holds the feed's lock, False when it could not take it in ``wait`` s."""
        ...


class ResultStore(Protocol):
    """Recent answers keyed by (chat, token), for the "more" and "sources" buttons."""

    def put(self, chat_id: int, answer: Answer) -> str: ...

    def update(self, chat_id: int, token: str, answer: Answer) -> None: ...

    def get(self, chat_id: int, token: str) -> Answer | None: ...


@dataclass(frozen=True)
class Turn:
    """One question of a chat's conversation and what its answer showed (for follow-up questions)."""

    question: str
    asked_at: datetime  # timezone-aware
    context_words: tuple[str, ...] = ()  # the specific words the question was searched with, its own first
    article_ids: tuple[int, ...] = ()  # the articles its answer showed, best first
    passage_ids: tuple[int, ...] = ()
    title: str = ""  # the first article's title, for the "About:" line of a follow-up's reply
    token: str | None = None  # the answer's token in the ResultStore (None when nothing was shown)
    message_ids: tuple[int, ...] = ()  # the bot's messages that showed the answer, once sent


class Conversations(Protocol):
    """Each chat's recent turns, kept ``ttl`` after the last one: the newest few, oldest first."""

    def recent(self, chat_id: int, now: datetime) -> list[Turn]:
        """The chat's kept turns, oldest first; none when the newest is older than the TTL at ``now``."""
        ...

    def add(self, chat_id: int, turn: Turn) -> None:
        """Append a turn (forgetting the oldest beyond the number kept)."""
        ...

    def attach_messages(self, chat_id: int, token: str, message_ids: Sequence[int]) -> None:
        """Record the bot's messages that showed the answer ``token`` (a reply to one finds its turn)."""
        ...

    def by_message(self, chat_id: int, message_id: int) -> Turn | None:
        """The kept turn whose answer was shown in that message (whatever its age within the TTL)."""
        ...

    def forget(self, chat_id: int) -> None:
        """Drop the chat's conversation (/new)."""
        ...


class ActivityStore(Protocol):
    """Reader activity (index/activity/): questions and votes, topics, alert claims, messages waiting to be
    sent, admins' notice choices. Both stores run the statements of index/activity/sql.py (SharedActivitySql),
    which documents each method; times are timezone-aware."""

    def salt(self) -> str: ...

    def claim_once(self, key: str, at: datetime) -> bool: ...

    def record_question(self, *, asker: str, chat: str, token: str | None, question: str, answered: bool,
                        passage_ids: Sequence[int], reply_ms: int, at: datetime) -> int: ...

    def question_for_answer(self, chat: str, token: str) -> int | None: ...

    def vote(self, question_id: int, voter: str, value: int, at: datetime) -> int | None: ...

    def set_reason(self, question_id: int, voter: str, reason: str) -> bool: ...

    def questions_since(self, since: datetime) -> list[AskedQuestion]: ...

    def open_questions(self, since: datetime, limit: int) -> list[AskedQuestion]: ...

    def close_questions(self, question_ids: Sequence[int], article_id: int, at: datetime) -> int: ...

    def reasons_since(self, since: datetime) -> dict[str, int]: ...

    def add_topic(self, user_id: int, chat_id: int, topic: str, at: datetime, max_topics: int) -> int | None: ...

    def topics(self, user_id: int | None = None) -> list[Topic]: ...

    def remove_topic(self, user_id: int, topic_id: int) -> bool: ...

    def claim_alert(self, article_id: int, user_id: int, at: datetime, max_per_day: int) -> bool: ...

    def queue(self, chat_id: int, payload: dict[str, Any], at: datetime) -> None: ...

    def take_queued(self, limit: int) -> list[Outgoing]: ...

    def set_notices(self, admin_id: int, on: bool) -> None: ...

    def notice_admins(self) -> list[int]: ...

    def forget(self, reader: str, user_id: int) -> Forgotten: ...

    def prune(self, before: datetime, now: datetime) -> int: ...

    def close(self) -> None: ...


# -- the backend ------------------------------------------------------------------------------------------
class Backend(ABC):
    """A store, its vector and keyword indexes and its writer lock; Library calls the writing methods
    under that lock."""

    name: str
    store: Store
    vectors: VectorSearch
    keywords: KeywordSearch

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        self.settings = settings
        self.embedder = embedder

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the library lives, for people (never a password)."""

    @abstractmethod
    def writer_lock(self) -> AbstractContextManager[None]:
        """Held while writing: other processes' writers wait, and get LibraryBusy after ``lock_timeout``."""

    @abstractmethod
    def open(self) -> None:
        """Make the vectors fit the store and the model (at start-up, under the writer lock)."""

    @abstractmethod
    def sync(self) -> None:
        """Catch up with what another process committed (under the in-process lock)."""

    @abstractmethod
    def committed(self, removed: Sequence[int], added: Sequence[int] = (), vectors: np.ndarray | None = None,
                  bodies: Sequence[str] = ()) -> None:
        """Follow an add or removal the store has committed: passages ``removed``, ``added`` with ``vectors``
        and ``bodies``."""

    @property
    @abstractmethod
    def unsaved(self) -> bool:
        """True when something kept in memory waits to be written (then ``save`` under the writer lock)."""

    @abstractmethod
    def save(self) -> None:
        """Write what waits to be written."""

    @abstractmethod
    def index_bytes(self) -> int:
        """Bytes on disk of the search indexes kept apart from the database's tables (vectors, keywords)."""

    @abstractmethod
    def backup(self, target: Path) -> None:
        """Write a consistent copy of the library into the new folder ``target``."""

    @abstractmethod
    def restore(self, source: Path) -> None:
        """Replace the library's content with a backup's (under the writer lock)."""

    @abstractmethod
    def feed_locks(self) -> FeedLocks:
        """The per-feed poll locks that fit this store (shared by the processes that can poll it)."""

    @abstractmethod
    def results(self, settings: Settings) -> ResultStore:
        """Where answers wait for their buttons: somewhere every process serving this library can read."""

    @abstractmethod
    def conversations(self, settings: Settings) -> Conversations:
        """Where each chat's recent turns live: beside the button results (``results``)."""

    @abstractmethod
    def activity(self, settings: Settings) -> ActivityStore:
        """Where reader activity lives: somewhere every process serving this library can read, kept across
        restarts."""

    @abstractmethod
    def close(self) -> None:
        """Close connections and files (without saving: Library saves first)."""

    def check_model(self) -> bool:
        """Vectors from another model are useless: forget them so they are re-embedded; True when it changed."""
        recorded = self.store.get_meta("embedding_model")
        current = f"{self.embedder.name}|{self.embedder.dimension}"
        changed = recorded is not None and recorded != current
        if changed:
            log.warning("the embedding model changed (%s -> %s): re-embedding every passage", recorded, current)
            self.store.clear_vectors()
        if recorded != current:
            self.store.set_meta("embedding_model", current)
        return changed

    def embed_stored(self, passage_ids: Sequence[int], show_progress: bool) -> tuple[np.ndarray, np.ndarray]:
        """Embed stored passages again and store their vectors: (passage ids, vectors)."""
        bodies = self.store.passage_bodies(passage_ids)
        order = list(bodies)
        fresh = self.embedder.embed([bodies[i] for i in order], show_progress=show_progress)
        self.store.set_vectors(order, fresh)
        return np.asarray(order, dtype=np.int64), fresh
