"""The Durable client binding's JSON, as the extension hands it to a client function.

The SDK's client calls only `rpcBaseUrl`; `create_check_status_response` copies `managementUrls`
with the instance id filled in and the request's origin, so both point at devhost's own port.
There are no function keys locally, so the URLs carry no `code`.
"""

from __future__ import annotations

import json
from urllib.parse import quote

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
CONNECTION = "Storage"
INSTANCE_PLACEHOLDER = "INSTANCEID"


def management_urls(origin: str, hub: str, instance_id: str) -> dict[str, str]:
    """An instance's management URLs, as in `managementUrls` and the 202 check-status payload."""
    instance = f"{origin.rstrip('/')}{WEBHOOK_PATH}/instances/{quote(instance_id, safe='')}"
    query = f"taskHub={quote(hub)}&connection={CONNECTION}"
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{instance}?{query}",
        "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
        "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
        "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
        "purgeHistoryDeleteUri": f"{instance}?{query}",
        "restartPostUri": f"{instance}/restart?{query}",
        "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
        "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
    }


def binding_json(origin: str, hub: str) -> str:
    base = origin.rstrip("/") + WEBHOOK_PATH
    query = f"taskHub={quote(hub)}&connection={CONNECTION}"
    create = f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]"
    return json.dumps({
        "taskHubName": hub,
        "creationUrls": {
            "createNewInstancePostUri": f"{create}?{query}",
            "createAndWaitOnNewInstancePostUri": f"{create}?timeout={{timeoutInSeconds}}"
                                                 f"&pollingInterval={{intervalInSeconds}}&{query}",
        },
        "managementUrls": management_urls(origin, hub, INSTANCE_PLACEHOLDER),
        "baseUrl": base,
        "requiredQueryStringParameters": query,
        "rpcBaseUrl": f"{base}/",
    })
