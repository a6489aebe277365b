"""The embedded store (SQLite) and the server store (PostgreSQL + pgvector) keep the same contract;
the pgvector index behaves as the FAISS one does, with HNSW's recall."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator

import numpy as np
import psycopg
import pytest

from index.articles import ArticleDraft
from index.ingest.feeds import FeedStore
from index.library import AddResult
from index.stores.base import Store
from index.stores.embedded import fts_reference
from index.stores.embedded.store import SqliteStore
from index.stores.postgres import migrations as pg_migrations
from index.stores.postgres.store import PostgresStore
from index.stores.postgres import vector_layout
from index.stores.postgres.vector_layout import VECTOR_INDEX, VectorLayout
from index.stores.postgres.vectors import PgVectorIndex

DIMENSION = 8
OpenStore = Callable[[], Store]


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens stores on one fresh database (several: one per process sharing it); all closed after the test."""
    opened: list[Store] = []
    if request.param == "sqlite":
        def make() -> Store:
            return SqliteStore(tmp_path / "library.sqlite3")
    else:
        dsn = request.getfixturevalue("postgres_dsn")

        def make() -> Store:
            return PostgresStore(dsn, DIMENSION, max_connections=2)

    def opener() -> Store:
        opened.append(make())
        return opened[-1]

    yield opener
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()


def keyword_search(store: Store, question: str, limit: int, budget: int = 0) -> list[tuple[int, float]]:
    """The store's full-text ranking: FTS5's for SQLite (the reference), PostgreSQL's own for the server."""
    if isinstance(store, SqliteStore):
        return fts_reference.lexical_search(store, question, limit, budget)
    assert isinstance(store, PostgresStore)
    return store.lexical_search(question, limit, budget)


def unit(rows: int, seed: int = 0, dimension: int = DIMENSION) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((rows, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def save(store: Store, number: int, bodies: list[str], *, published: date | None = None,
         replace_id: int | None = None, identity: str | None = None, seed: int = 0,
         minhash: np.ndarray | None = None) -> tuple[int, list[int], list[int]]:
    """An article whose text is its passages joined by spaces, each passage spanning its body."""
    text = " ".join(bodies)
    spans, offset = [], 0
    for body in bodies:
        spans.append((offset, offset + len(body)))
        offset += len(body) + 1
    draft = ArticleDraft(title=f"Story {number}", text=text, url=f"https://example.org/{number}",
                         published=published, source="Wire", author="Reporter")
    return store.save_article(draft, identity=identity or f"url:{number}", digest=f"hash-{number}-{len(text)}",
                              added_by="test", spans=spans, bodies=bodies, vectors=unit(len(bodies), seed),
                              minhash=minhash, replace_id=replace_id)


# -- articles ---------------------------------------------------------------------------------------
def test_saved_articles_read_back_by_identity_hash_and_id(store: Store) -> None:
    article_id, passage_ids, removed = save(store, 1, ["The ferry strike closed the harbour.", "Talks resume."],
                                            published=date(2024, 5, 1))
    assert removed == [] and len(passage_ids) == 2 and passage_ids == sorted(passage_ids)
    row = store.find_by_identity("url:1")
    assert row["id"] == row[0] == article_id and row["content_hash"] == row[1]
    assert store.find_by_hash(row["content_hash"]) == article_id
    assert store.find_by_identity("url:none") is None and store.find_by_hash("none") is None
    article = store.get_article(article_id)
    assert article is not None
    assert (article.id, article.title, article.url, article.published, article.source, article.author,
            article.added_by, article.passage_count) == (article_id, "Story 1", "https://example.org/1",
                                                         date(2024, 5, 1), "Wire", "Reporter", "test", 2)
    assert article.text == "The ferry strike closed the harbour. Talks resume."
    assert abs(article.added_at - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert store.get_article(article_id + 1000) is None
    assert (store.count_articles(), store.count_passages()) == (1, 2)


def test_replacing_keeps_the_id_and_swaps_the_passages(store: Store) -> None:
    article_id, old_ids, _ = save(store, 1, ["First version of the story.", "Second passage."])
    same_id, new_ids, removed = save(store, 1, ["Updated story with one passage."], replace_id=article_id)
    assert same_id == article_id and removed == old_ids and not set(new_ids) & set(old_ids)
    assert store.get_article(article_id).text == "Updated story with one passage."
    assert sorted(store.passage_ids().tolist()) == new_ids and store.count_passages() == 1


def test_aliases_point_at_articles_and_go_with_them(store: Store) -> None:
    first, _, _ = save(store, 1, ["A story about the harbour."])
    second, _, _ = save(store, 2, ["Another story about the river."])
    store.add_alias("url:copy", first)
    assert store.find_alias("url:copy") == first and store.find_alias("url:other") is None
    store.add_alias("url:copy", second)  # replaced, as INSERT OR REPLACE does
    assert store.find_alias("url:copy") == second
    removed = store.delete_article(second)
    assert len(removed) == 1 and store.find_alias("url:copy") is None
    assert store.get_article(second) is None and store.count_passages() == 1


def test_lists_are_newest_first_with_undated_last(store: Store) -> None:
    old, _, _ = save(store, 1, ["An old story."], published=date(2023, 1, 5))
    undated, _, _ = save(store, 2, ["A story without a date."])
    new, _, _ = save(store, 3, ["A new story."], published=date(2024, 6, 1))
    also_new, _, _ = save(store, 4, ["Another new story."], published=date(2024, 6, 1))
    assert [a.id for a in store.list_articles()] == [also_new, new, old, undated]
    assert [a.id for a in store.list_articles(offset=1, limit=2)] == [new, old]
    assert all(a.passage_count == 1 for a in store.list_articles())
    assert store.newest_date() == "2024-06-01" and store.count_articles() == 4
    found = store.get_articles([new, old, new, 999])
    assert sorted(found) == sorted([new, old]) and found[new].title == "Story 3"
    assert store.get_articles([]) == {}


def test_signatures_round_trip(store: Store) -> None:
    signature = np.arange(128, dtype=np.uint32) * 7919
    article_id, _, _ = save(store, 1, ["A story with a signature."], minhash=signature)
    save(store, 2, ["A story without one."])
    [(found_id, found)] = store.signatures()
    assert found_id == article_id and found.dtype == np.uint32 and np.array_equal(found, signature)


# -- passages and vectors -----------------------------------------------------------------------------
def test_vectors_and_passages_round_trip(store: Store) -> None:
    bodies = ["The ferry strike closed the harbour.", "Talks resume on Monday.", "Ferries run again."]
    ids_article, ids, _ = save(store, 1, bodies, seed=3, published=date(2024, 5, 2))
    found, matrix, missing = store.vectors(ids + [10_000], DIMENSION)
    assert found.tolist() == ids and missing == [] and np.allclose(matrix, unit(3, 3))
    assert store.vectors(ids, DIMENSION * 2)[2] == ids  # another dimension counts as missing
    passages = store.get_passages(ids)
    assert [passages[i].text for i in ids] == bodies and [passages[i].ordinal for i in ids] == [0, 1, 2]
    assert store.passage_bodies(ids[1:]) == {ids[1]: bodies[1], ids[2]: bodies[2]}
    undated_article, undated, _ = save(store, 2, ["Undated."])
    origins = store.passage_origins(ids[1:] + undated + [10_000])
    assert {pid: (o.article_id, o.published) for pid, o in origins.items()} == {
        ids[1]: (ids_article, date(2024, 5, 2)), ids[2]: (ids_article, date(2024, 5, 2)),
        undated[0]: (undated_article, None)}
    store.clear_vectors()
    assert store.vectors(ids, DIMENSION)[2] == ids
    store.set_vectors(ids[:1], unit(1, 9))
    found, matrix, missing = store.vectors(ids, DIMENSION)
    assert found.tolist() == ids[:1] and np.allclose(matrix, unit(1, 9)) and missing == ids[1:]
    assert store.passage_ids().dtype == np.int64 and sorted(store.passage_ids().tolist()) == ids + undated


# -- keyword search -----------------------------------------------------------------------------------
def test_keyword_search_ranks_passages_holding_more_and_rarer_words_first(store: Store) -> None:
    common = [f"The harbour report number {i} about the weather." for i in range(20)]
    _, ids, _ = save(store, 1, common + ["A ferry strike closed the harbour.", "The ferry timetable changed.",
                                         "Dockers went on strike over pay."])
    both, ferry, strike = ids[-3:]
    ranked = [pid for pid, _ in keyword_search(store, "Why did the ferry strike?", 10)]
    assert ranked[0] == both and set(ranked) == {both, ferry, strike}
    assert [pid for pid, _ in keyword_search(store, "strikes", 10)][0] in {both, strike}  # stemmed
    assert keyword_search(store, "volcano", 10) == [] and keyword_search(store, "", 10) == []
    scores = dict(keyword_search(store, "harbour ferry", 100))
    assert set(sorted(scores, key=scores.__getitem__)[-2:]) == {both, ferry} and len(scores) == 22


def test_keyword_search_within_a_budget(store: Store) -> None:
    common = [f"the harbour report number {i} about weather" for i in range(40)]
    _, ids, _ = save(store, 1, common + ["a ferry strike closed the harbour", "a ferry timetable changed"])
    harbour_ferry, ferry_only = ids[-2:]
    within = [pid for pid, _ in keyword_search(store, "harbour ferry strike?", 100, budget=5)]
    assert within == [harbour_ferry, ferry_only]  # "harbour" (41 passages) does not decide what is ranked
    _, more, _ = save(store, 2, [f"port report {i}" for i in range(20)] + [f"rain report {i}" for i in range(20)]
                      + ["port rain report"])
    assert [pid for pid, _ in keyword_search(store, "port rain", 100, budget=5)] == [more[-1]]  # all words
    assert len(keyword_search(store, "port rain", 100)) == 41


def test_within_a_budget_the_common_words_still_score(store: Store) -> None:
    filler = [f"report number {i} about the weather" for i in range(40)]
    harbour = [f"the harbour report number {i}" for i in range(10)]
    _, ids, _ = save(store, 1, filler + harbour + ["a ferry strike was called on monday",
                                                   "a ferry strike was called at the harbour"])
    ferry_only, ferry_and_harbour = ids[-2:]
    # "harbour" (10 passages) is over the budget, so it does not decide which passages are ranked; but it
    # still counts in their scores, so the passage that also holds it comes first
    within = [pid for pid, _ in keyword_search(store, "harbour ferry strike", 100, budget=5)]
    assert within == [ferry_and_harbour, ferry_only]
    whole = [pid for pid, _ in keyword_search(store, "harbour ferry strike", 100)]
    assert whole[:2] == within and len(whole) == 12


# -- meta, changes, raw SQL -----------------------------------------------------------------------------
def test_meta_values(store: Store) -> None:
    assert store.get_meta("schema_version") == "1" and store.get_meta("embedding_model") is None
    store.set_meta("embedding_model", "bundled|8")
    store.set_meta("embedding_model", "bundled|16")
    with store.transaction() as tx:
        store.set_meta("other", "x", tx)
    assert (store.get_meta("embedding_model"), store.get_meta("other")) == ("bundled|16", "x")


def test_data_version_changes_when_another_connection_commits(open_store: OpenStore) -> None:
    reader, writer = open_store(), open_store()
    seen = reader.data_version()
    assert reader.data_version() == seen
    save(writer, 1, ["A story written by another process."])
    after_save = reader.data_version()
    assert after_save != seen
    writer.set_meta("key", "value")
    assert reader.data_version() != after_save


def test_raw_sql_with_question_marks_and_rollback(store: Store) -> None:
    with store.transaction() as db:
        db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", ("question?", "50% off"))
    rows = store.query("SELECT key, value FROM meta WHERE key = ? AND value LIKE '50%'", ("question?",))
    assert [(r["key"], r[1]) for r in rows] == [("question?", "50% off")]
    with pytest.raises(RuntimeError), store.transaction() as db:
        db.execute("UPDATE meta SET value = ? WHERE key = ?", ("changed", "question?"))
        raise RuntimeError("abandon")
    assert store.get_meta("question?") == "50% off"


# -- feeds (index/ingest/feeds.py's SQL, unchanged) -------------------------------------------------------------
def add_feed_row(store: Store, url: str, next_poll: datetime) -> None:
    """A subscription as FeedStore.add makes it, in SQL both databases take."""
    with store.transaction() as db:
        db.execute("INSERT INTO feeds(url, added_by, added_at, next_poll) VALUES (?, ?, ?, ?)",
                   (url, "admin", next_poll.isoformat(timespec="seconds"), next_poll.isoformat(timespec="seconds")))


def test_feed_store_sql(store: Store) -> None:
    feeds = FeedStore(SimpleNamespace(store=store))
    now = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    add_feed_row(store, "https://example.org/a.xml", now - timedelta(minutes=5))
    add_feed_row(store, "https://example.org/b.xml", now + timedelta(hours=1))
    first = feeds.by_url("https://example.org/a.xml")
    assert first is not None and feeds.get(first.id) == first and feeds.by_url("https://nowhere") is None
    assert [f.url for f in feeds.all()] == ["https://example.org/a.xml", "https://example.org/b.xml"]
    assert [f.id for f in feeds.due(now)] == [first.id]
    feeds.record_success(first, title="Feed A", etag='"v1"', last_modified=None, added=1,
                         interval=timedelta(minutes=30))
    feeds.record_success(feeds.get(first.id), title=None, etag='"v2"', last_modified="Wed, 01 May 2024",
                         added=2, interval=timedelta(minutes=30))
    updated = feeds.get(first.id)
    assert (updated.title, updated.etag, updated.last_modified, updated.articles_added, updated.failures) == \
        ("Feed A", '"v2"', "Wed, 01 May 2024", 3, 0)
    feeds.record_failure(updated, "timed out", timedelta(minutes=30))
    failed = feeds.get(first.id)
    assert failed.failures == 1 and failed.last_error == "timed out" and failed.next_poll > updated.next_poll
    with store.transaction() as db:
        db.execute("INSERT INTO feed_entries(feed_id, entry_key, status, seen_at) VALUES (?, ?, ?, ?)",
                   (first.id, "entry-1", "added", now.isoformat()))
    assert feeds.pending(first.id, ["entry-1", "entry-2"]) == {"entry-2"}
    assert feeds.remove(first.id) == failed and feeds.get(first.id) is None
    assert store.query("SELECT COUNT(*) FROM feed_entries")[0][0] == 0


def test_feed_entries_sql(store: Store) -> None:
    feeds = FeedStore(SimpleNamespace(store=store))
    add_feed_row(store, "https://example.org/a.xml", datetime(2024, 5, 1, tzinfo=timezone.utc))
    feed = feeds.by_url("https://example.org/a.xml")
    article_id, _, _ = save(store, 1, ["A story from the feed."])
    feeds.record_entry(feed.id, "entry-1", AddResult("e1", "added", article=store.get_article(article_id)))
    feeds.record_entry(feed.id, "entry-2", AddResult("e2", "failed", message="unreadable"))
    assert feeds.pending(feed.id, ["entry-1", "entry-2", "entry-3"]) == {"entry-2", "entry-3"}
    for _ in range(2):
        feeds.record_entry(feed.id, "entry-2", AddResult("e2", "failed", message="unreadable"))
    assert feeds.pending(feed.id, ["entry-2"]) == set()  # failed three times: given up


def test_feed_subscription_sql(store: Store) -> None:
    feeds = FeedStore(SimpleNamespace(store=store))
    feed = feeds.add("https://example.org/a.xml", "admin")
    assert feeds.add("https://example.org/a.xml", "someone else") == feed and len(feeds.all()) == 1


# -- PostgreSQL schema ----------------------------------------------------------------------------------
def test_migrations_run_once_even_when_replicas_start_together(postgres_dsn: str) -> None:
    applied: list[list[str]] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            with psycopg.connect(postgres_dsn, autocommit=True) as connection:
                applied.append([m.name for m in pg_migrations.migrate(connection)])
        except BaseException as error:  # shown by the assertion below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    names = [m.name for m in pg_migrations.available()]
    assert errors == [] and sorted(applied, key=len) == [[], [], names]
    with psycopg.connect(postgres_dsn) as connection:
        recorded = connection.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
        assert [(m.version, m.name) for m in pg_migrations.available()] == recorded
        assert pg_migrations.migrate(connection) == []


def test_a_model_of_another_dimension_clears_the_vectors(postgres_dsn: str) -> None:  # noqa: F811
    store = PostgresStore(postgres_dsn, DIMENSION)
    _, ids, _ = save(store, 1, ["A story embedded by the old model."])
    store.close()
    with psycopg.connect(postgres_dsn) as connection:
        assert pg_migrations.vector_dimension(connection) == DIMENSION
    store = PostgresStore(postgres_dsn, 2 * DIMENSION)
    try:
        assert store.vectors(ids, 2 * DIMENSION)[2] == ids and store.count_passages() == 1
        store.set_vectors(ids, unit(1, dimension=2 * DIMENSION))
        assert store.vectors(ids, 2 * DIMENSION)[0].tolist() == ids
    finally:
        store.close()


def test_backups_are_left_to_postgres_tools(postgres_dsn: str, tmp_path: Path) -> None:  # noqa: F811
    store = PostgresStore(postgres_dsn, DIMENSION)
    try:
        with pytest.raises(NotImplementedError, match="pg_dump"):
            store.backup_to(tmp_path / "backup")
        with pytest.raises(NotImplementedError, match="pg_restore"):
            store.restore_from(tmp_path / "backup")
        assert store.file_size() > 0
    finally:
        store.close()


# -- pgvector index -------------------------------------------------------------------------------------
@pytest.fixture(params=["hnsw", "ivfflat"])
def pg_index(request: pytest.FixtureRequest, postgres_dsn: str) -> Iterator[PgVectorIndex]:  # noqa: F811
    layout = VectorLayout(request.param)
    store = PostgresStore(postgres_dsn, DIMENSION, vector_layout=layout)
    try:
        yield PgVectorIndex(store, wanted=layout)
    finally:
        store.close()


def test_vector_index_add_search_remove_reconstruct(pg_index: PgVectorIndex) -> None:
    store = pg_index.store
    # an IVFFlat index built on the empty table has one list (an exact search) and asks for more as it grows
    expected = ("pgvector HNSW", False) if pg_index.wanted.method == "hnsw" else \
        ("pgvector IVFFlat, 1 lists, probing 10", True)
    assert (pg_index.exact, pg_index.layout, pg_index.outgrown(10**9)) == (False, *expected)
    _, ids, _ = save(store, 1, [f"Passage number {i}." for i in range(5)], seed=1)
    vectors = unit(5, 1)
    assert len(pg_index) == 5 and pg_index.ids().tolist() == ids
    hits = pg_index.search(vectors[2], 3)
    assert hits[0][0] == ids[2] and hits[0][1] == pytest.approx(1.0, abs=1e-5) and len(hits) == 3
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert hits[1][1] == pytest.approx(float(vectors[2] @ vectors[ids.index(hits[1][0])]), abs=1e-5)
    assert np.allclose(pg_index.reconstruct([ids[3], ids[0]]), vectors[[3, 0]])
    version = store.data_version()
    pg_index.add(ids[:2], vectors[:2])  # the same vectors: nothing written
    assert store.data_version() == version
    assert pg_index.remove([ids[0], ids[1], 10_000]) == 2 and store.data_version() != version
    found = pg_index.lookup([ids[0], ids[2], 10_000])  # one query; only the passages that have a vector
    assert sorted(found) == [ids[2]] and np.allclose(found[ids[2]], vectors[2])
    assert len(pg_index) == 3 and ids[0] not in {pid for pid, _ in pg_index.search(vectors[0], 5)}
    with pytest.raises(KeyError):
        pg_index.reconstruct([ids[0]])
    pg_index.add([ids[0]], vectors[4:5])
    assert pg_index.search(vectors[4], 2)[0][1] == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(store.vectors([ids[0]], DIMENSION)[1], vectors[4:5])  # the store reads what the index holds
    assert pg_index.search(vectors[0], 0) == [] and pg_index.remove([]) == 0
    pg_index.save(Path("/nonexistent/vectors.faiss"))  # nothing to write
    assert pg_index.disk_bytes() > 0


def clustered(count: int, dimension: int, topics: int = 40, seed: int = 0) -> np.ndarray:
    """Unit vectors scattered around topic centres, as sentence embeddings are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((topics, dimension))
    vectors = centres[rng.integers(0, topics, count)] + 0.6 * rng.standard_normal((count, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("method", ["hnsw", "ivfflat"])
def test_vector_index_recall_against_exact_search(postgres_dsn: str, method: str,  # noqa: F811
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    dimension, count, k = 384, 2_000, 10
    monkeypatch.setattr(vector_layout, "PASSAGES_PER_LIST", 50)  # 40 lists, of which a search reads 10
    layout = VectorLayout(method)
    store = PostgresStore(postgres_dsn, dimension, vector_layout=layout)
    try:
        index = PgVectorIndex(store, wanted=layout)
        everything = clustered(count + 50, dimension)
        vectors, questions = everything[:count], everything[count:]
        ids: list[int] = []
        for first in range(0, count, 200):
            draft = ArticleDraft(title=f"Batch {first}", text="x" * 200)
            _, batch_ids, _ = store.save_article(
                draft, identity=f"batch:{first}", digest=str(first), added_by="test", spans=[(0, 1)] * 200,
                bodies=["x"] * 200, vectors=vectors[first:first + 200])
            ids.extend(batch_ids)
        # the writer refits IVFFlat's lists once the library has outgrown them (the graph needs nothing)
        assert index.fit_layout() is (method == "ivfflat") and index.fit_layout() is False
        assert index.layout == ("pgvector HNSW" if method == "hnsw" else "pgvector IVFFlat, 40 lists, probing 10")
        exact = np.argsort(-(questions @ vectors.T), axis=1)[:, :k]
        found = 0
        for question, truth in zip(questions, exact):
            hits = {pid for pid, _ in index.search(question, k)}
            found += len(hits & {ids[i] for i in truth})
        assert found / (k * len(questions)) >= 0.95
        with store.connection() as connection, connection.transaction():
            # At 2,000 rows the planner may rightly prefer a scan; what matters is that the index can
            # answer this query's shape (operator and operator class), as it will in a large library.
            connection.execute("SET LOCAL enable_seqscan = off")
            plan = connection.execute("EXPLAIN " + index.wanted.search_sql(dimension),
                                      {"q": questions[0], "k": k}).fetchall()
        assert VECTOR_INDEX in " ".join(row[0] for row in plan)
    finally:
        store.close()
