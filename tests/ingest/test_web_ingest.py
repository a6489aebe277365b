"""Web ingestion: the SSRF guard, timeouts, and feeds polled from a server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Iterator

import pytest

from index.articles import utc_now
from index.config import Settings
from index.embedding.embedder import Embedder
from index.errors import IngestError
from index.ingest.feeds import FeedPoller
from index.ingest.netguard import BlockedAddress, is_public, resolve_checked
from index.library import Library
from tests.support import web_pages
from tests.support.helpers import run_cli


@pytest.fixture
def web_library(settings: Settings, embedder: Embedder) -> Iterator[Library]:
    allowed = settings.replace("fetch", allow_hosts=("127.0.0.1",), timeout=2.0)
    with Library(allowed, embedder=embedder) as library:
        yield library


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
])
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize("address, public", [
    ("64:ff9b::7f00:1", False), ("64:ff9b::a00:1", False), ("64:ff9b::a9fe:a9fe", False),  # NAT64 well-known
    ("64:ff9b::808:808", True),
    ("64:ff9b:1::808:808", False), ("64:ff9b:1:7f00:1::", False),  # local-use NAT64: never public
    ("2002:7f00:1::1", False), ("2002:a00:1::", False), ("2002:a9fe:a9fe::1", False),  # 6to4
    ("2002:808:808::1", True),
    ("::7f00:1", False), ("::a00:1", False), ("::a9fe:a9fe", False),  # IPv4-compatible
    ("::808:808", True),
    ("::ffff:a9fe:a9fe", False), ("::ffff:8.8.8.8", True),  # IPv4-mapped
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo, client 127.0.0.1 (obfuscated)
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo, client 10.0.0.1
])
def test_ipv6_transition_addresses_are_judged_by_the_ipv4_address_they_carry(address: str, public: bool) -> None:
    assert is_public(address) is public


@pytest.mark.parametrize("url", ["http://[::ffff:127.0.0.1]/", "http://[64:ff9b::7f00:1]/", "http://[::7f00:1]/",
                                 "http://[2002:7f00:1::1]/", "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/"])
def test_transition_addresses_are_refused_before_connecting(url: str) -> None:
    from index.config import FetchSettings
    from index.ingest.fetch import fetch

    with pytest.raises(BlockedAddress, match="private or local network"):
        asyncio.run(fetch(url, FetchSettings(), 1000))


def test_private_literals_are_refused_before_any_connection() -> None:
    for host in ["10.1.2.3", "169.254.169.254", "[::1]", "localhost"]:
        with pytest.raises(BlockedAddress, match="private or local network"):
            asyncio.run(resolve_checked(host, 80, ()))
    assert asyncio.run(resolve_checked("127.0.0.1", 80, ("127.0.0.1",))) == "127.0.0.1"


def test_loopback_is_refused_unless_allowed_and_redirects_are_checked(library: Library, web_library: Library,
                                                                     site: str) -> None:
    refused = library.add_url(f"{site}/story")  # default settings: no allow list
    assert refused.status == "failed" and "private or local network" in refused.message
    for path in ["/to-localhost", "/to-other-loopback"]:  # allowed host, redirect to a host that is not
        result = web_library.add_url(f"{site}{path}")
        assert result.status == "failed" and "private or local network" in result.message, path
    assert web_library.count_articles() == 0
    assert web_library.add_url(f"{site}/story").status == "added"


def test_slow_server_times_out_with_a_clear_message(web_library: Library, site: str) -> None:
    result = web_library.add_url(f"{site}/slow")
    assert result.status == "failed" and "did not answer in time" in result.message


def test_feed_subscription_adds_only_new_entries(web_library: Library, site: str) -> None:
    poller = FeedPoller(web_library)
    report = asyncio.run(poller.subscribe(f"{site}/feed.xml", "admin"))
    assert report.error is None and report.added == 2
    assert {r.article.title for r in report.results} == {web_pages.NEWS_STORIES[1][0], web_pages.NEWS_STORIES[2][0]}
    feed = poller.feeds.get(report.feed.id)
    assert feed.title == "Test Gazette" and feed.articles_added == 2 and feed.etag
    # unchanged feed: a conditional request, nothing fetched again
    again = asyncio.run(poller.poll(feed))
    assert again.not_modified and not again.results
    # the feed gains an entry: only that one is added
    web_pages.FEED_ITEMS.append(3)
    third = asyncio.run(poller.poll(poller.feeds.get(feed.id)))
    assert [r.status for r in third.results] == ["added"]
    assert third.results[0].article.title == web_pages.NEWS_STORIES[3][0]
    assert web_library.count_articles() == 3
    assert "telescope" in web_library.search("Can I borrow a telescope from the library?").hits[0].text
    # nothing is due right after a poll; later it is
    assert asyncio.run(poller.poll_due()) == []
    assert [r.feed.id for r in asyncio.run(poller.poll_due(utc_now() + timedelta(hours=1)))] == [feed.id]
    assert asyncio.run(poller.subscribe(f"{site}/feed.xml", "admin")).error.startswith("Already subscribed")
    assert poller.feeds.remove(feed.id) is not None and poller.feeds.all() == []


def test_failing_feeds_back_off_and_bad_feeds_are_not_kept(web_library: Library, site: str) -> None:
    poller = FeedPoller(web_library)
    bad = asyncio.run(poller.subscribe(f"{site}/story", "admin"))
    assert bad.error and "not an RSS or Atom feed" in bad.error
    missing = asyncio.run(poller.subscribe(f"{site}/missing.xml", "admin"))
    assert missing.error and "404" in missing.error
    assert poller.feeds.all() == []
    feed = asyncio.run(poller.subscribe(f"{site}/feed.xml", "admin")).feed
    broken = web_library.settings.replace("fetch", allow_hosts=())  # now the server is out of reach
    poller.settings = broken
    first = asyncio.run(poller.poll(poller.feeds.get(feed.id)))
    second = asyncio.run(poller.poll(poller.feeds.get(feed.id)))
    assert first.error and second.error
    stored = poller.feeds.get(feed.id)
    assert stored.failures == 2 and "private or local network" in stored.last_error
    assert stored.next_poll - utc_now() > timedelta(minutes=poller.interval.total_seconds() / 60 * 3)


def test_fetch_errors_are_ingest_errors() -> None:
    from index.config import FetchSettings
    from index.ingest.fetch import fetch

    with pytest.raises(IngestError, match="Not a web address"):
        asyncio.run(fetch("file:///etc/passwd", FetchSettings(), 1000))


def test_cli_feed_commands(tmp_path, site: str) -> None:
    env = {"NEWSBOT_FETCH_ALLOW_HOSTS": "127.0.0.1"}
    added = run_cli("feed", "add", f"{site}/feed.xml", data_dir=tmp_path / "data", env=env)
    assert added.returncode == 0, added.stderr
    assert "2 new" in added.stdout and web_pages.NEWS_STORIES[1][0] in added.stdout
    listing = run_cli("feed", "list", data_dir=tmp_path / "data", env=env)
    assert "Test Gazette" in listing.stdout and "2 articles added" in listing.stdout
    web_pages.FEED_ITEMS.append(3)
    polled = run_cli("feed", "poll", "--all", data_dir=tmp_path / "data", env=env)
    assert "1 new" in polled.stdout
    removed = run_cli("feed", "remove", "1", data_dir=tmp_path / "data", env=env)
    assert removed.returncode == 0 and "unsubscribed" in removed.stdout
    refused = run_cli("feed", "add", f"{site}/feed.xml", data_dir=tmp_path / "data")  # no allow list
    assert refused.returncode == 1 and "private or local network" in refused.stdout
