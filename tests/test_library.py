"""The library with the real model, on each store: SQLite/FAISS files on disk ([embedded]) and a
fresh PostgreSQL database ([postgres]); then what only one of them has."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from datetime import date
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np
import psycopg
import pytest

from index.config import Settings
from index.embedding.embedder import Embedder
from index.errors import ConfigError, IngestError, LibraryBusy, LibraryUnavailable
from index.library import Library
from index.stores.embedded import keywords
from index.stores.embedded.directory import DATABASE_FILE, KEYWORDS_FILE, LOCK_FILE, VECTORS_FILE
from index.stores.embedded.keywords import KeywordIndex
from index.stores.postgres.store import WRITER_LOCK
from tests.support.helpers import run_cli

PROJECT = Path(__file__).resolve().parent.parent
BODY = ("The city council approved a new budget for public libraries on Tuesday evening. "
        "The plan adds evening opening hours at four branches and funds a mobile library van. "
        "Council members said the cost would be covered by a small rise in parking fees. "
        "Librarians welcomed the decision but warned that staff numbers remain too low. ")
OTHER_BODY = ("A new museum of maritime history opened its doors in the old customs house on Saturday. "
              "Visitors queued along the quay to see a restored fishing boat and a collection of ship models. "
              "The museum budget comes from a regional fund and ticket sales over the next five years. "
              "Curators plan a second gallery about lighthouse keepers for the spring. ")


def test_sample_question_finds_the_security_council_passage(sample_settings: Settings, embedder: Embedder) -> None:
    settings = sample_settings
    with Library(settings, embedder=embedder) as lib:
        answer = lib.search("what did the UN Security Council say?")
        assert answer.answered
        top = answer.hits[0]
        assert "Security Council" in top.article.title
        assert "sanctions" in top.text and "Council" in (top.best_sentence_text or "")
        # the passage where the Council condemned the test and threatened sanctions is on the first page
        assert any("condemned" in h.text and "sanctions" in h.text for h in answer.hits[:settings.search.k])
        assert top.text == top.article.text[top.start:top.end]
        assert len(answer.hits) == 3 * settings.search.k


def test_search_reads_the_texts_of_the_passages_it_keeps_only(sample_settings: Settings, embedder: Embedder,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Candidates are ranked on their article and date; texts (overflow pages at scale) are read once, for
    the passages that are shown (or reranked)."""
    with Library(sample_settings, embedder=embedder) as lib:
        asked: list[list[int]] = []
        read = lib.store.get_passages
        monkeypatch.setattr(lib.store, "get_passages", lambda ids: asked.append(list(ids)) or read(ids))
        answer = lib.search("what did the UN Security Council say?", k=2, limit=4)
        assert lib.store.count_passages() > 4 * 3  # so that reading every candidate would show
        assert asked == [[hit.passage_id for hit in answer.hits]] and len(answer.hits) == 4
        origins = lib.store.passage_origins([hit.passage_id for hit in answer.hits] + [10**9])
        assert {pid: o.article_id for pid, o in origins.items()} == {h.passage_id: h.article.id for h in answer.hits}
        assert [origins[h.passage_id].published for h in answer.hits] == [h.article.published for h in answer.hits]


def test_best_sentence_holds_the_fact(sample_settings: Settings, embedder: Embedder) -> None:
    with Library(sample_settings, embedder=embedder) as lib:
        answer = lib.search("Where did the Perseverance rover land?")
        assert "Perseverance" in answer.hits[0].article.title
        assert "Jezero" in (answer.hits[0].best_sentence_text or "")


def test_unrelated_question_is_not_answered(sample_settings: Settings, embedder: Embedder) -> None:
    with Library(sample_settings, embedder=embedder) as lib:
        answer = lib.search("best sourdough bread recipe with rye flour")
        assert not answer.answered
        assert answer.closest is not None  # still names the nearest article
        assert not lib.search("   ").hits


def test_add_duplicate_replace_remove_and_list(library: Library) -> None:
    first = library.add_text(BODY * 2, title="Libraries get longer hours", url="https://news.test/a?utm_source=x",
                             published="2024-05-02")
    assert first.status == "added" and first.passages >= 1
    article_id = first.article.id
    # same URL variant, same text -> duplicate
    again = library.add_text(BODY * 2, title="Libraries get longer hours", url="https://www.news.test/a/#top")
    assert again.status == "duplicate" and again.article.id == article_id
    # same text under another URL -> duplicate of the first
    copy = library.add_text(BODY * 2, title="Copy elsewhere", url="https://other.test/copy")
    assert copy.status == "duplicate" and copy.article.id == article_id
    # changed text under the same URL -> replaces, keeps the id
    changed = library.add_text(BODY * 2 + "The mayor signed the plan on Wednesday.", title="Libraries get longer hours",
                               url="https://news.test/a")
    assert changed.status == "replaced" and changed.article.id == article_id
    assert library.count_articles() == 1
    assert len(library.vectors) == library.store.count_passages() == changed.passages
    second = library.add_text("Harbour museum opens\n" + OTHER_BODY * 2, published="2024-06-01")
    assert [a.id for a in library.list_articles()] == [second.article.id, article_id]  # newest first
    removed = library.remove(article_id)
    assert removed is not None and removed.id == article_id
    assert library.remove(article_id) is None
    assert library.count_articles() == 1
    assert len(library.vectors) == library.store.count_passages()
    assert all(h.article.id != article_id for h in library.search("library opening hours").hits)


def test_bad_inputs_are_refused_and_nothing_is_stored(library: Library, tmp_path: Path) -> None:
    binary = tmp_path / "blob.txt"
    binary.write_bytes(bytes(range(256)) * 10)
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as handle:
        handle.truncate(50 * 1024 * 1024)
    folder = tmp_path / "folder.md"
    folder.mkdir()
    outcomes = {
        "empty": library.add_text("   "),
        "short": library.add_text("Title\nToo short to be an article."),
        "binary": library.add_file(binary),
        "huge": library.add_file(huge),
        "missing": library.add_file(tmp_path / "nope.md"),
        "folder": library.add_file(folder),
        "empty file": library.add_bytes(b"", "empty.md"),
        "bad type": library.add_bytes(b"data", "x.exe"),
        "path in name": library.add_bytes(b"\x00\x01", "../../etc/passwd.txt"),
    }
    for name, result in outcomes.items():
        assert result.status == "failed", name
        assert result.message and "Traceback" not in result.message, name
    assert "too large" in outcomes["huge"].message
    assert "binary" in outcomes["binary"].message
    assert outcomes["path in name"].source == "passwd.txt"
    assert library.count_articles() == 0 and len(library.vectors) == 0


def test_html_special_characters_survive(library: Library) -> None:
    text = "Tags & <b>entities</b>\n" + "AT&T said 3 < 4 and \"quotes\" & <i>markup</i> stay as text. " * 8
    result = library.add_text(text)
    assert result.status == "added"
    hit = library.search("AT&T markup quotes").hits[0]
    assert "<i>markup</i>" in hit.text and hit.article.title == "Tags & <b>entities</b>"


def test_library_persists_across_restart(settings: Settings, embedder: Embedder) -> None:
    with Library(settings, embedder=embedder) as lib:
        lib.add_text(BODY * 2, title="Libraries get longer hours", published=date(2024, 5, 2))
    with Library(settings, embedder=embedder) as lib:
        assert lib.count_articles() == 1
        assert len(lib.vectors) == lib.store.count_passages() > 0
        assert "Libraries" in lib.search("opening hours of libraries").hits[0].article.title


def test_changes_through_another_connection_are_seen(settings: Settings, embedder: Embedder) -> None:
    with Library(settings, embedder=embedder) as reader:
        with Library(settings, embedder=embedder) as writer:
            writer.add_text(BODY * 2, title="Written elsewhere")
        assert reader.search("library budget parking fees").hits[0].article.title == "Written elsewhere"


def test_republished_copy_is_linked_not_indexed_again(library: Library) -> None:
    story = BODY * 3 + "The mayor is expected to sign the plan next week after a final reading."
    first = library.add_text(story, title="Libraries get longer hours", url="https://wire.test/libraries")
    assert first.status == "added"
    # another outlet republishes the wire story with its own headline and a one-line intro
    copy = library.add_text("From our partners at the wire. " + story, title="Longer library hours approved",
                            url="https://daily.test/news/libraries-hours")
    assert copy.status == "duplicate" and copy.article.id == first.article.id
    assert "same story" in copy.message
    assert library.count_articles() == 1
    # the copy's address is now linked: adding it again is recognised at once
    again = library.add_text("From our partners at the wire. " + story, title="Longer library hours approved",
                             url="https://daily.test/news/libraries-hours?utm_source=x")
    assert again.status == "duplicate" and again.article.id == first.article.id
    # a different story on the same topic is not a copy
    other = library.add_text(OTHER_BODY * 2, title="Museum opens", url="https://daily.test/news/museum")
    assert other.status == "added"
    # removing the original drops its links too
    library.remove(first.article.id)
    assert library.store.find_alias("url:https://daily.test/news/libraries-hours") is None


def test_a_model_change_re_embeds_every_passage(settings: Settings, embedder: Embedder) -> None:
    with Library(settings, embedder=embedder) as lib:
        lib.add_text(BODY * 2, title="First article")
        lib.add_text(OTHER_BODY * 2, title="Second article")
        ids = list(lib.store.passage_ids())
        before = lib.vectors.reconstruct(ids)
        lib.store.set_meta("embedding_model", "an older model|384")  # as if these vectors were that model's
    with Library(settings, embedder=embedder) as lib:
        assert lib.store.get_meta("embedding_model") == f"{embedder.name}|{embedder.dimension}"
        # embedded again (in one batch, so not to the last bit): the same vectors in the index and the store
        assert np.min(np.sum(lib.vectors.reconstruct(ids) * before, axis=1)) > 0.999
        _, stored, lacking = lib.store.vectors(ids, embedder.dimension)
        assert not lacking and np.allclose(stored, lib.vectors.reconstruct(ids)) and len(lib.vectors) == len(ids)
        assert lib.search("maritime museum ship models").hits[0].article.title == "Second article"


class MeetingEmbedder:
    """The session's embedder, whose ``embed`` waits until every adder has reached it: by then each
    has looked for duplicates (before embedding) and found none."""

    def __init__(self, embedder: Embedder, parties: int) -> None:
        self.embedder = embedder
        self.meeting = threading.Barrier(parties, timeout=120)

    def __getattr__(self, name: str):
        return getattr(self.embedder, name)

    def embed(self, texts: Sequence[str], *, show_progress: bool = False, batch_size: int | None = None) -> np.ndarray:
        self.meeting.wait()
        return self.embedder.embed(texts, show_progress=show_progress, batch_size=batch_size)


def test_two_libraries_adding_the_same_article_at_once(settings: Settings, embedder: Embedder) -> None:
    """Two processes (on PostgreSQL: two replicas) add one article at the same moment: the writer lock
    makes the second see the first's article, so one is added and one is a duplicate, not an error."""
    settings = settings.replace("library", lock_timeout=60.0)
    meeting = MeetingEmbedder(embedder, 2)
    results = []

    def add(library: Library) -> None:
        results.append(library.add_text(BODY * 2, title="Libraries get longer hours", url="https://news.test/a"))

    with Library(settings, embedder=meeting) as one, \
            Library(settings, embedder=meeting) as two:  # type: ignore[arg-type]
        adders = [threading.Thread(target=add, args=(library,)) for library in (one, two)]
        for adder in adders:
            adder.start()
        for adder in adders:
            adder.join()
        assert sorted(r.status for r in results) == ["added", "duplicate"], [r.message for r in results]
        assert results[0].article.id == results[1].article.id
        assert one.count_articles() == two.count_articles() == 1
        assert one.store.count_passages() == results[0].passages


def test_two_libraries_on_one_store_see_each_others_changes_at_once(settings: Settings, embedder: Embedder) -> None:
    """Two bot replicas (or the bot and the command line) open on one store at the same time."""
    story = BODY * 3 + "The mayor is expected to sign the plan next week after a final reading."
    with Library(settings, embedder=embedder) as one, Library(settings, embedder=embedder) as two:
        added = one.add_text(story, title="Written by one", url="https://wire.test/libraries")
        assert two.search("library budget parking fees").hits[0].article.id == added.article.id
        copy = two.add_text("From our partners at the wire. " + story, title="Copied by two",
                            url="https://daily.test/libraries")
        assert copy.status == "duplicate" and copy.article.id == added.article.id  # one's article is known to two
        other = two.add_text(OTHER_BODY * 2, title="Written by two")
        assert one.search("maritime museum ship models").hits[0].article.id == other.article.id
        one.remove(other.article.id)
        assert all(h.article.id != other.article.id for h in two.search("maritime museum ship models").hits)
        assert one.stats().vectors == two.stats().vectors == two.store.count_passages() == added.passages


# -- the embedded store only: its SQLite and FAISS files (crash repair), its data-directory lock, and file
# backups. The PostgreSQL store has no files to lose or repair; its own lock and backups are tested below.
def test_crash_between_sqlite_commit_and_index_write_is_repaired(embedded_settings: Settings,
                                                                 embedder: Embedder) -> None:
    data_dir = embedded_settings.library.data_dir
    with Library(embedded_settings, embedder=embedder) as lib:
        lib.add_text(BODY * 2, title="First article")
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(PROJECT)!r})
        from index.config import load_settings
        from index.library import Library
        from index.stores.embedded.vectors import VectorIndex
        settings = load_settings(environ={{"NEWSBOT_DATA_DIR": {str(data_dir)!r}}})
        lib = Library(settings)
        VectorIndex.save = lambda self, path: os._exit(9)  # die after the SQLite commit
        lib.add_text({(OTHER_BODY * 2)!r}, title="Second article")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr
    saved = faiss.read_index(str(data_dir / VECTORS_FILE))
    with Library(embedded_settings, embedder=embedder) as lib:
        assert lib.count_articles() == 2
        assert saved.ntotal < lib.store.count_passages(), "the crash should have left the index behind"
        assert sorted(lib.vectors.ids()) == sorted(lib.store.passage_ids())
        assert lib.search("museums budget").hits[0].article.title == "Second article"
        passages = lib.store.count_passages()
    # the repaired index was saved, so the next start finds it complete
    assert faiss.read_index(str(data_dir / VECTORS_FILE)).ntotal == passages


def test_lost_index_and_vectors_are_rebuilt_by_re_embedding(embedded_settings: Settings, embedder: Embedder) -> None:
    with Library(embedded_settings, embedder=embedder) as lib:
        lib.add_text(BODY * 2, title="First article")
        before = lib.vectors.reconstruct(list(lib.store.passage_ids()))
        lib.store.clear_vectors()
    (embedded_settings.library.data_dir / VECTORS_FILE).write_bytes(b"garbage")
    with Library(embedded_settings, embedder=embedder) as lib:
        after = lib.vectors.reconstruct(list(lib.store.passage_ids()))
        assert np.allclose(before, after, atol=1e-4)
        _, stored, lacking = lib.store.vectors(lib.store.passage_ids(), embedder.dimension)
        assert not lacking and len(stored) == len(after)


def test_a_second_writer_is_refused_with_a_clear_message(embedded_settings: Settings, embedder: Embedder) -> None:
    with Library(embedded_settings, embedder=embedder) as lib:
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time, filelock; l = filelock.FileLock(sys.argv[1]); l.acquire(); "
             "print('locked', flush=True); time.sleep(60)", str(embedded_settings.library.data_dir / LOCK_FILE)],
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            with pytest.raises(LibraryBusy, match="another process"):
                lib.add_text(BODY * 2, title="Blocked")
            assert lib.count_articles() == 0
        finally:
            holder.kill()
            holder.wait()
        assert lib.add_text(BODY * 2, title="Now it works").status == "added"


def test_database_files_live_in_the_data_dir(embedded_settings: Settings, embedder: Embedder) -> None:
    with Library(embedded_settings, embedder=embedder) as library:
        library.add_text(BODY * 2, title="Files")
        assert (library.data_dir / DATABASE_FILE).exists() and (library.data_dir / VECTORS_FILE).exists()
        stats = library.stats()
        assert stats.articles == 1 and stats.passages == stats.vectors > 0 and stats.index_bytes > 0
        assert (stats.store, stats.location) == ("embedded", str(library.data_dir))


def test_backup_while_in_use_and_restore(embedded_settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    with Library(embedded_settings, embedder=embedder) as lib:
        first = lib.add_text(BODY * 2, title="Kept in the backup")
        backup = lib.backup(tmp_path / "backup")  # the library stays open and usable
        with pytest.raises(Exception, match="not empty"):
            lib.backup(backup)
        lib.add_text(OTHER_BODY * 2, title="Added after the backup")
        assert lib.count_articles() == 2
        with Library(embedded_settings, embedder=embedder) as other_process_view:
            stats = lib.restore(backup)
            assert stats.articles == 1 and stats.vectors == stats.passages
            assert lib.search("library opening hours budget").hits[0].article.id == first.article.id
            # another open library (e.g. the bot) sees the restored content too
            assert other_process_view.count_articles() == 1
            assert all(h.article.id == first.article.id for h in other_process_view.search("maritime museum").hits)
    fresh = embedded_settings.replace("library", data_dir=tmp_path / "fresh")
    with Library(fresh, embedder=embedder) as lib:
        assert lib.restore(backup).articles == 1
        with pytest.raises(Exception, match="no library backup"):
            lib.restore(tmp_path / "nowhere")


THIRD_BODY = ("A volcano on the northern island erupted overnight, sending ash across three villages. "
              "Geologists had warned of rising gas levels for weeks before the eruption began. "
              "Residents were moved to a sports hall, and flights were cancelled until the ash cloud clears. ")


def keyword_titles(lib: Library, question: str) -> set[str]:
    """Titles of the articles whose passages the keyword index finds for the question."""
    rows = lib.store.get_passages([pid for pid, _ in lib.backend.keywords.lexical_search(question, 20)])
    return {lib.store.get_article(row.article_id).title for row in rows.values()}


def test_keyword_postings_are_saved_read_back_and_repaired(embedded_settings: Settings, embedder: Embedder,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keywords, "SAVE_AFTER_PASSAGES", 0)  # write the file after every change
    data_dir = embedded_settings.library.data_dir
    with Library(embedded_settings, embedder=embedder) as lib:
        lib.add_text(BODY * 2, title="First article")
        lib.add_text(OTHER_BODY * 2, title="Second article")
    assert (data_dir / KEYWORDS_FILE).exists()
    built: list[int] = []
    monkeypatch.setattr(KeywordIndex, "add", lambda self, ids, bodies: built.append(len(ids)))
    with Library(embedded_settings, embedder=embedder) as lib:  # read from the file, nothing re-indexed
        assert keyword_titles(lib, "lighthouse keepers") == {"Second article"} and built == []
        assert lib.stats().index_bytes == sum((data_dir / name).stat().st_size for name in (VECTORS_FILE, KEYWORDS_FILE))
    monkeypatch.undo()
    (data_dir / KEYWORDS_FILE).write_bytes(b"garbage")
    with Library(embedded_settings, embedder=embedder) as lib:  # rebuilt from SQLite
        assert keyword_titles(lib, "parking fees librarians") == {"First article"}


def test_keywords_follow_a_restore_whose_passage_ids_are_used_again(embedded_settings: Settings,
                                                                    embedder: Embedder, tmp_path: Path) -> None:
    with Library(embedded_settings, embedder=embedder) as lib, \
            Library(embedded_settings, embedder=embedder) as bot:  # another process's view
        lib.add_text(BODY * 2, title="Kept in the backup")
        backup = lib.backup(tmp_path / "backup")
        lib.add_text(OTHER_BODY * 2, title="Added after the backup")
        bot.refresh()
        assert keyword_titles(bot, "maritime museum") == {"Added after the backup"}
        lib.restore(backup)
        lib.add_text(THIRD_BODY * 2, title="Added after the restore")  # takes the ids of the lost article
        for view in (lib, bot):
            view.refresh()
            assert keyword_titles(view, "maritime museum lighthouse") == set()
            assert keyword_titles(view, "volcano eruption ash") == {"Added after the restore"}
            assert view.search("volcano eruption ash").hits[0].article.title == "Added after the restore"


# -- the PostgreSQL store only: its advisory lock, interrupted re-embedding, pg_dump backups -----------
def test_a_second_writer_is_refused_while_another_replica_holds_the_lock(postgres_settings: Settings,
                                                                         embedder: Embedder) -> None:
    with Library(postgres_settings, embedder=embedder) as lib, \
            psycopg.connect(postgres_settings.postgres.dsn, autocommit=True) as other_replica:
        other_replica.execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK,))
        with pytest.raises(LibraryBusy, match="another process"):
            lib.add_text(BODY * 2, title="Blocked")
        assert lib.count_articles() == 0
        assert lib.search("library budget").hits == []  # readers do not wait
        other_replica.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK,))
        assert lib.add_text(BODY * 2, title="Now it works").status == "added"


def test_passages_left_without_a_vector_are_embedded_at_the_next_start(postgres_settings: Settings,
                                                                       embedder: Embedder) -> None:
    with Library(postgres_settings, embedder=embedder) as lib:
        lib.add_text(BODY * 2, title="First article")
        lib.add_text(OTHER_BODY * 2, title="Second article")
        ids = list(lib.store.passage_ids())
        before = lib.vectors.reconstruct(ids)
        lib.vectors.remove(ids[1:])  # a re-embedding interrupted after the first passage
        assert lib.store.passages_without_vector(10) == ids[1:]
        # a search meanwhile finds the passages that have a vector, and skips the others
        assert all(h.passage_id == ids[0] for h in lib.search("maritime museum ship models").hits)
    with Library(postgres_settings, embedder=embedder) as lib:
        assert lib.store.count_passages_without_vector() == 0
        assert np.min(np.sum(lib.vectors.reconstruct(ids) * before, axis=1)) > 0.999


def test_postgres_stats_and_backups_left_to_pg_dump(postgres_settings: Settings, embedder: Embedder,
                                                    tmp_path: Path) -> None:
    with Library(postgres_settings, embedder=embedder) as lib:
        added = lib.add_text(BODY * 2, title="Counted")
        stats = lib.stats()
        assert (stats.articles, stats.passages, stats.vectors) == (1, added.passages, added.passages)
        assert stats.database_bytes > 1_000_000 and stats.index_bytes > 0 and stats.store == "postgres"
        assert stats.location.startswith("PostgreSQL database newsbot_test_")
        with pytest.raises(IngestError, match="pg_dump"):
            lib.backup(tmp_path / "backup")
        with pytest.raises(IngestError, match="pg_restore"):
            lib.restore(tmp_path / "backup")
        assert not (tmp_path / "backup").exists() and lib.count_articles() == 1
    env = {"NEWSBOT_LIBRARY_STORE": "postgres", "NEWSBOT_POSTGRES_DSN": postgres_settings.postgres.dsn}
    cli = run_cli("backup", str(tmp_path / "backup"), data_dir=tmp_path / "unused", env=env)
    assert cli.returncode == 2 and cli.stderr.startswith("error: This library is kept in the PostgreSQL database")
    assert "pg_dump" in cli.stderr and "Traceback" not in cli.stderr


def test_a_database_that_cannot_be_used_gets_a_clear_error(postgres_settings: Settings, embedder: Embedder,
                                                          tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="NEWSBOT_POSTGRES_DSN"):
        Library(postgres_settings.replace("postgres", dsn=""), embedder=embedder)
    nowhere = postgres_settings.replace("postgres", dsn=f"host={tmp_path} dbname=nothing password=secret")
    with pytest.raises(LibraryUnavailable, match=f"PostgreSQL database nothing on {tmp_path} cannot be used") as error:
        Library(nowhere, embedder=embedder)
    assert "secret" not in str(error.value)
