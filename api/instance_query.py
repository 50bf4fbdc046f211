"""Every orchestration instance that matches a query, across all of the extension's pages.

The Durable extension answers `GET instances/` one page at a time (`top`, default 100) and names
the next page in the `x-ms-continuation-token` response header
(azure-functions-durable-extension HttpApiHandler.cs, HandleGetStatusRequestAsync). The Python SDK's
`DurableOrchestrationClient.get_status_by` (azure-functions-durable 1.7.0) sends one request and
drops the header, so it returns at most 100 instances. This follows the tokens to the end, with each
instance's input (`showInput`), which names the job's owner: filtering by owner happens after the last
page, so no page boundary can hide a job.
"""

from __future__ import annotations

import aiohttp
import azure.durable_functions as df
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus as Status
from azure.durable_functions.models.RpcManagementOptions import RpcManagementOptions

CONTINUATION_HEADER = "x-ms-continuation-token"
MAX_PAGES = 10_000  # a guard against a token that never ends, not a limit anyone should reach


async def query_instances(client: df.DurableOrchestrationClient,
                          runtime_status: list[df.OrchestrationRuntimeStatus] | None) -> list[Status]:
    options = RpcManagementOptions(runtime_status=runtime_status, show_input=True)
    url = options.to_url(client._orchestration_bindings.rpc_base_url)
    found: list[Status] = []
    token = ""
    async with aiohttp.ClientSession() as session:
        for _ in range(MAX_PAGES):
            headers = {CONTINUATION_HEADER: token} if token else {}
            async with session.get(url, headers=headers) as response:
                if response.status != 200:
                    raise RuntimeError(f"instance query failed with status {response.status}")
                found += [Status.from_json(item) for item in await response.json()]
                token = response.headers.get(CONTINUATION_HEADER, "")
            if token in ("", "null"):
                return found
    raise RuntimeError(f"instance query did not end after {MAX_PAGES} pages")
