"""RSS/Atom subscriptions: conditional polling, new entries fetched and added, failures backed off."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Sequence

import feedparser

from index.articles import ArticleDraft, canonical_url, parse_date, utc_now
from index.errors import IngestError
from index.ingest.addresses import without_credentials
from index.ingest.extract import from_html
from index.ingest.fetch import FEED_TYPES, fetch
from index.library import AddResult, Library

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(days=1)
MAX_ENTRY_ATTEMPTS = 3
# Seconds a poll asked for by name (/subscribe) waits while another process polls the same feed.
LOCK_WAIT_SECONDS = 300.0


@dataclass(frozen=True)
class Feed:
    id: int
    url: str
    title: str | None
    etag: str | None
    last_modified: str | None
    last_checked: datetime | None
    last_success: datetime | None
    last_error: str | None
    failures: int
    next_poll: datetime
    articles_added: int


@dataclass
class PollReport:
    feed: Feed
    results: list[AddResult] = field(default_factory=list)
    not_modified: bool = False
    error: str | None = None
    busy: bool = False  # another process was polling the feed, so this one did not

    @property
    def added(self) -> int:
        return sum(r.status in {"added", "replaced"} for r in self.results)


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class FeedStore:
    """The feeds and the entries already seen, in the library's SQLite database."""

    def __init__(self, library: Library) -> None:
        self.store = library.store

    def add(self, url: str, added_by: str) -> Feed:
        now = utc_now().isoformat(timespec="seconds")
        with self.store.transaction() as db:
            db.execute("INSERT INTO feeds(url, added_by, added_at, next_poll) VALUES (?, ?, ?, ?)"
                       " ON CONFLICT (url) DO NOTHING", (url, added_by, now, now))
        return self.by_url(url)  # type: ignore[return-value]

    def by_url(self, url: str) -> Feed | None:
        rows = self.store.query("SELECT * FROM feeds WHERE url = ?", (url,))
        return _feed(rows[0]) if rows else None

    def get(self, feed_id: int) -> Feed | None:
        rows = self.store.query("SELECT * FROM feeds WHERE id = ?", (feed_id,))
        return _feed(rows[0]) if rows else None

    def all(self) -> list[Feed]:
        return [_feed(row) for row in self.store.query("SELECT * FROM feeds ORDER BY id")]

    def due(self, now: datetime) -> list[Feed]:
        rows = self.store.query("SELECT * FROM feeds WHERE next_poll <= ? ORDER BY next_poll",
                                (now.isoformat(timespec="seconds"),))
        return [_feed(row) for row in rows]

    def remove(self, feed_id: int) -> Feed | None:
        feed = self.get(feed_id)
        if feed is not None:
            with self.store.transaction() as db:
                db.execute("DELETE FROM feed_entries WHERE feed_id = ?", (feed_id,))
                db.execute("DELETE FROM feeds WHERE id = ?", (feed_id,))
        return feed

    def pending(self, feed_id: int, keys: Sequence[str]) -> set[str]:
        """The entry keys not yet handled (new, or failed fewer than MAX_ENTRY_ATTEMPTS times)."""
        done = {row[0] for row in self.store.query(
            "SELECT entry_key FROM feed_entries WHERE feed_id = ? AND (status != 'failed' OR attempts >= ?)",
            (feed_id, MAX_ENTRY_ATTEMPTS))}
        return {key for key in keys if key not in done}

    def record_entry(self, feed_id: int, key: str, result: AddResult) -> None:
        article_id = result.article.id if result.article else None
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO feed_entries(feed_id, entry_key, status, article_id, seen_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(feed_id, entry_key) DO UPDATE SET status = excluded.status,"
                " article_id = excluded.article_id, seen_at = excluded.seen_at, attempts = feed_entries.attempts + 1",
                (feed_id, key, result.status, article_id, utc_now().isoformat(timespec="seconds")))

    def record_success(self, feed: Feed, *, title: str | None, etag: str | None, last_modified: str | None,
                       added: int, interval: timedelta) -> None:
        now = utc_now()
        with self.store.transaction() as db:
            db.execute(
                "UPDATE feeds SET title = COALESCE(?, title), etag = ?, last_modified = ?, last_checked = ?,"
                " last_success = ?, last_error = NULL, failures = 0, next_poll = ?,"
                " articles_added = articles_added + ? WHERE id = ?",
                (title, etag, last_modified, now.isoformat(timespec="seconds"), now.isoformat(timespec="seconds"),
                 (now + interval).isoformat(timespec="seconds"), added, feed.id))

    def record_failure(self, feed: Feed, error: str, interval: timedelta) -> None:
        now = utc_now()
        failures = feed.failures + 1
        delay = min(interval * (2 ** min(failures, 10)), MAX_BACKOFF)
        with self.store.transaction() as db:
            db.execute("UPDATE feeds SET last_checked = ?, last_error = ?, failures = ?, next_poll = ? WHERE id = ?",
                       (now.isoformat(timespec="seconds"), error, failures,
                        (now + delay).isoformat(timespec="seconds"), feed.id))


def _feed(row) -> Feed:
    return Feed(id=int(row["id"]), url=row["url"], title=row["title"], etag=row["etag"],
                last_modified=row["last_modified"], last_checked=_time(row["last_checked"]),
                last_success=_time(row["last_success"]), last_error=row["last_error"],
                failures=int(row["failures"]), next_poll=_time(row["next_poll"]) or utc_now(),
                articles_added=int(row["articles_added"]))


class FeedPoller:
    """Polls feeds from the caller's event loop without blocking it: downloads are awaited there, while
    everything that blocks (the feed store's reads and writes, parsing a feed, adding articles) runs in
    worker threads. One round at a time in this process, and each feed under its lock (see
    Backend.feed_locks), so that of several processes sharing a PostgreSQL library only one polls a given
    feed at a time."""

    def __init__(self, library: Library) -> None:
        self.library = library
        self.settings = library.settings
        self.feeds = FeedStore(library)
        self.interval = timedelta(minutes=self.settings.feeds.poll_minutes)
        self.locks = library.backend.feed_locks()
        self._lock = asyncio.Lock()

    async def subscribe(self, url: str, added_by: str) -> PollReport:
        """Add a feed and poll it at once (its current entries are added); a bad feed is not kept."""
        url = without_credentials(url)  # credentials in an address are never kept, shown or logged
        existing = await asyncio.to_thread(self.feeds.by_url, url)
        if existing is not None:
            return PollReport(existing, error=f"Already subscribed (feed #{existing.id}).")
        feed = await asyncio.to_thread(self.feeds.add, url, added_by)
        report = await self.poll(feed)  # waits for a round (here or elsewhere), which may find the new feed due
        if report.error is not None and not report.busy and feed.last_success is None:
            await asyncio.to_thread(self.feeds.remove, feed.id)
        return report

    async def poll_due(self, now: datetime | None = None) -> list[PollReport]:
        """Poll every feed whose time has come (one round at a time); a feed that another process is
        polling, or has polled since the round began, is left to it."""
        if self._lock.locked():
            return []
        async with self._lock:
            now = now or utc_now()
            reports = []
            for feed in await asyncio.to_thread(self.feeds.due, now):
                async with self.locks.hold(feed.id) as held:
                    # read again under the lock: another process may have polled it since the round began
                    current = await asyncio.to_thread(self.feeds.get, feed.id) if held else None
                    if current is not None and current.next_poll <= now:
                        reports.append(await self._poll(current))
            return reports

    async def poll(self, feed: Feed) -> PollReport:
        """Fetch the feed (conditionally) and add its new entries; never raises for network or feed errors.
        Polls run one at a time, so a feed is never handled twice at once."""
        async with self._lock, self.locks.hold(feed.id, wait=LOCK_WAIT_SECONDS) as held:
            if not held:
                return PollReport(feed, busy=True, error="Another bot process is polling this feed right now; "
                                                         "see /feeds in a few minutes.")
            current = await asyncio.to_thread(self.feeds.get, feed.id)
            if current is None:
                return PollReport(feed, error="This feed was removed.")
            return await self._poll(current)

    async def _poll(self, feed: Feed) -> PollReport:
        settings = self.settings
        headers = {}
        if feed.etag:
            headers["If-None-Match"] = feed.etag
        if feed.last_modified:
            headers["If-Modified-Since"] = feed.last_modified
        try:
            download = await fetch(feed.url, settings.fetch, settings.library.max_file_bytes, accept=FEED_TYPES,
                                   headers=headers)
            if download.not_modified:
                await asyncio.to_thread(self.feeds.record_success, feed, title=None, etag=feed.etag,
                                        last_modified=feed.last_modified, added=0, interval=self.interval)
                return PollReport(feed, not_modified=True)
            parsed = await asyncio.to_thread(feedparser.parse, download.content)
            if not parsed.entries and (parsed.bozo or not parsed.feed):
                raise IngestError(f"{without_credentials(feed.url)} is not an RSS or Atom feed.")
        except IngestError as exc:
            log.warning("feed %s failed: %s", without_credentials(feed.url), exc)
            await asyncio.to_thread(self.feeds.record_failure, feed, str(exc), self.interval)
            return PollReport(feed, error=str(exc))
        report = PollReport(feed)
        entries = [(self._entry_key(entry), entry) for entry in parsed.entries]
        pending = await asyncio.to_thread(self.feeds.pending, feed.id, [key for key, _ in entries])
        todo = [(key, entry) for key, entry in entries if key in pending][: settings.feeds.max_entries_per_poll]
        for key, entry in todo:
            result = await self._add_entry(entry)
            await asyncio.to_thread(self.feeds.record_entry, feed.id, key, result)
            report.results.append(result)
        await asyncio.to_thread(self.library.flush)
        await asyncio.to_thread(self.feeds.record_success, feed, title=parsed.feed.get("title"),
                                etag=download.headers.get("etag"), last_modified=download.headers.get("last-modified"),
                                added=report.added, interval=self.interval)
        return report

    @staticmethod
    def _entry_key(entry) -> str:
        link = entry.get("link")
        return entry.get("id") or (canonical_url(link) if link else None) or entry.get("title", "")

    async def _add_entry(self, entry) -> AddResult:
        """The linked article page; if it cannot be fetched, the text the feed itself carries."""
        link = without_credentials(entry.get("link") or "") or None
        published = _entry_date(entry)
        page_error = "the entry has no link"
        if link:
            try:
                download = await fetch(link, self.settings.fetch, self.settings.library.max_file_bytes)
                result = await asyncio.to_thread(self.library.add_download, download, added_by="feed", source=link)
                if result.ok or not _feed_text(entry):
                    return result
                page_error = result.message
            except IngestError as exc:
                page_error = str(exc)
        text = _feed_text(entry)
        if not text:
            return AddResult(link or entry.get("title", "entry"), "failed", message=page_error)
        try:
            draft = await asyncio.to_thread(from_html, f"<html><body><article>{text}</article></body></html>",
                                            url=link, fallback_title=entry.get("title"))
        except IngestError:
            return AddResult(link or "entry", "failed", message=page_error)
        draft = ArticleDraft(title=entry.get("title") or draft.title, text=draft.text, url=link,
                             published=published or draft.published, source=draft.source, author=entry.get("author"))
        return await asyncio.to_thread(self.library.add_draft, draft, "feed", link)


def _feed_text(entry) -> str:
    """The longest text the feed entry carries (full content when the feed has it, else the summary)."""
    contents = [c.get("value", "") for c in entry.get("content", [])] + [entry.get("summary", "")]
    return max(contents, key=len) if contents else ""


def _entry_date(entry):
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if parsed:
        return datetime(*parsed[:6], tzinfo=timezone.utc).date()
    return parse_date(entry.get("published"))
