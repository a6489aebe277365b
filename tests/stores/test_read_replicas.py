"""Searches read a PostgreSQL streaming standby (postgres.read_dsns) while writes go to the primary; a
standby that lags or dies is skipped with a log line and the primary answers instead."""

from __future__ import annotations

import logging
import time
from typing import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from index.articles import ArticleDraft
from index.config import Settings, load_settings
from index.embedding.embedder import Embedder
from index.library import Library
from index.stores.postgres import replicas as replicas_module
from index.stores.postgres.replicas import ReadReplicas
from tests.conftest import on_postgres
from tests.support.postgres_server import StreamingPair

HARBOUR = ArticleDraft(
    title="Port Elloran approves a tidal barrier",
    text=("The harbour authority of Port Elloran approved a tidal barrier on Tuesday, after storms flooded the "
          "old quay twice this winter. Construction of the barrier starts in spring and takes two years. ") * 2)
GLACIER = ArticleDraft(
    title="Survey finds the Vatna glacier retreating faster",
    text=("Surveyors measuring the Vatna glacier found its tongue had retreated ninety metres since last "
          "autumn, twice the pace of the decade before. The survey team blamed a warm, dry summer. ") * 2)
ORCHARD = ArticleDraft(
    title="Quince orchards return to the Brenna valley",
    text=("Farmers in the Brenna valley planted four thousand quince trees this year, reviving orchards that "
          "had vanished after the frost of 1987. The first harvest is expected in three years. ") * 2)


def replicas_of(library: Library) -> ReadReplicas:
    replicas = library.backend.store.replicas  # type: ignore[attr-defined]
    assert replicas is not None
    return replicas


def titles(library: Library, question: str) -> list[str]:
    return [hit.article.title for hit in library.search(question).hits]


@pytest.fixture
def replicated_settings(streaming_pair: StreamingPair, tmp_path) -> Iterator[Settings]:
    """A library database on the primary, read through the standby (which may lag 1 s)."""
    with psycopg.connect(streaming_pair.primary_dsn, autocommit=True) as primary:
        primary.execute("CREATE DATABASE library")
    streaming_pair.wait_caught_up()
    base = load_settings(environ={}).replace("library", data_dir=tmp_path / "data", lock_timeout=5.0)
    yield on_postgres(base, make_conninfo(streaming_pair.primary_dsn, dbname="library")).replace(
        "postgres", read_dsns=(streaming_pair.standby_dsn("library"),), replica_max_lag_seconds=1.0)


def test_searches_read_the_standby_once_it_has_the_new_article(
        streaming_pair: StreamingPair, replicated_settings: Settings, embedder: Embedder,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="index.stores.postgres.replicas")
    with Library(replicated_settings, embedder=embedder) as library:
        replicas = replicas_of(library)
        [standby] = replicas.standbys
        assert library.add_draft(HARBOUR).status == "added"
        streaming_pair.wait_caught_up()
        assert titles(library, "What did the Port Elloran harbour authority approve?")[0] == HARBOUR.title
        assert standby.served > 0 and replicas.primary_reads == 0  # every read of the search: the standby's

        # The standby stops replaying: this process's next article is not there yet, so the primary answers.
        streaming_pair.standby_sql("SELECT pg_wal_replay_pause()")
        assert library.add_draft(GLACIER).status == "added"
        served = standby.served
        assert titles(library, "How fast is the Vatna glacier retreating?")[0] == GLACIER.title
        assert standby.served == served and replicas.primary_reads > 0
        assert "has not yet replayed this process's last write" in caplog.text

        # Replaying again, it catches up and serves the question itself, with the new article.
        streaming_pair.standby_sql("SELECT pg_wal_replay_resume()")
        streaming_pair.wait_caught_up()
        time.sleep(1.1)  # past the second for which a standby's state is trusted
        primary_reads = replicas.primary_reads
        assert titles(library, "How fast is the Vatna glacier retreating?")[0] == GLACIER.title
        assert standby.served > served and replicas.primary_reads == primary_reads
        assert "serves searches again" in caplog.text


def test_a_standby_lagging_behind_another_writer_is_skipped(
        streaming_pair: StreamingPair, replicated_settings: Settings, embedder: Embedder,
        caplog: pytest.LogCaptureFixture) -> None:
    with Library(replicated_settings, embedder=embedder) as library:
        assert library.add_draft(HARBOUR).status == "added"
        streaming_pair.wait_caught_up()
        replicas = replicas_of(library)
        streaming_pair.standby_sql("SELECT pg_wal_replay_pause()")
        # Another process (here: another library on the same database) adds an article this one did not write.
        with Library(replicated_settings.replace("postgres", read_dsns=()), embedder=embedder) as other:
            assert other.add_draft(ORCHARD).status == "added"
        time.sleep(1.5)  # beyond replica_max_lag_seconds, and the second a state is trusted
        primary_reads = replicas.primary_reads
        assert titles(library, "Where are quince orchards returning?")[0] == ORCHARD.title
        assert replicas.primary_reads > primary_reads
        assert "behind the primary" in caplog.text
        streaming_pair.standby_sql("SELECT pg_wal_replay_resume()")


def test_a_killed_standby_does_not_break_questions(
        streaming_pair: StreamingPair, replicated_settings: Settings, embedder: Embedder,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replicas_module, "RETRY_AFTER", 3600.0)  # a loaded machine must not reach the retry
    with Library(replicated_settings, embedder=embedder) as library:
        assert library.add_draft(HARBOUR).status == "added"
        streaming_pair.wait_caught_up()
        replicas = replicas_of(library)
        [standby] = replicas.standbys
        assert titles(library, "What did the Port Elloran harbour authority approve?")[0] == HARBOUR.title
        assert standby.served > 0

        streaming_pair.kill_standby()
        assert not streaming_pair.standby_running()
        served, primary_reads = standby.served, replicas.primary_reads
        for _ in range(3):
            assert titles(library, "What did the Port Elloran harbour authority approve?")[0] == HARBOUR.title
        assert standby.served == served and replicas.primary_reads > primary_reads
        assert "read replica" in caplog.text and "failed" in caplog.text
        # The dead standby is left alone for a while: later questions do not even ask its pool for a connection.
        requests = standby.pool.get_stats().get("requests_num", 0)
        titles(library, "What did the Port Elloran harbour authority approve?")
        assert standby.pool.get_stats().get("requests_num", 0) == requests
