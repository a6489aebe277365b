"""Backups of the embedded store carry a manifest, and a restore checks a backup completely before it touches
the library (issue 18, defect 2): a damaged, truncated, foreign or mismatched backup is refused with one
clear message, and the live library stays byte-for-byte as it was."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from index.config import Settings
from index.embedding.embedder import Embedder
from index.errors import BackupError
from index.library import Library
from index.stores.embedded.backup import MANIFEST_FILE, STAGING_PREFIX, Manifest, write_manifest
from index.stores.embedded.directory import DATABASE_FILE, VECTORS_FILE
from index.stores.embedded.store import SCHEMA_VERSION
from tests.support.helpers import run_cli

TITLE_ADDED_LATER = "Added after the backup"
LATER_TEXT = ("The lighthouse keepers' cottages on the northern cape were restored by volunteers over two summers. "
              "They now house a small museum about the keepers' lives and the ships they guided. ") * 3


def file_digests(folder: Path) -> dict[str, str]:
    """Every regular file in ``folder`` with the SHA-256 of its bytes."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.iterdir()) if path.is_file()}


@pytest.fixture
def library_dir(sample_library_dir: Path, tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    shutil.copytree(sample_library_dir, data_dir)
    return data_dir


@pytest.fixture
def good_backup(library_dir: Path, embedded_settings: Settings, embedder: Embedder, tmp_path: Path) -> Path:
    """A backup of the sample library, made while an article more is then added to the library."""
    settings = embedded_settings.replace("library", data_dir=library_dir)
    with Library(settings, embedder=embedder) as library:
        backup = library.backup(tmp_path / "backup")
        library.add_text(LATER_TEXT, title=TITLE_ADDED_LATER)
    return backup


def damaged_copy(good: Path, folder: Path) -> Path:
    shutil.copytree(good, folder)
    return folder


def overwrite_middle(path: Path, size: int = 8192) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096  # whole pages from the middle of the file
    data[middle:middle + size] = bytes([0xA5]) * size
    path.write_bytes(bytes(data))


def truncate_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def set_schema_version(path: Path, version: int) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))


def drop_table(path: Path, table: str) -> None:
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(f"DROP TABLE {table}")


def edit_manifest(folder: Path, **contents: object) -> None:
    path = folder / MANIFEST_FILE
    data = json.loads(path.read_text())
    data["contents"].update(contents)
    path.write_text(json.dumps(data))


def test_backup_writes_a_manifest_of_its_files_and_counts(good_backup: Path) -> None:
    manifest = Manifest.from_json((good_backup / MANIFEST_FILE).read_text())
    assert set(manifest.files) == {DATABASE_FILE, VECTORS_FILE}
    for name, entry in manifest.files.items():
        assert entry.bytes == (good_backup / name).stat().st_size
        assert entry.sha256 == hashlib.sha256((good_backup / name).read_bytes()).hexdigest()
    contents = manifest.contents
    assert (contents.schema_version, contents.articles) == (SCHEMA_VERSION, 7)
    assert contents.passages == contents.vectors > 0
    assert contents.embedding_model and contents.embedding_model.endswith("|384")
    assert manifest.created


def test_damaged_backups_are_refused_and_the_library_stays_as_it_was(good_backup: Path, library_dir: Path,
                                                                      tmp_path: Path) -> None:
    database = DATABASE_FILE
    cases: list[tuple[str, Path, str]] = []

    def case(name: str, expected: str, damage) -> None:  # noqa: ANN001 - a small local helper
        folder = damaged_copy(good_backup, tmp_path / name)
        damage(folder)
        cases.append((name, folder, expected))

    case("corrupted", "checksum differs from the manifest", lambda f: overwrite_middle(f / database))
    case("corrupted-old", "library.sqlite3 is damaged", lambda f: (
        overwrite_middle(f / database), (f / MANIFEST_FILE).unlink()))
    case("truncated", "bytes where the manifest recorded", lambda f: truncate_half(f / database))
    case("truncated-old", "library.sqlite3 is damaged", lambda f: (
        truncate_half(f / database), (f / MANIFEST_FILE).unlink()))
    case("newer-schema", f"has schema version 99, and this version of the project opens versions 1 to "
         f"{SCHEMA_VERSION}", lambda f: (set_schema_version(f / database, 99), write_manifest(f)))
    case("missing-table", "lacks the table 'feeds'", lambda f: (drop_table(f / database, "feed_entries"),
                                                                 drop_table(f / database, "feeds"),
                                                                 write_manifest(f)))
    case("manifest-mismatch", "articles 7 where it recorded 8", lambda f: edit_manifest(f, articles=8))
    case("bad-manifest", "not a readable backup manifest", lambda f: (f / MANIFEST_FILE).write_text("{not json"))
    case("vectors-damaged", f"{VECTORS_FILE} is damaged", lambda f: overwrite_middle(f / VECTORS_FILE, 64))

    baseline = run_cli("stats", data_dir=library_dir)  # opening and closing the library changes nothing
    assert baseline.returncode == 0 and "articles:       8" in baseline.stdout, baseline.stderr
    before = file_digests(library_dir)
    for name, folder, expected in cases:
        result = run_cli("restore", str(folder), data_dir=library_dir)
        assert result.returncode != 0, f"{name}: {result.stdout}"
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], f"{name}: {result.stderr}"
        assert "nothing was restored" in lines[0]
        assert file_digests(library_dir) == before, f"{name} changed the library"
    stats = run_cli("stats", data_dir=library_dir)
    assert stats.returncode == 0 and "articles:       8" in stats.stdout, stats.stderr
    assert not list(library_dir.glob(STAGING_PREFIX + "*"))


def test_a_good_backup_restores_as_before(good_backup: Path, library_dir: Path) -> None:
    result = run_cli("restore", str(good_backup), data_dir=library_dir)
    assert result.returncode == 0 and "restored 7 articles" in result.stdout, result.stderr
    listing = run_cli("list", "--limit", "20", data_dir=library_dir)
    assert TITLE_ADDED_LATER not in listing.stdout and "of 7" in listing.stdout
    assert not list(library_dir.glob(STAGING_PREFIX + "*"))


def test_a_backup_from_an_earlier_version_without_manifest_is_restored_with_a_note(
        good_backup: Path, library_dir: Path, embedded_settings: Settings, embedder: Embedder,
        caplog: pytest.LogCaptureFixture) -> None:
    (good_backup / MANIFEST_FILE).unlink()
    settings = embedded_settings.replace("library", data_dir=library_dir)
    with Library(settings, embedder=embedder) as library:
        assert library.count_articles() == 8
        stats = library.restore(good_backup)
        assert stats.articles == 7 and stats.vectors == stats.passages
    assert "has no manifest" in caplog.text and "integrity check" in caplog.text


@pytest.mark.parametrize("name", ["odd?name#part%41", "100%", "what?mode=rw"])
def test_paths_with_uri_characters_back_up_and_restore(name: str, good_backup: Path,
                                                       embedded_settings: Settings, embedder: Embedder,
                                                       tmp_path: Path) -> None:
    """Characters that mean something in an SQLite URI, in the backup's path and in the data directory's."""
    folder = tmp_path / "odd" / name
    data_dir = tmp_path / "odd" / f"library {name}"
    beside = sorted(p.name for p in tmp_path.iterdir())
    with Library(embedded_settings.replace("library", data_dir=data_dir), embedder=embedder) as library:
        library.add_text(LATER_TEXT, title=TITLE_ADDED_LATER)
        library.backup(folder)
        assert (folder / MANIFEST_FILE).exists()
        assert library.restore(good_backup).articles == 7
        assert library.restore(folder).articles == 1
    assert sorted(p.name for p in (tmp_path / "odd").iterdir()) == sorted([name, f"library {name}"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*beside, "odd"])  # no stray file anywhere


def test_a_failed_restore_in_process_leaves_the_open_library_and_other_views_working(
        good_backup: Path, library_dir: Path, embedded_settings: Settings, embedder: Embedder,
        tmp_path: Path) -> None:
    broken = damaged_copy(good_backup, tmp_path / "broken")
    overwrite_middle(broken / DATABASE_FILE)
    settings = embedded_settings.replace("library", data_dir=library_dir)
    with Library(settings, embedder=embedder) as library, Library(settings, embedder=embedder) as other_view:
        with pytest.raises(BackupError, match="nothing was restored"):
            library.restore(broken)
        for view in (library, other_view):
            view.refresh()
            assert view.count_articles() == 8
            assert view.search("lighthouse keepers cottages museum").hits[0].article.title == TITLE_ADDED_LATER
        with pytest.raises(BackupError, match="not empty"):
            library.backup(broken)
        with pytest.raises(BackupError, match="not empty"):
            library.backup(broken / DATABASE_FILE)  # a file, not a folder
