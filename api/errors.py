"""JSON responses of the HTTP API, and the one error shape: `{"error": {"code", "message"}}`."""

from __future__ import annotations

import json

import azure.functions as func


class ApiError(Exception):
    """A request the API refuses: an HTTP status, a stable machine code and a sentence for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> func.HttpResponse:
        return json_response({"error": {"code": self.code, "message": self.message}}, self.status)


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(payload, ensure_ascii=False), status_code=status,
                             headers=headers, mimetype="application/json")
