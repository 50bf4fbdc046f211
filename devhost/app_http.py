"""The app's HTTP-triggered functions: route match, `func.HttpRequest` in, `func.HttpResponse` out.

Routes are the triggers' templates under host.json's route prefix, matched by method too. The
auth level is not enforced (as under `func start`): there are no function keys locally.
"""

from __future__ import annotations

import logging
import time

import azure.functions as func

from . import log
from .catalog import Function
from .invoker import Invoker
from .routes import RouteTable
from .web import Request, Response

ALL_METHODS = None


class AppHttp:
    def __init__(self, functions: list[Function], prefix: str, invoker: Invoker, client_json: str) -> None:
        self.prefix = f"/{prefix}" if prefix else ""
        self.invoker = invoker
        self.client_json = client_json
        self.routes = RouteTable()
        for function in functions:
            methods = function.trigger.get("methods")
            self.routes.add(function.trigger.get("route") or function.name, set(methods) if methods else ALL_METHODS,
                            function)

    def handle(self, request: Request) -> Response:
        found = self.routes.match(request.path[len(self.prefix):], request.method)
        if found is None:
            return Response(404)
        function, route_params = found
        http_request = func.HttpRequest(request.method, request.url, headers=request.headers,
                                        params=request.query, route_params=route_params, body=request.body)
        started = time.monotonic()
        try:
            result = self.invoker.call(function.fn, function.arguments(http_request, self.client_json))
            response = _response(result)
        except Exception as error:  # noqa: BLE001 - a failing function is a 500, as under the real host
            log.event("function.end", logging.ERROR, function=function.name, status=500,
                      seconds=round(time.monotonic() - started, 3), error=f"{type(error).__name__}: {error}")
            return Response(500)
        log.event("function.end", function=function.name, method=request.method, status=response.status,
                  seconds=round(time.monotonic() - started, 3))
        return response


def _response(result: object) -> Response:
    if isinstance(result, func.HttpResponse):
        headers = dict(result.headers.items())
        if not any(name.lower() == "content-type" for name in headers) and result.mimetype:
            headers["Content-Type"] = f"{result.mimetype}; charset={result.charset}"
        return Response(result.status_code, result.get_body() or b"", headers)
    if result is None:
        return Response(204)
    if isinstance(result, str | bytes):
        body = result.encode() if isinstance(result, str) else result
        return Response(200, body, {"Content-Type": "text/plain; charset=utf-8"})
    raise TypeError(f"an HTTP function must return func.HttpResponse, str or bytes, not {type(result).__name__}")
