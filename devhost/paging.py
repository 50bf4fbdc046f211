"""Instance queries in pages, as the Durable extension answers `GET instances/`.

The extension (azure-functions-durable-extension src/WebJobs.Extensions.DurableTask/HttpApiHandler.cs,
HandleGetStatusRequestAsync) reads the page size from `top` (OrchestrationStatusQueryCondition.PageSize,
default 100) and the position from the `x-ms-continuation-token` request header, and answers one page
with the next token in the same response header (empty on the last page). A client that ignores the
header sees only the first 100 instances.
"""

from __future__ import annotations

import base64
import json

DEFAULT_PAGE_SIZE = 100
CONTINUATION_HEADER = "x-ms-continuation-token"


class BadToken(ValueError):
    pass


def _key(status: dict) -> list[str]:
    return [status["createdTime"], status["instanceId"]]


def page(statuses: list[dict], top: int, token: str | None) -> tuple[list[dict], str]:
    """One page of `statuses` in (created, id) order after the position `token` names, and the next
    token ('' when this was the last page). Tokens are opaque to clients, like the extension's."""
    ordered = sorted(statuses, key=_key)
    if token:
        try:
            after = json.loads(base64.urlsafe_b64decode(token.encode()))
        except (ValueError, UnicodeDecodeError):
            raise BadToken(f"invalid continuation token {token!r}") from None
        ordered = [status for status in ordered if _key(status) > after]
    chunk = ordered[:max(top, 1)]
    more = len(ordered) > len(chunk)
    next_token = base64.urlsafe_b64encode(json.dumps(_key(chunk[-1])).encode()).decode() if more else ""
    return chunk, next_token
