"""Who may do what, on devhost as a user meets it in Azure: sign-in emulated the way App Service
Authentication does it (client-sent principal headers stripped, the test users' own injected), auth
required as infra/app/appsettings.bicep sets it, the real app, Azurite and the local backend.

Callers: user A (alice), user B (bob), an operator (olga, app role Restyle.Operator), the machine key
and an anonymous caller; operations: list (own, and another owner's), get, start, cancel, download, upload
ticket and forecast. Then what a security review would try: forged principal headers and cookies,
other people's ids, reusing a ticket to overwrite an upload, an upload larger than its ticket, a wrong
key, and more jobs than the quota allows. docs/reliability.md's security table lists these.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request

import pytest
from e2e_support import running_stack, wait_for, write_clip
from forecast_support import m3_table

from api.callers import OPERATOR_ROLE, key_hash
from devhost.sign_in import DEFAULT_USERS, SESSION_COOKIE, parse_users

KEY = "the-machine-key-0123456789"
USERS = parse_users(DEFAULT_USERS)
ENDED = ("Completed", "Failed", "Terminated")
CALLERS = ("alice", "bob", "olga", "key", "anonymous")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def sign_in(url: str, user: str) -> str:
    """The session cookie devhost's /.auth/login/aad sets for a test user (as a browser keeps it)."""
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(f"{url}/.auth/login/aad?user={user}&post_login_redirect_uri=/api/page")
    assert redirect.value.code == 302 and redirect.value.headers["Location"] == "/api/page"
    return redirect.value.headers["Set-Cookie"].split(";", 1)[0]


def put(ticket: dict, data: bytes, **extra: str) -> int:
    request = urllib.request.Request(ticket["url"], data=data, method="PUT", headers={**ticket["headers"], **extra})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("access")
    settings = {"auth": "required", "api_key_sha256": key_hash(KEY), "scoring_workers": "1",
                "segments_per_worker": "1", "max_running_jobs_per_user": "2", "gate_threshold": "100",
                "telemetry_exporter": "console"}
    with running_stack(scratch, **settings) as stack:
        host = stack.host
        headers = {user: {"Cookie": sign_in(host.url, user)} for user in USERS} | {
            "key": {"x-functions-key": KEY}, "anonymous": {}}

        def call(who: str, method: str, path: str, body: object = None, **extra: str) -> tuple[int, object]:
            return host.request(method, path, body, headers={**headers[who], **extra})

        clip = write_clip(scratch / "clip.mp4", 24, "160x96")
        yield {"stack": stack, "call": call, "clip": clip, "scratch": scratch, "headers": headers}


def ticket_for(world: dict, who: str, name: str, size: int | None = None) -> dict:
    status, ticket = world["call"](who, "POST", "/api/uploads", {
        "name": name, "size": size or world["clip"].stat().st_size, "options": {"compile": "false"}})
    assert status == 201, ticket
    return ticket


def finished(world: dict, job_id: str, timeout: float = 240) -> dict:
    def done():
        status, job = world["call"]("olga", "GET", f"/api/jobs/{job_id}")
        return job if status == 200 and job["status"] in ENDED else None

    return wait_for(done, timeout, f"job {job_id} to end")


def job_of(world: dict, blob: str) -> dict:
    def found():
        jobs = world["call"]("olga", "GET", "/api/jobs")[1]["jobs"]
        return next((job for job in jobs if job["blob"] == blob), None)

    return wait_for(found, 60, f"the job of {blob}")


@pytest.fixture(scope="module")
def jobs(world) -> dict:
    """alice's and bob's uploads through tickets, the key's upload straight to storage, a sales table
    (the key's too) trained for forecasts; all finished."""
    clip, stack = world["clip"].read_bytes(), world["stack"]
    for who in ("alice", "bob"):
        assert put(ticket_for(world, who, f"{who}.mp4"), clip) == 201
    stack.container("input").upload_blob("key.mp4", clip, metadata={"compile": "false"})
    table = io.BytesIO()
    m3_table(2).to_csv(table, index=False)
    stack.container("tables").upload_blob("sales.csv", table.getvalue(), metadata={
        "target_column": "sales", "model_set": "fast", "horizon": "6"})
    found = {name: job_of(world, blob) for name, blob in
             (("alice", "alice.mp4"), ("bob", "bob.mp4"), ("key", "key.mp4"), ("table", "sales.csv"))}
    done = {name: finished(world, job["id"]) for name, job in found.items()}
    assert {name: job["status"] for name, job in done.items()} == dict.fromkeys(done, "Completed"), done
    store = m3_table(2)["store"].iloc[0]
    return {**done, "forecast": {"dataset": "sales", "keys": {"store": str(store)}, "horizon": 3}}


def test_each_caller_gets_exactly_the_answer_its_role_allows(world, jobs):
    call, a = world["call"], jobs["alice"]
    alice_id = a["owner"]["id"]
    assert (a["owner"], jobs["bob"]["owner"]["name"], jobs["key"]["owner"]["id"]) == (
        {"id": USERS["alice"].principal.id, "name": "alice@devhost"}, "bob@devhost", "key")
    operations = {
        "list": lambda who: call(who, "GET", "/api/jobs"),
        "list alice's": lambda who: call(who, "GET", f"/api/jobs?owner={alice_id}"),
        "get": lambda who: call(who, "GET", f"/api/jobs/{a['id']}"),
        "download": lambda who: call(who, "GET", f"/api/jobs/{a['id']}/downloads"),
        "cancel (ended)": lambda who: call(who, "DELETE", f"/api/jobs/{a['id']}"),
        "upload ticket": lambda who: call(who, "POST", "/api/uploads", {"name": f"new-{who}.mp4", "size": 10}),
        "forecast": lambda who: call(who, "POST", "/api/forecast", jobs["forecast"]),
    }
    expected = {  # alice, bob, olga (operator), key, anonymous
        "list": (200, 200, 200, 200, 401),
        "list alice's": (200, 403, 200, 403, 401),
        "get": (200, 404, 200, 404, 401),
        "download": (200, 404, 200, 404, 401),
        "cancel (ended)": (409, 404, 409, 404, 401),
        "upload ticket": (201, 201, 201, 201, 401),
        "forecast": (200, 200, 200, 200, 401),
    }
    answers = {name: tuple(operation(who)[0] for who in CALLERS) for name, operation in operations.items()}
    assert answers == expected

    seen = {who: {job["id"] for job in call(who, "GET", "/api/jobs")[1]["jobs"]} for who in CALLERS[:4]}
    assert seen["alice"] == {a["id"]} and seen["bob"] == {jobs["bob"]["id"]}
    assert seen["key"] == {jobs["key"]["id"], jobs["table"]["id"]}
    assert seen["olga"] >= {a["id"], jobs["bob"]["id"], jobs["key"]["id"], jobs["table"]["id"]}
    assert call("olga", "GET", f"/api/jobs?owner={alice_id}")[1]["jobs"] == call("alice", "GET", "/api/jobs")[1]["jobs"]
    refused = call("bob", "GET", f"/api/jobs/{a['id']}")[1]["error"]
    assert refused == {"code": "job_not_found", "message": f"no job with id {a['id']!r}"}  # as if it did not exist
    me = {who: call(who, "GET", "/api/me")[1]["caller"] for who in CALLERS[:4]}
    assert (me["olga"]["operator"], me["olga"]["roles"], me["alice"]["operator"], me["key"]["kind"]) == (
        True, [OPERATOR_ROLE], False, "key")


def test_only_the_uploader_or_an_operator_starts_and_cancels_jobs_on_an_upload(world, jobs):
    call = world["call"]
    answers = {who: call(who, "POST", "/api/jobs", {"blob": "alice.mp4", "style": "7",
                                                     "options": {"compile": False}})[0] for who in CALLERS}
    assert answers == {"alice": 202, "bob": 404, "olga": 202, "key": 404, "anonymous": 401}
    started = call("alice", "POST", "/api/jobs", {"blob": "alice.mp4", "style": "7", "options": {"compile": False}})
    job_id = started[1]["id"]
    assert set(started[1]) == {"id", "created", "job"}  # no Durable links: their system key manages every job
    assert started[1]["created"] is False  # the operator's request was the same job: owned by the upload's owner
    assert call("olga", "GET", f"/api/jobs/{job_id}")[1]["owner"]["id"] == jobs["alice"]["owner"]["id"]
    cancel = {who: call(who, "DELETE", f"/api/jobs/{job_id}")[0] for who in ("bob", "key", "anonymous")}
    assert cancel == {"bob": 404, "key": 404, "anonymous": 401}
    assert call("olga", "GET", f"/api/jobs/{job_id}")[1]["status"] not in ENDED  # none of them stopped it
    assert call("olga", "DELETE", f"/api/jobs/{job_id}")[0] == 202  # an operator may

    own = call("alice", "POST", "/api/jobs", {"blob": "alice.mp4", "style": "3", "options": {"compile": False}})
    assert own[0] == 202 and call("alice", "DELETE", f"/api/jobs/{own[1]['id']}")[0] == 202
    for canceled in (job_id, own[1]["id"]):
        assert finished(world, canceled)["status"] == "Terminated"


def test_forged_principal_headers_and_cookies_are_nobody(world, jobs):
    call, alice = world["call"], USERS["alice"].principal
    principal = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": [
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": alice.id},
        {"typ": "roles", "val": OPERATOR_ROLE}], "name_typ": "name", "role_typ": "roles"}).encode()).decode()
    forged = {"X-MS-CLIENT-PRINCIPAL": principal, "X-MS-CLIENT-PRINCIPAL-ID": alice.id,
              "X-MS-CLIENT-PRINCIPAL-NAME": "alice@devhost", "X-MS-CLIENT-PRINCIPAL-IDP": "aad"}
    assert call("anonymous", "GET", "/api/jobs", **forged)[0] == 401  # devhost strips them, as App Service does
    as_bob = call("bob", "GET", "/api/me", **forged)[1]["caller"]  # bob's session plus headers naming alice
    assert (as_bob["name"], as_bob["operator"]) == ("bob@devhost", False)
    assert call("bob", "GET", f"/api/jobs/{jobs['alice']['id']}", **forged)[0] == 404

    cookie = world["headers"]["bob"]["Cookie"].split("=", 1)[1]
    body, signature = cookie.split(".")
    claimed = base64.urlsafe_b64encode(json.dumps({"user": "olga", "expires": 2**40}).encode()).decode()
    for value in (f"{claimed}.{signature}", f"{body}.{'0' * len(signature)}", f"{body}."):
        status, _ = world["stack"].host.request("GET", "/api/jobs", headers={"Cookie": f"{SESSION_COOKIE}={value}"})
        assert status == 401
    # what a page on another site can make alice's browser send with her cookie: a form's text/plain POST
    status, refused = call("alice", "POST", "/api/uploads", {"name": "forged.mp4", "size": 10},
                           **{"Content-Type": "text/plain"})
    assert (status, refused["error"]["code"]) == (415, "not_json")
    assert call("anonymous", "GET", "/api/jobs", **{"x-functions-key": "not-the-key"})[0] == 401
    assert world["stack"].host.request("GET", f"/api/jobs?code={KEY}")[0] == 200  # the key may also come as ?code=


def test_a_ticket_creates_its_one_blob_once_and_no_larger_than_it_says(world, jobs):
    call, clip = world["call"], world["clip"].read_bytes()
    input_container = world["stack"].container("input")
    before = input_container.get_blob_client("alice.mp4").get_blob_properties().etag
    ticket = ticket_for(world, "alice", "again.mp4")
    assert put(ticket, clip) == 201
    assert put(ticket, b"replaced") == 403  # storage itself refuses: the SAS can only create
    assert put(ticket, b"replaced", **{"If-None-Match": "*"}) == 403
    reused = dict(ticket, url=ticket["url"].replace("again.mp4", "alice.mp4"))
    assert put(reused, b"replaced") == 403  # the signature covers one blob name
    assert input_container.get_blob_client("alice.mp4").get_blob_properties().etag == before
    assert call("bob", "POST", "/api/uploads", {"name": "alice.mp4", "size": 10})[0] == 409
    assert finished(world, job_of(world, "again.mp4")["id"])["status"] == "Completed"  # frees a place in the quota

    small = ticket_for(world, "alice", "too-big.mp4", size=1000)
    assert small["max_bytes"] == 1000
    assert put(small, clip) == 201  # storage cannot hold a SAS to a size...
    rejected = finished(world, job_of(world, "too-big.mp4")["id"])  # ...so probe holds the upload to its ticket
    assert rejected["status"] == "Failed" and rejected["owner"]["id"] == USERS["alice"].principal.id
    assert f"the upload is {len(clip)} bytes, more than the 1000 bytes its upload ticket allowed" in rejected["error"]
    kept = world["stack"].container("rejected")
    assert kept.get_blob_client("too-big.mp4").download_blob().readall() == clip  # nothing lost
    reason = json.loads(kept.get_blob_client("too-big.mp4.reason.json").download_blob().readall())
    assert "upload ticket allowed" in reason["reason"]


def test_a_person_past_their_quota_is_told_when_to_try_again(world, jobs):
    call = world["call"]
    size = world["clip"].stat().st_size
    assert finished(world, jobs["bob"]["id"])["status"] == "Completed"  # its scoring's GPU seconds are recorded
    running = call("bob", "GET", "/api/me")[1]["usage"]["running"]  # the matrix's ticket is not used yet
    for index in range(running, 2):  # tickets are jobs on their way: up to the limit of 2
        ticket_for(world, "bob", f"bob-{index}.mp4")
    status, refused = call("bob", "POST", "/api/uploads", {"name": "bob-3.mp4", "size": size})
    assert (status, refused["error"]["code"]) == (429, "too_many_running")
    assert "the limit is 2 at once: try again when one has ended (in about" in refused["error"]["message"]
    request = urllib.request.Request(f"{world['stack'].host.url}/api/uploads", method="POST", data=json.dumps(
        {"name": "bob-3.mp4", "size": size}).encode(), headers={**world["headers"]["bob"],
                                                                "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)
    assert answer.value.code == 429 and int(answer.value.headers["Retry-After"]) > 0
    assert call("bob", "POST", "/api/jobs", {"blob": "bob.mp4", "style": "5"})[0] == 429  # starting a job: the same
    usage = call("bob", "GET", "/api/me")[1]["usage"]
    assert (usage["running"], usage["running_limit"]) == (2, 2) and usage["gpu_minutes_today"] > 0
    assert call("olga", "POST", "/api/uploads", {"name": "olga-1.mp4", "size": 10})[0] == 201  # operators: no quota
    assert call("key", "GET", "/api/me")[1]["usage"]["running_limit"] is None


def test_audit_events_name_who_started_canceled_and_downloaded(world, jobs):
    """The app runs with the console exporter here: its log records reach devhost's log as JSON."""
    alice, olga = USERS["alice"].principal.id, USERS["olga"].principal.id
    world["call"]("olga", "GET", f"/api/jobs/{jobs['alice']['id']}/downloads")
    wanted = {("restyle.job_started", alice, jobs["alice"]["id"]),
              ("restyle.job_downloaded", olga, jobs["alice"]["id"]), ("restyle.job_started", "key", jobs["key"]["id"])}

    def events() -> set[tuple[str, str, str]]:
        found = set()
        for record in exported_records(world["stack"].host.log()):
            attributes = record.get("attributes") or {}
            if "microsoft.custom_event.name" in attributes:
                found.add((attributes["microsoft.custom_event.name"], attributes["enduser.id"], attributes["job_id"]))
        return found

    wait_for(lambda: wanted <= events(), 30, "the audit events")
    assert {event for event in events() if event[0] == "restyle.job_canceled"}  # the cancels of the test above


def exported_records(log: str) -> list[dict]:
    """The console exporter's JSON objects (each spans several lines) in devhost's log."""
    decoder, records, index = json.JSONDecoder(), [], log.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(log, index)
        except json.JSONDecodeError:
            index = log.find("{", index + 1)
            continue
        if isinstance(value, dict) and "body" in value:
            records.append(value)
        index = log.find("{", end)
    return records

