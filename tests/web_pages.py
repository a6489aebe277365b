"""A small web server on 127.0.0.1 with article pages and failure cases, for tests that fetch URLs."""

from __future__ import annotations

import threading
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


class _Pages(BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, str, bytes]] = {
        "/story": (200, "text/html; charset=utf-8", ARTICLE_HTML.encode()),
        "/story?utm_source=feed": (200, "text/html; charset=utf-8", ARTICLE_HTML.encode()),
        "/image": (200, "image/png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100),
        "/menu": (200, "text/html", b"<html><body><nav><a href='/'>Home</a></nav></body></html>"),
        "/big": (200, "text/html", b"<p>" + b"a" * 2_000_000 + b"</p>"),
    }

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/moved":
            self.send_response(301)
            self.send_header("Location", "/story")
            self.end_headers()
            return
        status, content_type, body = self.routes.get(self.path, (404, "text/html", b"not found"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (the size limit test does that on purpose)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
