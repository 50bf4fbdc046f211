"""Instance queries page as the Durable extension pages them, and the jobs API reads every page.

The extension answers `GET instances/` 100 at a time (`top`) with the next page's token in
`x-ms-continuation-token`; the SDK's `get_status_by` reads only the first page. With 130 jobs, a
`GET /api/jobs` that did not follow the tokens would list 100. Filtering by owner happens after the last
page: every third job belongs to alice, spread over both pages, and she sees each of them.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator

import azure.durable_functions as df
import pytest

from api.callers import KEY_CALLER, OPERATOR_ROLE, Caller
from api.errors import ApiError
from api.jobs import ORCHESTRATOR, get_job, list_jobs
from devhost.client_binding import WEBHOOK_PATH, binding_json
from devhost.engine import Engine
from devhost.http_server import DevServer, Router
from devhost.management import ManagementApi
from devhost.store import Store

JOBS = 130
ALICE = Caller("alice-id", "alice@contoso.com")
OPERATOR = Caller("olga-id", "olga@contoso.com", frozenset({OPERATOR_ROLE}))


@pytest.fixture(autouse=True)
def fresh_sdk_session(monkeypatch) -> None:
    """The SDK keeps one aiohttp session per process, bound to the event loop that made it (the worker
    has one loop); each asyncio.run here is a new loop, so each test starts without one."""
    from azure.durable_functions.models.utils import http_utils

    monkeypatch.setattr(http_utils, "_client_session", None)
    monkeypatch.setattr(http_utils, "_session_lock", asyncio.Lock())


@pytest.fixture
def origin(tmp_path) -> Iterator[str]:
    """devhost's management API over 130 pending jobs and one instance of another orchestrator."""
    store = Store(tmp_path / "state.db")
    engine = Engine(store, {ORCHESTRATOR: lambda _context: "{}", "other": lambda _context: "{}"}, lambda _work: None)
    for index in range(JOBS):  # jobs started before owners were recorded have none: they are the key's
        owner = {"owner": ALICE.as_owner()} if index % 3 == 0 else {}
        engine.start(ORCHESTRATOR, f"job-{index:03d}", json.dumps({"blob": f"clip{index}.mp4", **owner}))
    engine.start("other", "not-a-job", None)
    router = Router()
    router.add(WEBHOOK_PATH, ManagementApi(engine, "restyle").handle)
    server = DevServer(("127.0.0.1", 0), router)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    store.close()


def get(url: str, token: str | None = None) -> tuple[list[dict], str | None]:
    request = urllib.request.Request(url, headers={"x-ms-continuation-token": token} if token else {})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read()), response.headers.get("x-ms-continuation-token")


def test_the_query_endpoint_pages_like_the_extension(origin):
    url = f"{origin}{WEBHOOK_PATH}/instances/"
    first, token = get(url)
    assert len(first) == 100 and token  # PageSize defaults to 100
    rest, last = get(url, token)
    assert len(rest) == JOBS + 1 - 100 and last == ""
    assert len({s["instanceId"] for s in first + rest}) == JOBS + 1  # no instance twice, none lost
    small, token = get(f"{url}?top=7&runtimeStatus=Pending")
    assert len(small) == 7 and token


def client(origin: str) -> df.DurableOrchestrationClient:
    return df.DurableOrchestrationClient(binding_json(origin, "restyle"))


def test_the_sdk_alone_sees_only_the_first_page(origin):
    found = asyncio.run(client(origin).get_status_by(runtime_status=[df.OrchestrationRuntimeStatus.Pending]))
    assert len(found) == 100


def test_get_jobs_lists_every_job_across_pages(origin):
    jobs = asyncio.run(list_jobs(client(origin), "Pending", OPERATOR))
    assert len(jobs) == JOBS and len({job["id"] for job in jobs}) == JOBS
    assert asyncio.run(list_jobs(client(origin), None, OPERATOR)) == jobs  # the other orchestrator's instance is no job


def test_an_owner_sees_every_job_of_theirs_across_pages_and_nobody_elses(origin):
    alices = {f"job-{index:03d}" for index in range(0, JOBS, 3)}
    mine = asyncio.run(list_jobs(client(origin), "Pending", ALICE))
    assert {job["id"] for job in mine} == alices and {job["owner"]["id"] for job in mine} == {ALICE.id}
    assert max(alices) > "job-100"  # some of hers are on the second page
    keys = asyncio.run(list_jobs(client(origin), None, KEY_CALLER))
    assert len(keys) == JOBS - len(alices) and not alices & {job["id"] for job in keys}
    assert {job["id"] for job in asyncio.run(list_jobs(client(origin), None, OPERATOR, ALICE.id))} == alices
    with pytest.raises(ApiError) as others:
        asyncio.run(list_jobs(client(origin), None, KEY_CALLER, ALICE.id))
    assert (others.value.status, others.value.code) == (403, "not_operator")

    async def read_as(caller: Caller) -> dict | ApiError:
        try:
            return await get_job(client(origin), "job-000", caller)
        except ApiError as error:
            return error

    async def both() -> tuple:  # one event loop: the SDK's session is bound to the loop that made it
        return await read_as(ALICE), await read_as(KEY_CALLER)

    hers, hidden = asyncio.run(both())
    assert hers["owner"] == ALICE.as_owner()
    assert (hidden.status, hidden.code) == (404, "job_not_found")
