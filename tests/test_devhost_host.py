"""devhost in-process with a small app of its own (defined here): HTTP routing, the Durable SDK's client
running unchanged against devhost's management API, external events, terminate and purge, and the
polling blob trigger with receipts and poison handling on a real Azurite.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob_sdk
import pytest
from azure.storage.blob import BlobServiceClient

from devhost.host import Host, Options

CONTAINER_SETTING, CONNECTION_SETTING = "DEVHOST_TEST_CONTAINER", "DevhostTestStorage"
app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
blob_calls: list[tuple[str, str, str]] = []  # (blob name, ETag, parameter type) per blob-trigger run


@app.route(route="flows/{n:int}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_flow(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    payload = {"n": int(req.route_params["n"]), "wait": req.params.get("wait") == "1"}
    instance_id = await client.start_new("flow", None, payload)
    return client.create_check_status_response(req, instance_id)


@app.route(route="flows/{instance_id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def read_flow(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    status = await client.get_status(req.route_params["instance_id"])
    if not status:
        return func.HttpResponse(status_code=404)
    return func.HttpResponse(json.dumps(status.to_json(), default=str), mimetype="application/json")


@app.route(route="flows", methods=["GET"])
@app.durable_client_input(client_name="client")
async def list_flows(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    wanted = [df.OrchestrationRuntimeStatus(s) for s in req.params["status"].split(",")]
    found = await client.get_status_by(runtime_status=wanted)
    return func.HttpResponse(json.dumps(sorted(s.instance_id for s in found)), mimetype="application/json")


@app.route(route="flows/{instance_id}/events/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def signal_flow(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    await client.raise_event(req.route_params["instance_id"], req.route_params["name"], req.get_json())
    return func.HttpResponse(status_code=202)


@app.route(route="flows/{instance_id}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def stop_flow(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    await client.terminate(req.route_params["instance_id"], "stopped by test")
    return func.HttpResponse(status_code=202)


@app.route(route="flows/{instance_id}/history", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def purge_flow(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    result = await client.purge_instance_history(req.route_params["instance_id"])
    return func.HttpResponse(json.dumps(result.instances_deleted), mimetype="application/json")


@app.route(route="echo/{word:alpha}", methods=["GET"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    if req.route_params["word"] == "boom":
        raise RuntimeError("the function failed")
    body = {"method": req.method, "route": dict(req.route_params), "params": dict(req.params),
            "header": req.headers.get("x-test"), "url": req.url}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.blob_trigger(arg_name="source", path=f"%{CONTAINER_SETTING}%/{{name}}", connection=CONNECTION_SETTING)
def on_blob(source: blob_sdk.BlobClient) -> None:
    blob_calls.append((source.blob_name, source.get_blob_properties().etag.strip('"'), type(source).__module__))
    if "poison" in source.blob_name:
        raise ValueError("cannot read this blob")


@app.orchestration_trigger(context_name="context")
def flow(context: df.DurableOrchestrationContext):
    job = context.get_input()
    doubled = yield context.task_all([context.call_activity("double", i) for i in range(job["n"])])
    extra = (yield context.wait_for_external_event("go")) if job["wait"] else None
    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=200))
    return {"sum": sum(doubled), "extra": extra}


@app.activity_trigger(input_name="value")
def double(value: int) -> int:
    return 2 * value


@pytest.fixture(scope="module")
def host(azurite, tmp_path_factory):
    container = f"devhost{uuid.uuid4().hex[:10]}"
    saved = {name: os.environ.get(name) for name in (CONTAINER_SETTING, CONNECTION_SETTING)}
    os.environ.update({CONTAINER_SETTING: container, CONNECTION_SETTING: azurite})
    running = Host(Options(app=__name__, folder=tmp_path_factory.mktemp("app"), port=0,
                           state_dir=tmp_path_factory.mktemp("state"), activity_workers=2,
                           blob_poll_seconds=0.2, blob_max_attempts=3, drain_seconds=5))
    running.start()
    running.container = BlobServiceClient.from_connection_string(azurite).create_container(container)
    yield running
    running.stop()
    for name, value in saved.items():
        os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


def call(host: Host, method: str, path: str, body: object = None, headers: dict | None = None,
         url: str | None = None) -> tuple[int, dict, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url or host.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, head, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, head, raw = error.code, dict(error.headers), error.read()
    return status, head, json.loads(raw) if raw else None


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def finished(host: Host, instance_id: str) -> dict | None:
    _, _, status = call(host, "GET", f"/api/flows/{instance_id}")
    return status if status["runtimeStatus"] in ("Completed", "Failed", "Terminated") else None


def test_http_start_returns_check_status_urls_on_devhost_and_the_flow_completes(host):
    status, headers, payload = call(host, "POST", "/api/flows/4")
    assert status == 202 and headers["Location"] == payload["statusQueryGetUri"]
    assert payload["statusQueryGetUri"].startswith(f"{host.url}/runtime/webhooks/durabletask/instances/")
    result = wait_for(lambda: call(host, "GET", "", url=payload["statusQueryGetUri"]), what="status URL")
    done = wait_for(lambda: finished(host, payload["id"]), what="completion")
    assert done["runtimeStatus"] == "Completed" and done["output"] == {"sum": 12, "extra": None}
    assert result[0] in (200, 202) and result[2]["instanceId"] == payload["id"]
    listed = call(host, "GET", "/api/flows?status=Completed")[2]
    assert payload["id"] in listed and payload["id"] not in call(host, "GET", "/api/flows?status=Running")[2]


def test_an_external_event_reaches_a_waiting_orchestration(host):
    instance_id = call(host, "POST", "/api/flows/1?wait=1")[2]["id"]
    wait_for(lambda: call(host, "GET", f"/api/flows/{instance_id}")[2]["runtimeStatus"] == "Running", what="running")
    assert call(host, "POST", f"/api/flows/{instance_id}/events/go", {"colour": "red"})[0] == 202
    done = wait_for(lambda: finished(host, instance_id), what="completion")
    assert done["output"] == {"sum": 0, "extra": {"colour": "red"}}


def test_terminate_and_purge_through_the_sdk_client(host):
    instance_id = call(host, "POST", "/api/flows/1?wait=1")[2]["id"]
    assert call(host, "DELETE", f"/api/flows/{instance_id}/history")[0] == 500  # a running instance cannot be purged
    assert call(host, "DELETE", f"/api/flows/{instance_id}")[0] == 202
    done = wait_for(lambda: finished(host, instance_id), what="termination")
    assert (done["runtimeStatus"], done["output"]) == ("Terminated", "stopped by test")
    assert call(host, "DELETE", f"/api/flows/{instance_id}")[0] == 202  # 410 from the API is fine for the SDK
    assert call(host, "DELETE", f"/api/flows/{instance_id}/history")[2] == 1
    assert call(host, "GET", f"/api/flows/{instance_id}")[0] == 404


def test_http_requests_carry_method_route_query_and_headers(host):
    status, headers, body = call(host, "GET", "/api/echo/Hello?x=1&y=two", headers={"X-Test": "yes"})
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert body == {"method": "GET", "route": {"word": "Hello"}, "params": {"x": "1", "y": "two"}, "header": "yes",
                    "url": f"{host.url}/api/echo/Hello?x=1&y=two"}
    assert call(host, "GET", "/api/echo/123")[0] == 404  # the alpha constraint
    assert call(host, "POST", "/api/echo/Hello")[0] == 404  # GET only
    assert call(host, "GET", "/api/nothing")[0] == 404
    assert call(host, "GET", "/api/echo/boom")[0] == 500
    assert call(host, "GET", "/admin/host/status")[2]["state"] == "Running"


def test_the_durable_api_answers_with_the_extensions_codes(host):
    webhook = f"{host.url}/runtime/webhooks/durabletask"
    assert call(host, "GET", "", url=f"{webhook}/instances/nobody")[0] == 404
    started = call(host, "POST", "", {"n": 0, "wait": True}, url=f"{webhook}/orchestrators/flow/fixed-id")
    assert started[0] == 202 and started[2]["id"] == "fixed-id"
    assert call(host, "POST", "", {"n": 0, "wait": False}, url=f"{webhook}/orchestrators/flow/fixed-id")[0] == 409
    unknown = call(host, "POST", "", None, url=f"{webhook}/orchestrators/nope")
    assert unknown[0] == 400 and "'nope'" in unknown[2]["ExceptionMessage"]
    assert call(host, "DELETE", "", url=f"{webhook}/instances/fixed-id")[0] == 412
    assert call(host, "POST", "", url=f"{webhook}/instances/fixed-id/terminate?reason=done")[0] == 202
    wait_for(lambda: call(host, "GET", "", url=f"{webhook}/instances/fixed-id")[0] == 200, what="terminated")
    assert call(host, "POST", "", url=f"{webhook}/instances/fixed-id/terminate?reason=again")[0] == 410
    assert call(host, "POST", "", url=f"{webhook}/instances/fixed-id/rewind")[0] == 501


def upload(host: Host, name: str, data: bytes) -> str:
    return host.container.get_blob_client(name).upload_blob(data, overwrite=True)["etag"].strip('"')


def runs(name: str) -> list[tuple[str, str, str]]:
    return [call_ for call_ in blob_calls if call_[0] == name]


def test_a_blob_fires_once_per_etag_with_a_real_blob_client(host):
    first = upload(host, "clip.mp4", b"one")
    wait_for(lambda: runs("clip.mp4"), what="the blob trigger")
    second = upload(host, "clip.mp4", b"two")  # a re-upload: new ETag, fires again
    wait_for(lambda: len(runs("clip.mp4")) == 2, what="the second upload")
    time.sleep(1.0)  # several more scans: receipts keep both from firing again
    assert [(etag, kind) for _, etag, kind in runs("clip.mp4")] == [(first, "azure.storage.blob._blob_client"),
                                                                     (second, "azure.storage.blob._blob_client")]


def test_a_blob_whose_function_keeps_failing_is_given_up_as_poison(host):
    etag = upload(host, "poison.mp4", b"bad")
    wait_for(lambda: len(runs("poison.mp4")) == 3, what="three attempts")
    time.sleep(1.0)
    assert len(runs("poison.mp4")) == 3
    receipt = host.store.receipt("on_blob", "poison.mp4", etag)
    assert (receipt.status, receipt.attempts) == ("poison", 3) and "cannot read this blob" in receipt.last_error


def test_the_admin_api_delivers_the_same_blob_event_again(host):
    upload(host, "again.mp4", b"x")
    wait_for(lambda: runs("again.mp4"), what="the blob trigger")
    path = "/admin/functions/on_blob"
    blob = f"{host.container.container_name}/again.mp4"
    assert call(host, "POST", path, {"input": blob})[0] == 202
    assert call(host, "POST", path, {"input": blob})[0] == 202
    assert len({etag for _, etag, _ in runs("again.mp4")}) == 1 and len(runs("again.mp4")) == 3
    assert call(host, "POST", path, {"input": f"{host.container.container_name}/missing.mp4"})[0] == 404
    assert call(host, "POST", path, {"input": "other/again.mp4"})[0] == 404
    assert call(host, "POST", path, {})[0] == 400
