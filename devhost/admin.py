"""The host's admin endpoints devhost keeps: host status, and running a non-HTTP function by hand.

`POST /admin/functions/<name>` with `{"input": "<container>/<blob>"}` runs a blob-trigger function
for that blob now, as the real host's admin API does (no receipt is checked or written): the way to
deliver the same blob event twice. No master key is needed locally. The status also reports devhost's
limits: functionTimeout (seconds), activities running and abandoned, and scratch use with its peak.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .blob_trigger import BlobTrigger
from .routes import RouteTable
from .web import Request, Response, json_response


class AdminApi:
    def __init__(self, functions: list[str], blob_trigger: BlobTrigger,
                 limits: Callable[[], dict] = dict) -> None:
        self.functions = functions
        self.blob_trigger = blob_trigger
        self.limits = limits
        self.routes = RouteTable()
        self.routes.add("admin/host/status", {"GET"}, self._status)
        self.routes.add("admin/functions/{name}", {"POST"}, self._invoke)

    def handle(self, request: Request) -> Response:
        found = self.routes.match(request.path, request.method)
        if found is None:
            return json_response(404)
        handler, values = found
        return handler(request, **values)

    def _status(self, request: Request) -> Response:
        return json_response(200, {"state": "Running", "host": "devhost", "functions": self.functions,
                                   **self.limits()})

    def _invoke(self, request: Request, name: str) -> Response:
        try:
            blob_path = json.loads(request.body or b"{}")["input"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return json_response(400, {"Message": 'body must be {"input": "<container>/<blob>"}'})
        try:
            self.blob_trigger.fire(name, blob_path)
        except LookupError as error:
            return json_response(404, {"Message": str(error)})
        except Exception as error:  # noqa: BLE001 - the function's own failure, reported to the caller
            return json_response(500, {"Message": f"{name} failed: {type(error).__name__}: {error}"})
        return json_response(202)
