"""The PostgreSQL vector index's method (postgres.vector_index, index/stores/postgres/vector_layout.py):
pgvector's HNSW graph, or IVFFlat lists over half-precision copies of the vectors, refitted by the
writer as the library grows; a change of method rebuilds the index when the next process starts, and a
library copied in by `index migrate` gets lists that fit it. Searches find the same passages either way."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from index.config import Settings, SettingError
from index.embedding.embedder import Embedder
from index.library import Library
from index.stores.postgres import vector_layout
from index.stores.postgres.vector_layout import BuiltIndex, built_index, has_halfvec, lists_for
from index.stores.transfer import migrate


def index_of(dsn: str) -> BuiltIndex | None:
    with psycopg.connect(dsn) as connection:
        return built_index(connection)


def report(number: int) -> str:
    """A short article whose every sentence is its own, so that each small passage is distinct."""
    return " ".join(f"Ward {number}-{i} of the harbour district counted {number * 100 + i} ballots for the "
                    f"ferry levy, clerk number {i} said." for i in range(40))


def small_passages(settings: Settings, **postgres: object) -> Settings:
    """Passages of about 20 words, so that a few short articles make a library of a hundred or more."""
    return settings.replace("chunking", max_tokens=24, overlap_tokens=0).replace("postgres", **postgres)


@pytest.fixture
def few_passages_per_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """A list per 40 passages instead of pgvector's 1,000, so that a library of a hundred has several."""
    monkeypatch.setattr(vector_layout, "PASSAGES_PER_LIST", 40)


def test_lists_follow_pgvectors_advice() -> None:
    assert [lists_for(n) for n in (0, 999, 2_000, 100_000, 1_000_000, 4_000_000)] == [1, 1, 2, 100, 1_000, 2_000]


def test_ivfflat_asks_for_a_pgvector_with_halfvec() -> None:
    assert [has_halfvec(v) for v in ("0.8.5", "0.7.0", "1.0.0", "0.6.2", "0.5.1")] == [True, True, True, False, False]


def test_the_settings_list_their_choices(postgres_settings: Settings) -> None:
    assert (postgres_settings.postgres.vector_index, postgres_settings.postgres.ivfflat_probes) == ("hnsw", 10)
    assert postgres_settings.replace("postgres", vector_index=" IVFFlat ").postgres.vector_index == "ivfflat"
    with pytest.raises(SettingError, match="vector_index.*one of hnsw, ivfflat"):
        postgres_settings.replace("postgres", vector_index="diskann")
    with pytest.raises(SettingError, match="ivfflat_probes.*between 1 and 32768"):
        postgres_settings.replace("postgres", ivfflat_probes=0)


@pytest.mark.usefixtures("few_passages_per_list")
def test_the_writer_refits_the_lists_and_a_change_of_method_rebuilds(postgres_settings: Settings,
                                                                     embedder: Embedder) -> None:
    dsn = postgres_settings.postgres.dsn
    with psycopg.connect(dsn, autocommit=True) as connection:  # below what training lists takes: given more
        connection.execute("SELECT set_config('maintenance_work_mem', '1MB', false)")
        connection.execute(f"ALTER DATABASE {connection.info.dbname} SET maintenance_work_mem = '1MB'")
    settings = small_passages(postgres_settings, vector_index="ivfflat")
    with Library(settings, embedder=embedder, reranker=None) as library:
        assert index_of(dsn) == BuiltIndex("ivfflat", 1)  # built on the empty table: one list, an exact search
        for number in range(3):
            result = library.add_text(report(number), title=f"Harbour ballots {number}")
            assert result.status == "added", result.message
        passages = library.store.count_passages()
        assert passages >= 100, passages  # enough for two lists or more (three at 40 a list)
        built = index_of(dsn)
        # refitted whenever the library called for twice the lists it had
        assert built.method == "ivfflat" and 2 <= built.lists <= lists_for(passages) < 2 * built.lists, built
        assert library.vectors.layout == f"pgvector IVFFlat, {built.lists} lists, probing 10"
        hit = library.search("How many ballots did ward 2-17 count for the ferry levy?").hits[0]
        assert "Ward 2-17 " in hit.text, hit.text
    with Library(small_passages(postgres_settings, vector_index="hnsw"), embedder=embedder, reranker=None) as library:
        assert index_of(dsn) == BuiltIndex("hnsw", None)
        assert "Ward 2-17 " in library.search("How many ballots did ward 2-17 count for the ferry levy?").hits[0].text
    with Library(settings, embedder=embedder, reranker=None) as library:  # and back, with lists that fit at once
        assert index_of(dsn) == BuiltIndex("ivfflat", lists_for(library.store.count_passages()))


@pytest.mark.usefixtures("few_passages_per_list")
def test_a_copy_into_postgres_gets_lists_that_fit_it(embedded_settings: Settings, postgres_dsn: str,
                                                     embedder: Embedder, tmp_path: Path) -> None:
    source = small_passages(embedded_settings)
    with Library(source, embedder=embedder, reranker=None) as library:
        for number in range(3):
            assert library.add_text(report(number), title=f"Harbour ballots {number}").status == "added"
        passages = library.store.count_passages()
    wanted = source.replace("postgres", dsn=postgres_dsn, vector_index="ivfflat")
    migrate(wanted, "embedded", "postgres")
    assert index_of(postgres_dsn) == BuiltIndex("ivfflat", lists_for(passages)) and lists_for(passages) >= 2
