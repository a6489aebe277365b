"""python -m index migrate: the sample library copied into PostgreSQL and back, vectors included."""

from __future__ import annotations

import re
import shutil
import sqlite3
from datetime import date
from pathlib import Path

import numpy as np
import psycopg
import pytest
from filelock import FileLock

from index.config import Settings, load_settings
from index.embedding.embedder import Embedder
from index.errors import LibraryBusy
from index.library import Library
from index.search.hybrid import HybridSearcher
from index.stores.embedded.directory import DATABASE_FILE, KEYWORDS_FILE, LOCK_FILE, VECTORS_FILE
from index.stores.embedded.fts_reference import lexical_search
from index.stores.embedded.store import SqliteStore
from index.stores.embedded.transfer import EmbeddedSource
from index.stores.postgres.backend import BudgetedKeywords
from index.stores.postgres.store import WRITER_LOCK, PostgresStore, describe
from index.stores.postgres.transfer import PostgresTarget
from index.stores.postgres.vectors import PgVectorIndex
from index.stores.transfer import Counts, Table, TransferMismatch, migrate, transfer
from tests.support.helpers import run_cli

QUESTION = "what did the UN Security Council say?"
ASKED_ON = date(2024, 1, 1)
# Every copied row, in a stable order, to compare two SQLite libraries column by column.
DUMPS = {
    "articles": "SELECT * FROM articles ORDER BY id",
    "article_aliases": "SELECT * FROM article_aliases ORDER BY identity",
    "passages": "SELECT * FROM passages ORDER BY id",
    "feeds": "SELECT * FROM feeds ORDER BY id",
    "feed_entries": "SELECT * FROM feed_entries ORDER BY feed_id, entry_key",
    "meta": "SELECT * FROM meta WHERE key <> 'schema_version' ORDER BY key",
    "sqlite_sequence": "SELECT * FROM sqlite_sequence ORDER BY name",
}


def counts_printed(stdout: str) -> dict[str, tuple[int, int]]:
    """The source and target counts of the printed table, by label."""
    found = {}
    for line in stdout.splitlines():
        match = re.match(r"^\s*([a-z][a-z ]*?)\s+([\d,]+)\s+([\d,]+)(\s+MISMATCH)?$", line)
        if match:
            found[match.group(1)] = (int(match.group(2).replace(",", "")), int(match.group(3).replace(",", "")))
    return found


def settings_for(data_dir: Path) -> Settings:
    return load_settings(environ={}).replace("library", data_dir=data_dir, lock_timeout=5.0)


def dump(data_dir: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(data_dir / DATABASE_FILE)
    try:
        return {name: db.execute(sql).fetchall() for name, sql in DUMPS.items()}
    finally:
        db.close()


@pytest.fixture
def source_dir(sample_library_dir: Path, tmp_path: Path) -> Path:
    """The sample library plus an alias, a feed with an entry, and a removed article (ids are not reused)."""
    data_dir = tmp_path / "source"
    shutil.copytree(sample_library_dir, data_dir)
    store = SqliteStore(data_dir / DATABASE_FILE)
    try:
        articles = store.list_articles(limit=100)
        store.add_alias("example.org/republished-copy", articles[1].id)
        with store.transaction() as db:
            feed_id = db.execute(
                "INSERT INTO feeds(url, title, etag, added_by, added_at, next_poll, articles_added)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", ("https://example.org/rss.xml", "Example wire", '"abc"', "cli",
                                                  "2024-01-01T00:00:00+00:00", "2024-01-01T00:30:00+00:00", 1)).lastrowid
            db.execute("INSERT INTO feed_entries(feed_id, entry_key, status, attempts, article_id, seen_at)"
                       " VALUES (?, ?, ?, ?, ?, ?)", (feed_id, "guid-1", "added", 1, articles[1].id,
                                                      "2024-01-01T00:00:00+00:00"))
        newest_id = max(a.id for a in articles)
        store.delete_article(newest_id)  # sqlite_sequence stays past the highest id left
    finally:
        store.close()
    return data_dir


def embedded_tops(data_dir: Path, embedder: Embedder) -> tuple[int, int, int]:
    """The top passage of the keyword search, the vector search and the whole search, on the embedded store."""
    with Library(settings_for(data_dir), embedder=embedder, reranker=False) as library:
        lexical = lexical_search(library.store, QUESTION, 5)[0][0]
        dense = library.vectors.search(embedder.embed_one(QUESTION), 5)[0][0]
        fused = library.search(QUESTION, now=ASKED_ON).hits[0].passage_id
        assert len(library.vectors) == library.store.count_passages()
    return lexical, dense, fused


def postgres_tops(dsn: str, embedder: Embedder) -> tuple[int, int, int]:
    """The same three on the PostgreSQL store."""
    store = PostgresStore(dsn, embedder.dimension, max_connections=2)
    try:
        vectors = PgVectorIndex(store)
        lexical = store.lexical_search(QUESTION, 5)[0][0]
        dense = vectors.search(embedder.embed_one(QUESTION), 5)[0][0]
        search = load_settings(environ={}).search
        searcher = HybridSearcher(store, vectors, BudgetedKeywords(store, search.lexical_budget), embedder, search)
        fused = searcher.search(QUESTION, now=ASKED_ON).hits[0].passage_id
    finally:
        store.close()
    return lexical, dense, fused


def test_migrate_to_postgres_and_back(source_dir: Path, postgres_dsn: str, tmp_path: Path,
                                      embedder: Embedder) -> None:
    before = dump(source_dir)
    expected_tops = embedded_tops(source_dir, embedder)

    result = run_cli("migrate", "--from", "embedded", "--to", "postgres", "--dsn", postgres_dsn, data_dir=source_dir)
    assert result.returncode == 0, result.stderr
    articles, passages = len(before["articles"]), len(before["passages"])
    assert counts_printed(result.stdout) == {"articles": (articles, articles), "passages": (passages, passages),
                                             "with vectors": (passages, passages), "aliases": (1, 1),
                                             "feeds": (1, 1), "feed entries": (1, 1)}, result.stdout
    assert "random passages hold equal vectors" in result.stdout
    assert f"embedding model: {dict(before['meta'])['embedding_model']} (recorded" in result.stdout, result.stdout
    assert "Traceback" not in result.stderr

    with psycopg.connect(postgres_dsn) as conn:
        counts = Counts.of(conn.execute(
            "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM passages),"
            " (SELECT count(vector) FROM passages), (SELECT count(*) FROM article_aliases),"
            " (SELECT count(*) FROM feeds), (SELECT count(*) FROM feed_entries)").fetchone())
        assert counts == Counts(articles, passages, passages, 1, 1, 1)
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        assert meta["embedding_model"] == dict(before["meta"])["embedding_model"]
        # The identity sequences continue after the source's ids, the removed article's included.
        sequence = conn.execute("SELECT pg_get_serial_sequence('articles', 'id')").fetchone()[0]
        assert conn.execute(f"SELECT last_value, is_called FROM {sequence}").fetchone() == \
            (dict(before["sqlite_sequence"])["articles"], True)
        # The tsvector column follows the copied bodies, and the HNSW index was rebuilt.
        assert conn.execute("SELECT count(*) FROM passages WHERE lexemes IS NULL").fetchone()[0] == 0
        assert conn.execute("SELECT to_regclass('passages_vector_hnsw')").fetchone()[0] is not None
    assert postgres_tops(postgres_dsn, embedder) == expected_tops

    # Back into a fresh data directory: every row as it was, the FAISS file rebuilt when it opens.
    back = tmp_path / "back"
    result = run_cli("migrate", "--from", "postgres", "--to", "embedded", "--dsn", postgres_dsn, data_dir=back)
    assert result.returncode == 0, result.stderr
    assert f"{VECTORS_FILE}, {KEYWORDS_FILE}: not written here" in result.stdout
    assert not (back / VECTORS_FILE).exists()
    assert dump(back) == before
    assert embedded_tops(back, embedder) == expected_tops
    assert (back / VECTORS_FILE).exists()

    # Neither target is overwritten without --replace; with it, the copy starts from an empty target.
    result = run_cli("migrate", "--from", "embedded", "--to", "postgres", "--dsn", postgres_dsn, data_dir=source_dir)
    assert result.returncode == 2
    assert f"already holds {articles} articles, {passages} passages" in result.stderr, result.stderr
    assert "--replace" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("migrate", "--to", "embedded", "--from", "postgres", "--dsn", postgres_dsn, data_dir=back)
    assert result.returncode == 2 and "already holds" in result.stderr, result.stderr
    result = run_cli("migrate", "--from", "postgres", "--to", "embedded", "--dsn", postgres_dsn, "--replace",
                     data_dir=back)
    assert result.returncode == 0, result.stderr
    assert dump(back) == before


def test_bad_dsn_is_a_clear_error(source_dir: Path) -> None:
    result = run_cli("migrate", "--from", "embedded", "--to", "postgres",
                     "--dsn", "postgresql://newsbot:secret@127.0.0.1:1/newsbot", data_dir=source_dir)
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot connect to the PostgreSQL database newsbot on 127.0.0.1:1"
                                    " as newsbot: "), result.stderr
    assert "secret" not in result.stderr and "Traceback" not in result.stderr
    result = run_cli("migrate", "--from", "postgres", "--to", "embedded", data_dir=source_dir,
                     env={"NEWSBOT_POSTGRES_DSN": ""})
    assert result.returncode == 2 and "give --dsn" in result.stderr, result.stderr
    result = run_cli("migrate", "--from", "embedded", "--to", "embedded", data_dir=source_dir)
    assert result.returncode == 2 and "backup/restore" in result.stderr, result.stderr


class _Lossy(PostgresTarget):
    """A target that loses one passage on the way."""

    def write(self, table: Table, rows: list[tuple]) -> None:
        super().write(table, rows[1:] if table.name == "passages" else rows)


def test_a_count_mismatch_rolls_the_postgres_copy_back(source_dir: Path, postgres_dsn: str) -> None:
    settings = settings_for(source_dir)
    source = EmbeddedSource(source_dir)
    try:
        with pytest.raises(TransferMismatch) as caught:
            transfer(source, _Lossy(postgres_dsn, settings.postgres, 5.0))
    finally:
        source.close()
    report = caught.value.report
    assert report.target_counts.passages == report.source_counts.passages - 1
    assert any("MISMATCH" in line for line in report.lines())
    assert "rolled back" in str(caught.value)
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM articles").fetchone()[0] == 0


def test_vectors_are_copied_bit_for_bit() -> None:
    from index.stores.postgres.transfer import from_pgvector, to_pgvector

    vector = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    assert from_pgvector(to_pgvector(vector.tobytes())) == vector.tobytes()
    assert to_pgvector(None) is None
    assert describe("host=db password=hidden dbname=n") == "PostgreSQL database n on db"


def test_a_target_held_by_another_writer_is_busy(source_dir: Path, postgres_dsn: str, tmp_path: Path) -> None:
    settings = settings_for(source_dir).replace("library", lock_timeout=0.2)
    PostgresStore(postgres_dsn, 384, max_connections=1).close()  # an empty library to copy from
    with FileLock(str(tmp_path / "held" / LOCK_FILE)):
        with pytest.raises(LibraryBusy, match="being changed by another process"):
            migrate(settings, "postgres", "embedded", data_dir=tmp_path / "held", dsn=postgres_dsn)
    with psycopg.connect(postgres_dsn) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
        with pytest.raises(LibraryBusy, match="being changed by another process"):
            migrate(settings, "embedded", "postgres", dsn=postgres_dsn)
