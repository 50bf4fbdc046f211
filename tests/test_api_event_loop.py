"""A slow storage call in one handler does not stall the others: the worker runs every `async def`
function on its one event loop (azure-functions-python-worker, azure_functions_worker/dispatcher.py:
`_handle__invocation_request` awaits an async function on `self._loop`; only sync ones go to its
thread pool), so the API's blocking calls must run in threads.

Each test runs two handlers on one loop, as the worker would: POST /api/jobs, DELETE
/api/jobs/{id} or the blob trigger, whose storage call waits for the test's go-ahead (the real
Azurite-backed store, only delayed), and GET /api/jobs/{id}. The GET must be answered while that
call still waits. The Durable client talks to devhost's management API over loopback.

Without the threads the blocked handler holds the loop: nothing else runs until the slow call gives
up waiting (SAFETY_SECONDS, a deadlock breaker, not a measurement), and the test fails on the order
of events, not on a time.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import azure.functions as func
import pytest
from app_index import app_functions

from api.jobs import ORCHESTRATOR
from devhost.client_binding import WEBHOOK_PATH, binding_json
from devhost.engine import Engine
from devhost.http_server import DevServer, Router
from devhost.management import ManagementApi
from devhost.store import Store

SAFETY_SECONDS = 10.0
WATCHED = "watched-job"  # the job the GET reads
VICTIM = "victim-job"  # the job the DELETE cancels


@pytest.fixture(autouse=True)
def fresh_sdk_session(monkeypatch) -> None:
    """The SDK keeps one aiohttp session per process, bound to the loop that made it; each test's
    asyncio.run is a new loop, so each starts without one."""
    from azure.durable_functions.models.utils import http_utils

    monkeypatch.setattr(http_utils, "_client_session", None)
    monkeypatch.setattr(http_utils, "_session_lock", asyncio.Lock())


@pytest.fixture
def durable(tmp_path) -> Iterator[str]:
    """The Durable client binding of devhost's management API, over two pending jobs."""
    state = Store(tmp_path / "state.db")
    engine = Engine(state, {name: lambda _context: "{}" for name in (ORCHESTRATOR, "remove_work")}, lambda _work: None)
    for instance_id in (WATCHED, VICTIM):
        engine.start(ORCHESTRATOR, instance_id, json.dumps({"blob": f"{instance_id}.mp4"}))
    router = Router()
    router.add(WEBHOOK_PATH, ManagementApi(engine, "restyle").handle)
    server = DevServer(("127.0.0.1", 0), router)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield binding_json(f"http://127.0.0.1:{server.server_address[1]}", "restyle")
    server.shutdown()
    state.close()


class Gate:
    """Makes one BlobStore method wait until the test releases it; records when it entered and left."""

    def __init__(self, store, method: str, monkeypatch) -> None:
        self.entered, self.release, self.left = threading.Event(), threading.Event(), threading.Event()
        self.released_by_test: bool | None = None
        real = getattr(store, method)

        def slow(*args, **kwargs):
            self.entered.set()
            self.released_by_test = self.release.wait(SAFETY_SECONDS)
            self.left.set()
            return real(*args, **kwargs)

        monkeypatch.setattr(store, method, slow)


def request(method: str, body: dict | None = None, route: dict | None = None) -> func.HttpRequest:
    return func.HttpRequest(method, "http://127.0.0.1:7071/api/jobs", headers={"content-type": "application/json"},
                            route_params=route or {}, body=json.dumps(body).encode() if body else b"")


def handler(name: str):
    return app_functions()[name].get_user_function()


async def while_blocked(blocked_call, gate: Gate, binding: str) -> tuple[func.HttpResponse, bool, object]:
    """Start `blocked_call`, wait until its storage call is waiting, GET the watched job, then release
    the storage call. Returns the GET's answer, whether the storage call was still waiting when the
    GET was answered, and the blocked call's result."""
    blocked = asyncio.create_task(blocked_call())
    await asyncio.to_thread(gate.entered.wait, SAFETY_SECONDS)
    answer = await handler("read_job")(req=request("GET", route={"instance_id": WATCHED}), client=binding)
    still_waiting = gate.entered.is_set() and not gate.left.is_set()
    gate.release.set()
    return answer, still_waiting, await blocked


@pytest.fixture
def api_store(store, monkeypatch):
    from api import blueprint

    monkeypatch.setattr(blueprint, "app_store", lambda: store)
    store.write_bytes(store.settings.input_container, "clip.mp4", b"not inspected here", "video/mp4")
    return store


def test_get_is_answered_while_a_post_waits_on_storage(api_store, durable, monkeypatch):
    gate = Gate(api_store, "info", monkeypatch)  # the POST's read of the upload's properties
    post = request("POST", {"blob": "clip.mp4", "style": "19"})
    answer, still_waiting, posted = asyncio.run(
        while_blocked(lambda: handler("create_job")(req=post, client=durable), gate, durable))
    assert answer.status_code == 200 and json.loads(answer.get_body())["id"] == WATCHED
    assert still_waiting, "the GET was answered only after the POST's storage call had returned"
    assert gate.released_by_test
    assert posted.status_code == 202 and json.loads(posted.get_body())["created"] is True


@pytest.mark.parametrize("method", ["write_json", "list_names"])  # the cancel mark; the finished segments' results
def test_get_is_answered_while_a_delete_waits_on_storage(method, api_store, durable, monkeypatch):
    gate = Gate(api_store, method, monkeypatch)
    delete = request("DELETE", route={"instance_id": VICTIM})
    answer, still_waiting, deleted = asyncio.run(
        while_blocked(lambda: handler("delete_job")(req=delete, client=durable), gate, durable))
    assert answer.status_code == 200 and json.loads(answer.get_body())["id"] == WATCHED
    assert still_waiting, "the GET was answered only after the DELETE's storage call had returned"
    assert gate.released_by_test
    assert deleted.status_code == 202, deleted.get_body()
    assert api_store.exists(api_store.settings.work_container, f"{VICTIM}.canceled")
    assert json.loads(deleted.get_body())["work_removal"] == f"{VICTIM}-remove-work"


def test_get_is_answered_while_the_blob_trigger_waits_on_storage(api_store, durable, monkeypatch):
    gate = Gate(api_store, "info", monkeypatch)  # the trigger's read of the upload's properties
    source = SimpleNamespace(blob_name="clip.mp4")  # the trigger reads only the name of its BlobClient
    answer, still_waiting, result = asyncio.run(
        while_blocked(lambda: handler("on_video_uploaded")(source=source, client=durable), gate, durable))
    assert answer.status_code == 200 and json.loads(answer.get_body())["id"] == WATCHED
    assert still_waiting, "the GET was answered only after the trigger's storage call had returned"
    assert gate.released_by_test
    assert result is None
