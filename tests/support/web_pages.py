"""A small web server on 127.0.0.1 with article pages and failure cases, for tests that fetch URLs."""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

ARTICLE_HTML = """<!doctype html><html><head><title>Port strike ends after nine days | Harbour Times</title>
<meta property="og:title" content="Port strike ends after nine days">
<meta property="og:site_name" content="Harbour Times">
<meta name="author" content="Jo Reporter">
<meta property="article:published_time" content="2024-03-05T10:00:00Z"></head>
<body><nav><a href="/">Home</a> | <a href="/sport">Sport</a> | <a href="/weather">Weather</a></nav>
<article><h1>Port strike ends after nine days</h1>
<p>Dock workers at the northern port voted on Tuesday to accept a new pay offer, ending a strike that had
stranded more than two hundred containers and delayed deliveries of fruit and car parts across the region.</p>
<p>The union said the agreement raises wages by seven percent this year and a further four percent next year,
and adds a new rule on rest breaks for crane operators working night shifts.</p>
<p>Shipping companies said it would take about a week to clear the backlog of vessels waiting offshore.</p>
</article><footer>Subscribe to our newsletter. Cookie settings. Contact us.</footer></body></html>"""


# Feed entries: a different story each, distinct enough not to be taken for copies of each other.
NEWS_STORIES = {
    1: ("Council votes to plant ten thousand trees",
        "The city council voted on Monday to plant ten thousand street trees over the next three years, "
        "starting with the districts that have the least shade. Residents can ask for a tree outside their "
        "home through a new online form, and the parks department will water each sapling for two summers."),
    2: ("Night trains return to the northern line",
        "Overnight passenger trains will run again on the northern line from September, the rail operator "
        "said, after a gap of eleven years. Sleeper cars with forty cabins will leave the capital at ten in the "
        "evening and reach the coast shortly after dawn, with a stop at the old junction town."),
    3: ("Library lends out telescopes for winter nights",
        "The central library has started lending small telescopes along with star charts and a guide written "
        "by the local astronomy club. Borrowers may keep a telescope for two weeks, and the first batch of "
        "twelve instruments was booked out within an hour of the announcement on Thursday."),
}
FEED_ITEMS: list[int] = []  # which NEWS_STORIES the feed lists now; tests change it between polls
REQUESTS: list[str] = []  # paths asked for, in order (emptied for each test)


def _story_html(number: int) -> bytes:
    title, text = NEWS_STORIES[number]
    return (f"<html><head><title>{title}</title></head><body><nav>Home | News</nav><article><h1>{title}</h1>"
            f"<p>{text}</p><p>{text}</p></article><footer>Contact us</footer></body></html>").encode()


def _feed_xml(base: str) -> bytes:
    items = "".join(
        f"<item><title>{NEWS_STORIES[n][0]}</title><link>{base}/news/{n}</link><guid>story-{n}</guid>"
        f"<pubDate>Mon, 0{n} Jan 2024 10:00:00 GMT</pubDate><description>{NEWS_STORIES[n][1]}</description></item>"
        for n in FEED_ITEMS)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Test Gazette</title><link>{base}/</link>'
            f"<description>Local news</description>{items}</channel></rss>").encode()


class _Pages(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str, bytes]] = {
        "/story": (200, "text/html; charset=utf-8", ARTICLE_HTML.encode()),
        "/story?utm_source=feed": (200, "text/html; charset=utf-8", ARTICLE_HTML.encode()),
        "/image": (200, "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100),
        "/menu": (200, "text/html", b"<html><body><nav><a href='/'>Home</a></nav></body></html>"),
        "/big": (200, "text/html", b"<p>" + b"a" * 2_000_000 + b"</p>"),
    }

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        REQUESTS.append(self.path)
        port = self.server.server_address[1]
        redirects = {"/moved": "/story", "/to-localhost": f"http://localhost:{port}/story",
                     "/to-other-loopback": f"http://127.0.0.2:{port}/story"}
        if self.path in redirects:
            self.send_response(301)
            self.send_header("Location", redirects[self.path])
            self.end_headers()
            return
        if self.path == "/slow":
            time.sleep(3)
        headers: dict[str, str] = {}
        if self.path == "/feed.xml":
            body = _feed_xml(f"http://127.0.0.1:{port}")
            etag = f'"{hashlib.sha1(body).hexdigest()[:16]}"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.end_headers()
                return
            status, content_type, headers = 200, "application/rss+xml", {"ETag": etag}
        elif self.path.startswith("/news/") and self.path[6:].isdigit() and int(self.path[6:]) in NEWS_STORIES:
            status, content_type, body = 200, "text/html; charset=utf-8", _story_html(int(self.path[6:]))
        else:
            status, content_type, body = self.routes.get(self.path, (404, "text/html", b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (the size limit test does that on purpose)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    FEED_ITEMS[:] = [1, 2]
    REQUESTS.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
