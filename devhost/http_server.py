"""One HTTP port for everything, as `func start` serves it: `/api/...`, the Durable webhooks, `/admin/...`.

A threading server: the SDK's client inside an app function calls back into this same port, so a
request must never wait on another one being served by the same thread.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import log
from .web import Request, Response

MAX_BODY = 100 * 1024 * 1024  # the Functions host's default request size limit
Handler = Callable[[Request], Response]


class Router:
    """Longest matching path prefix wins; the empty prefix catches the rest."""

    def __init__(self) -> None:
        self.prefixes: list[tuple[str, Handler]] = []

    def add(self, prefix: str, handler: Handler) -> None:
        self.prefixes.append((prefix.rstrip("/"), handler))
        self.prefixes.sort(key=lambda entry: -len(entry[0]))

    def __call__(self, request: Request) -> Response:
        path = request.path
        for prefix, handler in self.prefixes:
            if not prefix or path == prefix or path.startswith(prefix + "/"):
                return handler(request)
        return Response(404)


class DevServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], router: Handler) -> None:
        self.router = router
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: DevServer

    def do_request(self) -> None:
        try:
            body = self._body()
        except ValueError as error:
            self._send(Response(413 if "large" in str(error) else 400, json.dumps({"Message": str(error)}).encode(),
                                {"Content-Type": "application/json"}))
            return
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        request = Request(self.command, f"http://{host}{self.path}", dict(self.headers.items()), body)
        try:
            response = self.server.router(request)
        except Exception as error:  # noqa: BLE001 - a host bug must answer 500, not hang the client
            log.event("http.error", logging.ERROR, method=self.command, path=request.path,
                      error=f"{type(error).__name__}: {error}")
            response = Response(500)
        self._send(response)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_request

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                total += size
                if total > MAX_BODY:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args) -> None:
        """Requests are logged per function by the handlers, not per line here."""
