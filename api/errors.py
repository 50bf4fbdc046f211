"""JSON responses of the HTTP API, and the one error shape: `{"error": {"code", "message"}}`."""

from __future__ import annotations

import json

import azure.functions as func


class ApiError(Exception):
    """A request the API refuses: an HTTP status, a stable machine code and a sentence for people."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers

    def response(self) -> func.HttpResponse:
        return json_response({"error": {"code": self.code, "message": self.message}}, self.status, self.headers)


def request_fields(body: object, allowed: tuple[str, ...], example: str) -> dict:
    """A request body that is a JSON object with no fields but `allowed`; ApiError 400 otherwise."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", f"the body must be a JSON object like {example}")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, "invalid_body", f"unknown fields {unknown}; allowed: {', '.join(allowed)}")
    return body


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(payload, ensure_ascii=False), status_code=status,
                             headers=headers, mimetype="application/json")
