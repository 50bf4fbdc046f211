"""The Durable HTTP management API under /runtime/webhooks/durabletask, as the extension answers it.

These are the URLs the SDK's client calls (its `rpcBaseUrl`) and the ones
`create_check_status_response` hands out, with the extension's status codes: 202 while an
instance runs and 200 once it has ended, 404 unknown, 409 starting over a running instance,
410 terminating or signalling an ended one, 412 purging a running one.
"""

from __future__ import annotations

import json
from datetime import datetime

from .client_binding import WEBHOOK_PATH, management_urls
from .engine import TERMINAL, Engine, InstanceExists, UnknownOrchestrator
from .history import parse_iso
from .paging import CONTINUATION_HEADER, DEFAULT_PAGE_SIZE, BadToken, page
from .routes import RouteTable
from .web import Request, Response, json_response

RUNTIME_STATUSES = {"Running", "Completed", "ContinuedAsNew", "Failed", "Canceled", "Terminated", "Pending",
                    "Suspended"}
UNSUPPORTED_OPERATIONS = {"rewind", "restart", "suspend", "resume"}


class BadRequest(ValueError):
    pass


class ManagementApi:
    def __init__(self, engine: Engine, hub: str) -> None:
        self.engine = engine
        self.hub = hub
        self.routes = RouteTable()
        self.routes.add("orchestrators/{function_name}/{instance_id?}", {"POST"}, self._start)
        self.routes.add("instances/{instance_id}/raiseEvent/{event_name}", {"POST"}, self._raise_event)
        self.routes.add("instances/{instance_id?}/{operation?}", None, self._instances)

    def handle(self, request: Request) -> Response:
        subpath = request.path[len(WEBHOOK_PATH):]
        found = self.routes.match(subpath, request.method)
        if found is None:
            return json_response(404)
        handler, values = found
        try:
            return handler(request, **values)
        except BadRequest as error:
            return json_response(400, {"Message": str(error)})

    def _start(self, request: Request, function_name: str, instance_id: str | None = None) -> Response:
        try:
            instance_id = self.engine.start(function_name, instance_id, _json_text(request.body))
        except UnknownOrchestrator as error:
            return json_response(400, {"Message": "One or more of the arguments submitted is incorrect",
                                       "ExceptionMessage": str(error)})
        except InstanceExists as error:
            return json_response(409, {"Message": str(error)})
        payload = management_urls(request.origin, self.hub, instance_id)
        return json_response(202, payload, Location=payload["statusQueryGetUri"], Retry_After="10")

    def _raise_event(self, request: Request, instance_id: str, event_name: str) -> Response:
        content_type = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return json_response(400, {"Message": "Only application/json request content is supported"})
        return _answer(self.engine.raise_event(instance_id, event_name, _json_text(request.body)))

    def _instances(self, request: Request, instance_id: str | None = None,
                   operation: str | None = None) -> Response:
        query = request.query
        if instance_id is None:
            if request.method == "GET":
                return self._query(request)
            if request.method == "DELETE":
                return self._purge_by(query)
        elif operation is None:
            if request.method == "GET":
                return self._status(request, instance_id)
            if request.method == "DELETE":
                return self._purge(instance_id)
        elif request.method == "POST" and operation.lower() == "terminate":
            return _answer(self.engine.terminate(instance_id, query.get("reason", "")))
        elif request.method == "POST" and operation.lower() in UNSUPPORTED_OPERATIONS:
            return json_response(501, {"Message": f"devhost does not implement {operation}"})
        return json_response(404)

    def _query(self, request: Request) -> Response:
        """One page (`top`, default 100) and the next page's token in `x-ms-continuation-token`."""
        query = request.query
        statuses = self.engine.query(_statuses(query), _time(query, "createdTimeFrom"), _time(query, "createdTimeTo"),
                                     query.get("instanceIdPrefix"), _flag(query, "showInput", False))
        try:
            found, token = page(statuses, _int(query, "top", DEFAULT_PAGE_SIZE), request.header(CONTINUATION_HEADER))
        except BadToken as error:
            raise BadRequest(str(error)) from None
        return json_response(200, found, **{CONTINUATION_HEADER: token})

    def _status(self, request: Request, instance_id: str) -> Response:
        query = request.query
        status = self.engine.status(instance_id, _flag(query, "showHistory", False), _flag(query, "showInput", True))
        if status is None:
            return json_response(404)
        if status["runtimeStatus"] in TERMINAL:
            return json_response(200, status)
        return json_response(202, status, Location=request.url, Retry_After="5")

    def _purge(self, instance_id: str) -> Response:
        result = self.engine.purge(instance_id)
        if result == "not_found":
            return json_response(404)
        if result == "not_terminal":
            return json_response(412, "Only orchestrations in a terminal state can be purged")
        return json_response(200, {"instancesDeleted": result})

    def _purge_by(self, query: dict[str, str]) -> Response:
        created_from = _time(query, "createdTimeFrom")
        if created_from is None:
            return json_response(400, "Please provide value for 'createdTimeFrom' parameter.")
        deleted = self.engine.purge_by(created_from, _time(query, "createdTimeTo"), _statuses(query))
        return json_response(200, {"instancesDeleted": deleted}) if deleted else json_response(404)


def _answer(result: str) -> Response:
    return json_response({"not_found": 404, "gone": 410, "accepted": 202}[result])


def _json_text(body: bytes) -> str | None:
    """The input as JSON text. The SDK posts JSON text JSON-encoded once more; a plain JSON body works too."""
    if not body.strip():
        return None
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("Invalid JSON content") from None
    return value if isinstance(value, str) else json.dumps(value)


def _statuses(query: dict[str, str]) -> set[str] | None:
    """runtimeStatus=A,B; unknown names are ignored, as the extension's enum parsing does."""
    names = {name.strip() for name in query.get("runtimeStatus", "").split(",")} & RUNTIME_STATUSES
    return names or None


def _time(query: dict[str, str], name: str) -> datetime | None:
    if not query.get(name):
        return None
    try:
        return parse_iso(query[name])
    except ValueError:
        raise BadRequest(f"{name} is not a date and time: {query[name]!r}") from None


def _flag(query: dict[str, str], name: str, default: bool) -> bool:
    value = query.get(name, "").lower()
    return {"true": True, "false": False}.get(value, default)


def _int(query: dict[str, str], name: str, default: int) -> int:
    try:
        return int(query[name]) if query.get(name) else default
    except ValueError:
        raise BadRequest(f"{name} is not a number: {query[name]!r}") from None
