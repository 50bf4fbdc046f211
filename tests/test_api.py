"""The HTTP API's refusals, called as the worker calls the handlers, against real Azurite.

Every path here is refused before the Durable client is used: the client binding points at a port
nothing listens on, so a handler that did reach the client would answer 500, not the 4xx asserted.
"""

from __future__ import annotations

import asyncio
import json

import azure.functions as func
import pytest
from app_index import app_functions
from PIL import Image

from tools.azurite import free_port

UNREACHABLE = f"http://127.0.0.1:{free_port()}/runtime/webhooks/durabletask/"


def handlers() -> dict:
    return {name: function.get_user_function() for name, function in app_functions().items()}


def client_binding() -> str:
    return json.dumps({"taskHubName": "restyle", "creationUrls": {}, "managementUrls": {}, "baseUrl": UNREACHABLE,
                       "requiredQueryStringParameters": "", "rpcBaseUrl": UNREACHABLE})


def call(name: str, method: str, body: bytes = b"", params: dict | None = None, route: dict | None = None):
    request = func.HttpRequest(method, "http://127.0.0.1:7071/api/jobs", headers={"content-type": "application/json"},
                               params=params or {}, route_params=route or {}, body=body)
    response = asyncio.run(handlers()[name](req=request, client=client_binding()))
    return response.status_code, json.loads(response.get_body())


@pytest.fixture
def api_store(store, monkeypatch):
    from api import blueprint

    monkeypatch.setattr(blueprint, "app_store", lambda: store)
    return store


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [(b"{not json", 400, "invalid_json", "not valid JSON"),
     (b"\xff\xfe", 400, "invalid_json", "not valid JSON"),
     (b'["clip.mp4"]', 400, "invalid_body", "JSON object"),
     (b'{"blob": "clip.mp4", "colour": "red"}', 400, "invalid_body", "unknown fields ['colour']"),
     (b'{"blob": 7}', 400, "invalid_blob", "name of a video"),
     (b'{"style": "19"}', 400, "invalid_blob", "name of a video"),
     (b'{"blob": "../secret.mp4"}', 400, "invalid_blob", "'..' segment"),
     (b'{"blob": "nowhere.mp4"}', 404, "blob_not_found", "no video named 'nowhere.mp4'"),
     (b'{"blob": "clip.mp4", "style": 19}', 400, "invalid_style", "must be a string"),
     (b'{"blob": "clip.mp4", "style": "99"}', 400, "invalid_style", "out of range"),
     (b'{"blob": "clip.mp4", "style": "absent.jpg"}', 404, "style_not_found", "does not exist"),
     (b'{"blob": "clip.mp4", "style": "broken.png"}', 400, "invalid_style", "not a readable picture"),
     (b'{"blob": "clip.mp4", "options": {"scale": 0}}', 400, "invalid_options", "scale: Input should be greater"),
     (b'{"blob": "clip.mp4", "options": {"stability": 1.5}}', 400, "invalid_options",
      "stability: Input should be less than or equal to 1"),
     (b'{"blob": "clip.mp4", "options": {"quality": 101}}', 400, "invalid_options",
      "quality: Input should be less than or equal to 100"),
     (b'{"blob": "clip.mp4", "options": {"crf": 20, "quality": 96}}', 400, "invalid_options",
      "quality: Value error, set crf or quality, not both"),
     (b'{"blob": "clip.mp4", "options": "fast"}', 400, "invalid_options", "must be a JSON object")],
)
def test_post_refuses_bad_requests_with_their_reason(body, status, code, words, api_store, make_clip, tmp_path):
    api_store.upload_file(api_store.settings.input_container, "clip.mp4", make_clip(frames=12))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    api_store.upload_file(api_store.settings.styles_container, "broken.png", tmp_path / "broken.png")
    got_status, payload = call("create_job", "POST", body)
    assert (got_status, payload["error"]["code"]) == (status, code)
    assert words in payload["error"]["message"]
    assert api_store.exists(api_store.settings.input_container, "clip.mp4")  # a refused request moves nothing


def test_post_refuses_an_oversized_body(api_store, monkeypatch):
    limited = api_store.settings.model_copy(update={"max_request_bytes": 100})
    monkeypatch.setattr("api.blueprint.get_settings", lambda: limited)
    status, payload = call("create_job", "POST", json.dumps({"blob": "x" * 200}).encode())
    assert (status, payload["error"]["code"]) == (413, "body_too_large")
    assert "limit is 100" in payload["error"]["message"]


def test_a_valid_style_image_passes_validation(api_store, make_clip, tmp_path):
    from api.callers import KEY_CALLER
    from api.jobs import job_for_request

    Image.new("RGB", (32, 32), "teal").save(tmp_path / "teal.png")
    api_store.upload_file(api_store.settings.styles_container, "teal.png", tmp_path / "teal.png")
    api_store.upload_file(api_store.settings.input_container, "clip.mp4", make_clip(frames=12))
    job = job_for_request(api_store, {"blob": "clip.mp4", "style": "teal.png", "options": {"scale": 0.5}}, KEY_CALLER)
    again = job_for_request(api_store, {"blob": "clip.mp4", "style": "teal.png", "options": {"scale": 0.5}},
                            KEY_CALLER)
    other = job_for_request(api_store, {"blob": "clip.mp4", "style": "teal.png"}, KEY_CALLER)
    assert job.instance_id == again.instance_id != other.instance_id  # same request, same job
    assert job.payload["options"] == {"scale": 0.5} and job.payload["style"] == "teal.png"
    api_store.upload_file(api_store.settings.input_container, "clip.mp4", make_clip(frames=12))  # re-upload
    assert job_for_request(api_store, {"blob": "clip.mp4", "style": "teal.png",
                                       "options": {"scale": 0.5}}, KEY_CALLER).instance_id != job.instance_id


def test_list_refuses_an_unknown_status_filter(api_store):
    status, payload = call("read_jobs", "GET", params={"status": "Running,Sleeping"})
    assert (status, payload["error"]["code"]) == (400, "invalid_status")
    assert "Sleeping" in payload["error"]["message"] and "Completed" in payload["error"]["message"]


def test_metadata_names_the_options_and_leaves_the_rest():
    from api.uploads import options_from_metadata

    assert options_from_metadata({"Scale": "0.5", "crf": "20", "author": "ana", "style": "3", "Stability": "0.7"}) == {
        "scale": "0.5", "crf": "20", "stability": "0.7"}
