"""A round-robin load balancer on 127.0.0.1: forwards each HTTP request to the next of several backends.

It stands in for whatever balancer sits in front of several bot replicas in webhook mode: Telegram
(here the Bot API emulator) posts every update to one public address, and each update may reach any
replica. A backend that refuses the connection is skipped for that request, as a health-checking
balancer would."""

from __future__ import annotations

import http.client
import itertools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection",
               "host", "content-length"}


class RoundRobinBalancer:
    """Serve on a free loopback port; ``url`` is its address, ``served`` counts requests per backend."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = backends
        self.served = [0] * len(backends)
        self._turn = itertools.cycle(range(len(backends)))
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="balancer", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "RoundRobinBalancer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _next_backends(self) -> list[int]:
        """Every backend once, starting with the next one in turn."""
        with self._lock:
            first = next(self._turn)
        return [(first + offset) % len(self.backends) for offset in range(len(self.backends))]

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        for index in self._next_backends():
            host, port = self.backends[index]
            connection = http.client.HTTPConnection(host, port, timeout=60)
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except ConnectionRefusedError:
                continue
            finally:
                connection.close()
            with self._lock:
                self.served[index] += 1
            return response.status, response.getheaders(), payload
        return 502, [], b"no backend answered"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        balancer = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                status, reply_headers, payload = balancer._forward(self.command, self.path, headers, body)
                self.send_response(status)
                for name, value in reply_headers:
                    if name.lower() not in _HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET = _relay

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
                pass

        return Handler
