"""The HTTP request and response devhost's handlers exchange, independent of the server."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    url: str  # absolute, with the origin the client used
    headers: dict[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        """The path as sent (still percent-encoded, so an encoded `/` stays inside its segment)."""
        return urlsplit(self.url).path

    @property
    def origin(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def query(self) -> dict[str, str]:
        """Query parameters, the last value of each (names as sent)."""
        return {name: values[-1] for name, values in parse_qs(urlsplit(self.url).query, keep_blank_values=True).items()}

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers.items() if key.lower() == name.lower()), None)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, value: object = None, **headers: str) -> Response:
    """A JSON body (or an empty one for None), as the Durable HTTP API answers."""
    body = b"" if value is None else json.dumps(value).encode()
    content = {"Content-Type": "application/json; charset=utf-8"} if value is not None else {}
    return Response(status, body, {**content, **{name.replace("_", "-"): v for name, v in headers.items()}})
