"""The command line as a user runs it, and adding articles from a web server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from index.config import Settings
from index.embedding.embedder import Embedder
from index.library import Library
from tests.support.helpers import run_cli


@pytest.fixture
def web_library(settings: Settings, embedder: Embedder) -> Iterator[Library]:
    """A library allowed to fetch from the test server on 127.0.0.1 (the SSRF guard refuses it otherwise)."""
    allowed = settings.replace("fetch", allow_hosts=("127.0.0.1",))
    with Library(allowed, embedder=embedder) as library:
        yield library


def test_add_from_urls_with_clear_errors(web_library: Library, site: str) -> None:
    library = web_library
    ok = library.add_url(f"{site}/story")
    assert ok.status == "added", ok.message
    assert ok.article.title == "Port strike ends after nine days" and ok.article.url == f"{site}/story"
    assert library.add_url(f"{site}/story?utm_source=feed").status == "duplicate"
    assert library.add_url(f"{site}/moved").status == "duplicate"
    failures = {
        "404": library.add_url(f"{site}/missing"),
        "not a page": library.add_url(f"{site}/image"),
        "no article": library.add_url(f"{site}/menu"),
        "not a url": library.add_url("ftp://example.org/x"),
        "unreachable": library.add_url("http://127.0.0.1:9/"),
    }
    assert "404" in failures["404"].message
    assert "not a web page" in failures["not a page"].message
    assert "could not be reached" in failures["unreachable"].message
    assert all(r.status == "failed" and r.message for r in failures.values())
    assert library.count_articles() == 1


def test_oversized_download_is_refused(web_library: Library, site: str) -> None:
    small = web_library.settings.replace("library", max_file_bytes=100_000)
    limited = Library(small, embedder=web_library.embedder)
    try:
        result = limited.add_url(f"{site}/big")
        assert result.status == "failed" and "too large" in result.message
    finally:
        limited.close()


def test_cli_add_search_list_remove_stats(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    added = run_cli("add", "--samples", data_dir=data_dir)
    assert added.returncode == 0, added.stderr
    assert "7 added" in added.stdout
    again = run_cli("add", "--samples", str(tmp_path / "missing.md"), data_dir=data_dir)
    assert again.returncode == 1 and "7 duplicate" in again.stdout and "does not exist" in again.stdout
    found = run_cli("search", "what did the UN Security Council say?", data_dir=data_dir)
    assert found.returncode == 0 and found.stdout.startswith("1. UN Security Council condemns")
    assert ">> " in found.stdout and "condemned" in found.stdout
    listing = run_cli("list", "--limit", "2", data_dir=data_dir)
    assert "#7" in listing.stdout and "1-2 of 7" in listing.stdout
    removed = run_cli("remove", "2", "99", data_dir=data_dir)
    assert removed.returncode == 1 and "removed" in removed.stdout and "no such article" in removed.stderr
    stats = run_cli("stats", data_dir=data_dir)
    assert "articles:       6" in stats.stdout
    text = run_cli("add", "--text", "Short", data_dir=data_dir)
    assert text.returncode == 1 and "Too little text" in text.stdout
    empty = run_cli("search", "  ", data_dir=data_dir)
    assert empty.returncode == 2 and "empty" in empty.stderr
    backup = run_cli("backup", str(tmp_path / "backup"), data_dir=data_dir)
    assert backup.returncode == 0 and "backed up 6 articles" in backup.stdout
    restored = run_cli("restore", str(tmp_path / "backup"), data_dir=tmp_path / "other")
    assert restored.returncode == 0 and "restored 6 articles" in restored.stdout
    refused = run_cli("backup", str(tmp_path / "backup"), data_dir=data_dir)
    assert refused.returncode == 2 and "not empty" in refused.stderr
