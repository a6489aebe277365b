"""Web addresses: schemes in any case, credentials never kept, shown or logged, invalid ports refused clearly."""

from __future__ import annotations

import asyncio
import logging

import pytest

from index.config import FetchSettings, Settings
from index.embedding.embedder import Embedder
from index.errors import IngestError
from index.ingest.addresses import article_link, is_web_address, without_credentials
from index.ingest.feeds import FeedPoller
from index.ingest.fetch import fetch
from index.library import Library
from tests.support.helpers import run_cli


@pytest.mark.parametrize("text, web", [
    ("http://example.org/a", True), ("HTTP://EXAMPLE.ORG/a", True), ("Https://example.org", True),
    ("  https://example.org", True), ("example.org/a", False), ("./http:/x", False), ("notes/http.txt", False),
    ("ftp://example.org", False), ("javascript:alert(1)", False),
])
def test_web_addresses_are_told_from_paths_whatever_the_case(text: str, web: bool) -> None:
    assert is_web_address(text) is web


@pytest.mark.parametrize("url, clean", [
    ("http://user:secret@example.org/a?b=1", "http://example.org/a?b=1"),
    ("https://token@example.org:8443/", "https://example.org:8443/"),
    ("http://a@b:c@example.org/", "http://example.org/"),
    ("http://user:secret@example.org:99999/x", "http://example.org:99999/x"),
    ("http://example.org/path@x", "http://example.org/path@x"),
    ("http://[::1]:8080/a", "http://[::1]:8080/a"),
])
def test_credentials_are_removed(url: str, clean: str) -> None:
    assert without_credentials(url) == clean


def test_article_links_are_http_only_and_clean() -> None:
    assert article_link("HTTPS://user:pw@Example.org/a") == "https://Example.org/a"
    for bad in ["javascript:alert(1)", " JAVASCRIPT:alert(1)", "data:text/html,<b>", "vbscript:x", "mailto:a@b",
                "http://", "http://example.org/a b", "http://example.org/\nx", "http://example.org:65536/", None, ""]:
        assert article_link(bad) is None, bad


def test_a_port_out_of_range_is_a_clear_error() -> None:
    for url in ["http://127.0.0.1:70000/", "http://example.org:99999999999999999999/", "https://example.org:0/"]:
        with pytest.raises(IngestError, match="port must be a number from 1 to 65535"):
            asyncio.run(fetch(url, FetchSettings(), 1000))


@pytest.fixture
def web_library(settings: Settings, embedder: Embedder):
    allowed = settings.replace("fetch", allow_hosts=("127.0.0.1",), timeout=2.0)
    with Library(allowed, embedder=embedder) as library:
        yield library


def test_credentials_in_an_address_are_not_stored_shown_or_logged(web_library: Library, site: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with_credentials = site.replace("http://", "http://reader:s3cret-pass@")
    added = web_library.add_url(f"{with_credentials}/story")
    assert added.status == "added", added.message
    stored = web_library.get_article(added.article.id)
    assert stored.url == f"{site}/story"
    failed = web_library.add_url(f"{with_credentials}/missing")
    assert failed.status == "failed" and "404" in failed.message
    poller = FeedPoller(web_library)
    report = asyncio.run(poller.subscribe(f"{with_credentials}/feed.xml", "admin"))
    assert report.error is None and report.feed.url == f"{site}/feed.xml"
    shown = [added.source, added.message, failed.source, failed.message, stored.source or "",
             *(result.message for result in report.results), *(feed.url for feed in poller.feeds.all()),
             caplog.text]
    assert not any("s3cret" in text or "reader" in text for text in shown)


def test_cli_takes_upper_case_schemes_as_addresses_and_refuses_bad_ports(tmp_path, site: str) -> None:
    env = {"NEWSBOT_FETCH_ALLOW_HOSTS": "127.0.0.1"}
    secret_site = site.replace("http://", "HTTP://reader:s3cret-pass@")
    added = run_cli("add", f"{secret_site}/story", "http://127.0.0.1:70000/story", data_dir=tmp_path / "data",
                    env=env)
    assert added.returncode == 1 and "Traceback" not in added.stderr, added.stderr
    assert "1 added, 1 failed" in added.stdout and "port must be a number from 1 to 65535" in added.stdout
    listing = run_cli("list", data_dir=tmp_path / "data", env=env)
    assert f"{site}/story" in listing.stdout
    assert "s3cret" not in added.stdout + added.stderr + listing.stdout + listing.stderr


def test_the_cli_never_shows_credentials_stored_by_an_older_version(sample_copy_settings: Settings) -> None:
    """Rows written before credentials were stripped at ingest are cleaned when listed or searched."""
    import sqlite3
    from contextlib import closing

    from index.stores.embedded.directory import DATABASE_FILE

    data_dir = sample_copy_settings.library.data_dir
    with closing(sqlite3.connect(data_dir / DATABASE_FILE)) as db, db:
        db.execute("UPDATE articles SET url = 'https://reader:s3cret@news.example.org/un', "
                   "source = 'reader:s3cret@news.example.org' WHERE title LIKE '%Security Council%'")
    listed = run_cli("list", data_dir=data_dir)
    searched = run_cli("search", "what did the UN Security Council say?", data_dir=data_dir)
    for done in (listed, searched):
        assert done.returncode == 0, done.stderr
        assert "news.example.org" in done.stdout
        assert "s3cret" not in done.stdout + done.stderr and "reader:" not in done.stdout
