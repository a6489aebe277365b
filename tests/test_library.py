"""The library with the real model and real SQLite/FAISS files on disk."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import faiss
import numpy as np
import pytest

from index.config import Settings
from index.embedding import Embedder
from index.library import DATABASE_FILE, LOCK_FILE, VECTORS_FILE, Library, LibraryBusy

PROJECT = Path(__file__).resolve().parent.parent
BODY = ("The city council approved a new budget for public libraries on Tuesday evening. "
        "The plan adds evening opening hours at four branches and funds a mobile library van. "
        "Council members said the cost would be covered by a small rise in parking fees. "
        "Librarians welcomed the decision but warned that staff numbers remain too low. ")
OTHER_BODY = ("A new museum of maritime history opened its doors in the old customs house on Saturday. "
              "Visitors queued along the quay to see a restored fishing boat and a collection of ship models. "
              "The museum budget comes from a regional fund and ticket sales over the next five years. "
              "Curators plan a second gallery about lighthouse keepers for the spring. ")


def test_sample_question_finds_the_security_council_passage(sample_library_dir: Path, settings: Settings,
                                                            embedder: Embedder) -> None:
    settings = settings.replace("library", data_dir=sample_library_dir)
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


def test_best_sentence_holds_the_fact(sample_library_dir: Path, settings: Settings, embedder: Embedder) -> None:
    settings = settings.replace("library", data_dir=sample_library_dir)
    with Library(settings, embedder=embedder) as lib:
        answer = lib.search("Where did the Perseverance rover land?")
        assert "Perseverance" in answer.hits[0].article.title
        assert "Jezero" in (answer.hits[0].best_sentence_text or "")


def test_unrelated_question_is_not_answered(sample_library_dir: Path, settings: Settings, embedder: Embedder) -> None:
    settings = settings.replace("library", data_dir=sample_library_dir)
    with Library(settings, embedder=embedder) as lib:
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


def test_crash_between_sqlite_commit_and_index_write_is_repaired(settings: Settings, embedder: Embedder) -> None:
    data_dir = settings.library.data_dir
    with Library(settings, embedder=embedder) as lib:
        lib.add_text(BODY * 2, title="First article")
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(PROJECT)!r})
        from index.config import load_settings
        from index.library import Library
        from index.vectors import VectorIndex
        settings = load_settings(environ={{"NEWSBOT_DATA_DIR": {str(data_dir)!r}}})
        lib = Library(settings)
        VectorIndex.save = lambda self, path: os._exit(9)  # die after the SQLite commit
        lib.add_text({(OTHER_BODY * 2)!r}, title="Second article")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr
    saved = faiss.read_index(str(data_dir / VECTORS_FILE))
    with Library(settings, embedder=embedder) as lib:
        assert lib.count_articles() == 2
        assert saved.ntotal < lib.store.count_passages(), "the crash should have left the index behind"
        assert sorted(lib.vectors.ids()) == sorted(lib.store.passage_ids())
        assert lib.search("museums budget").hits[0].article.title == "Second article"
        passages = lib.store.count_passages()
    # the repaired index was saved, so the next start finds it complete
    assert faiss.read_index(str(data_dir / VECTORS_FILE)).ntotal == passages


def test_lost_index_and_vectors_are_rebuilt_by_re_embedding(settings: Settings, embedder: Embedder) -> None:
    with Library(settings, embedder=embedder) as lib:
        lib.add_text(BODY * 2, title="First article")
        before = lib.vectors.reconstruct(list(lib.store.passage_ids()))
        lib.store.clear_vectors()
    (settings.library.data_dir / VECTORS_FILE).write_bytes(b"garbage")
    with Library(settings, embedder=embedder) as lib:
        after = lib.vectors.reconstruct(list(lib.store.passage_ids()))
        assert np.allclose(before, after, atol=1e-4)
        _, stored, lacking = lib.store.vectors(lib.store.passage_ids(), embedder.dimension)
        assert not lacking and len(stored) == len(after)


def test_a_second_writer_is_refused_with_a_clear_message(settings: Settings, embedder: Embedder) -> None:
    with Library(settings, embedder=embedder) as lib:
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time, filelock; l = filelock.FileLock(sys.argv[1]); l.acquire(); "
             "print('locked', flush=True); time.sleep(60)", str(settings.library.data_dir / LOCK_FILE)],
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


def test_changes_through_another_connection_are_seen(settings: Settings, embedder: Embedder) -> None:
    with Library(settings, embedder=embedder) as reader:
        with Library(settings, embedder=embedder) as writer:
            writer.add_text(BODY * 2, title="Written elsewhere")
        assert reader.search("library budget parking fees").hits[0].article.title == "Written elsewhere"


def test_database_files_live_in_the_data_dir(library: Library) -> None:
    library.add_text(BODY * 2, title="Files")
    assert (library.data_dir / DATABASE_FILE).exists() and (library.data_dir / VECTORS_FILE).exists()
    stats = library.stats()
    assert stats.articles == 1 and stats.passages == stats.vectors > 0 and stats.index_bytes > 0


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


def test_backup_while_in_use_and_restore(settings: Settings, embedder: Embedder, tmp_path: Path) -> None:
    with Library(settings, embedder=embedder) as lib:
        first = lib.add_text(BODY * 2, title="Kept in the backup")
        backup = lib.backup(tmp_path / "backup")  # the library stays open and usable
        with pytest.raises(Exception, match="not empty"):
            lib.backup(backup)
        lib.add_text(OTHER_BODY * 2, title="Added after the backup")
        assert lib.count_articles() == 2
        with Library(settings, embedder=embedder) as other_process_view:
            stats = lib.restore(backup)
            assert stats.articles == 1 and stats.vectors == stats.passages
            assert lib.search("library opening hours budget").hits[0].article.id == first.article.id
            # another open library (e.g. the bot) sees the restored content too
            assert other_process_view.count_articles() == 1
            assert all(h.article.id == first.article.id for h in other_process_view.search("maritime museum").hits)
    fresh = settings.replace("library", data_dir=tmp_path / "fresh")
    with Library(fresh, embedder=embedder) as lib:
        assert lib.restore(backup).articles == 1
        with pytest.raises(Exception, match="no library backup"):
            lib.restore(tmp_path / "nowhere")
