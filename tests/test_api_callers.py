"""Who the app takes a caller for (api/callers.py) from App Service's principal headers, in the
documented format (restyle/principal.py), and from the machine key: what counts, and what is refused
with 401 and why. Quotas of a person, against real Azurite (api/quotas.py)."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest
from app_index import app_functions

from activities.compute.usage import record_usage
from api.callers import KEY_CALLER, OPERATOR_ROLE, Caller, identify, key_hash
from api.errors import ApiError
from api.quotas import check_quota, usage_of
from api.upload_records import UploadRecord, claim_name
from restyle.principal import OBJECT_ID_CLAIM, Principal, principal_headers, read_principal
from restyle.settings import Settings
from tools.azurite import free_port

SIGNED_IN = {"WEBSITE_AUTH_ENABLED": "True"}
REQUIRED = Settings(auth="required", api_key_sha256=f"{key_hash('old-key')}, {key_hash('new-key').upper()}")
OLGA = Principal("0b1c5e8e-0000-4000-8000-000000000001", "olga@contoso.com", frozenset({OPERATOR_ROLE}))


def encoded(payload: object) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


def refusal(headers: dict, params: dict | None = None, settings: Settings = REQUIRED, environ=SIGNED_IN) -> tuple:
    with pytest.raises(ApiError) as refused:
        identify(headers, params or {}, settings, environ)
    return refused.value.status, refused.value.code


def test_a_principal_as_app_service_writes_it_is_a_person_with_their_app_roles():
    """The shape Entra ID sign-in gives: `roles` claims while role_typ names the long claim URI."""
    payload = {"auth_typ": "aad", "claims": [
        {"typ": OBJECT_ID_CLAIM, "val": OLGA.id}, {"typ": "name", "val": "Olga"},
        {"typ": "roles", "val": OPERATOR_ROLE}, {"typ": "roles", "val": "Other.Role"}],
        "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"}
    headers = {"X-MS-CLIENT-PRINCIPAL": encoded(payload), "X-MS-CLIENT-PRINCIPAL-ID": OLGA.id,
               "X-MS-CLIENT-PRINCIPAL-NAME": "olga@contoso.com", "X-MS-CLIENT-PRINCIPAL-IDP": "aad"}
    caller = identify(headers, {}, REQUIRED, SIGNED_IN)
    assert (caller.id, caller.name, caller.operator, caller.limited) == (OLGA.id, "olga@contoso.com", True, False)
    assert caller.roles == {OPERATOR_ROLE, "Other.Role"}
    lower = {name.lower(): value for name, value in headers.items()}  # the worker may lower-case names
    assert identify(lower, {}, REQUIRED, SIGNED_IN) == caller
    assert read_principal(principal_headers(OLGA)) == OLGA  # what devhost writes reads back the same


def test_principal_headers_count_only_where_the_platform_sets_them():
    headers = principal_headers(OLGA)
    assert refusal(headers, environ={}) == (401, "not_signed_in")  # sign-in off: a client's own words
    assert refusal(headers, environ={"WEBSITE_AUTH_ENABLED": "False"}) == (401, "not_signed_in")
    assert identify(headers, {}, Settings(auth="open"), {}) == KEY_CALLER  # open: anybody is the key, never olga


@pytest.mark.parametrize("headers", [
    {"X-MS-CLIENT-PRINCIPAL": "not base64!", "X-MS-CLIENT-PRINCIPAL-ID": "x"},
    {"X-MS-CLIENT-PRINCIPAL": encoded(["claims"]), "X-MS-CLIENT-PRINCIPAL-ID": "x"},
    {"X-MS-CLIENT-PRINCIPAL": encoded({"claims": [{"typ": "roles", "val": 7}]}), "X-MS-CLIENT-PRINCIPAL-ID": "x"},
    {"X-MS-CLIENT-PRINCIPAL": encoded({"claims": [{"typ": OBJECT_ID_CLAIM, "val": "someone-else"}]}),
     "X-MS-CLIENT-PRINCIPAL-ID": "x"},  # an id that the claims contradict
    {"X-MS-CLIENT-PRINCIPAL-ID": "x"},  # an id without the principal
])
def test_principal_headers_out_of_the_platform_format_are_refused(headers):
    assert refusal(headers) == (401, "invalid_principal")


def test_the_machine_key_by_its_hash_in_a_header_or_the_query():
    assert identify({"x-functions-key": "old-key"}, {}, REQUIRED, {}) == KEY_CALLER
    assert identify({"X-Functions-Key": "new-key"}, {}, REQUIRED, {}) == KEY_CALLER  # two keys while rotating
    assert identify({}, {"code": "new-key"}, REQUIRED, {}) == KEY_CALLER
    assert refusal({"x-functions-key": "guess"}, environ={}) == (401, "invalid_key")
    assert refusal({}, environ={}) == (401, "not_signed_in")
    assert refusal({"x-functions-key": "old-key"}, settings=Settings(auth="required"), environ={}) == (
        401, "invalid_key")  # no hashes configured: no key is accepted
    assert identify({"x-functions-key": "old-key", **principal_headers(OLGA)}, {}, REQUIRED, SIGNED_IN).id == OLGA.id


def test_quotas_count_running_jobs_and_tickets_and_the_days_gpu_minutes(store):
    settings = store.settings.model_copy(update={"max_running_jobs_per_user": 2, "gpu_minutes_per_user_per_day": 1})
    alice = Caller("alice-id", "alice@contoso.com")
    now = datetime(2030, 5, 6, 22, 0, tzinfo=UTC)
    today, yesterday = now.isoformat(), (now - timedelta(days=1)).isoformat()
    jobs = [{"id": "running", "pipeline": "video", "status": "Running", "updated": today,
             "progress": {"eta_seconds": 40}},
            {"id": "done", "pipeline": "video", "status": "Completed", "updated": today, "progress": {}},
            {"id": "old", "pipeline": "video", "status": "Completed", "updated": yesterday, "progress": {}}]
    record_usage(store, "done", 45.0, now)
    record_usage(store, "old", 600.0, now - timedelta(days=1))
    usage = usage_of(store, alice, jobs, now)
    assert (usage.running, usage.gpu_minutes, usage.soonest_end) == (1, 0.75, 40)
    check_quota(usage, settings, now)  # one running of 2, 0.75 of 1 GPU minute: allowed

    claim_name(store, "next.mp4", UploadRecord(alice.as_owner(), 10, now + timedelta(minutes=15)), now)
    with pytest.raises(ApiError) as running:
        check_quota(usage_of(store, alice, jobs, now), settings, now)
    assert (running.value.status, running.value.code, running.value.headers) == (
        429, "too_many_running", {"Retry-After": "40"})
    assert "you have 2 jobs running or about to start" in running.value.message

    record_usage(store, "running", 39.0, now)  # the running job's attempt ended: 1.4 minutes today
    ended = [{**jobs[0], "status": "Completed"}, *jobs[1:]]
    with pytest.raises(ApiError) as spent:
        check_quota(usage_of(store, alice, ended, now), settings, now)
    assert (spent.value.status, spent.value.code, spent.value.headers) == (
        429, "gpu_minutes_used", {"Retry-After": str(2 * 3600)})
    assert spent.value.message == ("you have used 1.4 of your 1 GPU minutes for today (UTC); they renew at "
                                   "2030-05-07 00:00 UTC, in 7200 s")


def test_every_http_function_refuses_a_caller_it_does_not_admit(monkeypatch):
    """Each handler as the worker calls it, with auth required, nobody signed in and no key: 401 before the
    body is read or the Durable client used (its binding points where nothing listens); the page sends
    a browser to sign in where sign-in is on."""
    monkeypatch.setattr("api.blueprint.get_settings", lambda: REQUIRED)
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)  # an in-process devhost of another test may set it
    unreachable = f"http://127.0.0.1:{free_port()}/runtime/webhooks/durabletask/"
    binding = json.dumps({"taskHubName": "restyle", "creationUrls": {}, "managementUrls": {}, "baseUrl": unreachable,
                          "requiredQueryStringParameters": "", "rpcBaseUrl": unreachable})
    forged = principal_headers(OLGA)  # sign-in off in this process: a client's own headers
    answers = {}
    for name, function in app_functions().items():
        trigger = function.get_trigger()
        if trigger.type != "httpTrigger":
            continue
        request = func.HttpRequest(trigger.methods[0].value, f"http://127.0.0.1/api/{trigger.route}", headers=forged,
                                   route_params={"instance_id": "some-job"}, body=b"{not json")
        durable = any(b["type"] == "durableClient" for b in json.loads(function.get_function_json())["bindings"])
        result = function.get_user_function()(req=request, **({"client": binding} if durable else {}))
        answer = asyncio.run(result) if asyncio.iscoroutine(result) else result
        answers[name] = answer.status_code
    assert answers == dict.fromkeys(answers, 401) and len(answers) == 11

    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    page = app_functions()["jobs_page"].get_user_function()(req=func.HttpRequest("GET", "https://app/api/page",
                                                                                 body=b""))
    assert page.status_code == 302
    assert page.headers["Location"] == "/.auth/login/aad?post_login_redirect_uri=/api/page"
