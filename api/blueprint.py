"""The blob triggers (videos in input/, tables in tables/) and the HTTP API: thin adapters over
api.uploads and api.jobs.

HTTP: POST /api/jobs, GET /api/jobs/{instance_id}, GET /api/jobs?status=...&owner=..., DELETE
/api/jobs/{instance_id}, POST /api/forecast, and for the jobs page GET /api/page (HTML), GET /api/me (who is
signed in, and their quota), POST /api/uploads (a one-blob create-only SAS), GET
/api/jobs/{instance_id}/downloads (read-only SAS URLs of a finished job's files) and, for a finished table
job's forecast view, GET /api/jobs/{instance_id}/partitions?q=&status=&limit= (the gate's counts and the
matching partitions) and GET /api/jobs/{instance_id}/forecast?partition=<id> (one partition's history,
forecast and intervals). JSON in and out (but the page), errors as {"error": {"code", "message"}}. The
routes are at auth level ANONYMOUS: every handler first asks api.callers who is calling (a signed-in
person or the machine key; 401 otherwise).

The Python worker runs every `async def` function on its one event loop, so a blocking storage or
Azure ML call made there would stall every other invocation of the worker: those calls run in a
thread (`asyncio.to_thread`), one hop per step that needs them (tests/test_api_event_loop.py).
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps
from urllib.parse import quote, urlsplit

import azure.durable_functions as df
import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob_sdk

from restyle.principal import sign_in_enabled
from restyle.settings import DATA_CONNECTION, get_settings
from restyle.storage import app_store

from .callers import Caller, identify
from .errors import ApiError, json_response
from .forecast import app_forecaster, forecast_request
from .forecast_view import partition_forecast, partition_list
from .jobs import cancel_job, get_job, job_for_request, list_jobs, start_job
from .page import render_page
from .quotas import Usage, check_quota, usage_of
from .tickets import download_links, upload_ticket
from .uploads import handle_table_upload, handle_upload

bp = df.Blueprint()
log = logging.getLogger(__name__)
_settings = get_settings()  # the trigger's container and source are fixed when the host indexes the app


def _json_errors(handler: Callable[..., Awaitable[func.HttpResponse]]):
    """ApiError -> its 4xx JSON body; anything else is logged and answered with a 500 JSON body
    that names no internals."""

    @wraps(handler)  # the worker reads the handler's own signature (through __wrapped__) and passes bindings by name
    async def wrapped(req: func.HttpRequest, **bindings: object) -> func.HttpResponse:
        try:
            return await handler(req, **bindings)
        except ApiError as error:
            return error.response()
        except Exception:
            log.exception("%s %s failed", req.method, req.url)
            return ApiError(500, "internal_error", "the request failed; see the Function App's logs").response()

    return wrapped


@bp.blob_trigger(arg_name="source", path=f"{_settings.input_container}/{{name}}", connection=DATA_CONNECTION,
                 source=_settings.blob_trigger_source)
@bp.durable_client_input(client_name="client")
async def on_video_uploaded(source: blob_sdk.BlobClient, client: df.DurableOrchestrationClient) -> None:
    await handle_upload(client, app_store(), source.blob_name)


@bp.blob_trigger(arg_name="source", path=f"{_settings.tables_container}/{{name}}", connection=DATA_CONNECTION,
                 source=_settings.blob_trigger_source)
@bp.durable_client_input(client_name="client")
async def on_table_uploaded(source: blob_sdk.BlobClient, client: df.DurableOrchestrationClient) -> None:
    await handle_table_upload(client, app_store(), source.blob_name)


def _body(req: func.HttpRequest, caller: Caller) -> object:
    """The JSON body. A signed-in person's must say it is JSON: a page on another site can make the
    browser send the session cookie with a form's text/plain body, never with application/json
    (which needs a CORS preflight this app does not grant), so no other site can act for them."""
    if not caller.is_key and req.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "not_json", "send the body as JSON, with Content-Type: application/json")
    raw = req.get_body() or b""
    limit = get_settings().max_request_bytes
    if len(raw) > limit:
        raise ApiError(413, "body_too_large", f"request body is {len(raw)} bytes; the limit is {limit}")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {error}") from None


def _caller(req: func.HttpRequest) -> Caller:
    return identify(req.headers, req.params, get_settings())


async def _usage(client: df.DurableOrchestrationClient, caller: Caller) -> Usage:
    """The caller's own jobs and what they have used today (storage reads in a thread)."""
    jobs = await list_jobs(client, None, caller, caller.id)
    return await asyncio.to_thread(usage_of, app_store(), caller, jobs, datetime.now(UTC))


async def _check_quota(client: df.DurableOrchestrationClient, caller: Caller) -> None:
    if caller.limited:
        check_quota(await _usage(client, caller), get_settings(), datetime.now(UTC))


@bp.route(route="jobs", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@_json_errors
async def create_job(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    caller = _caller(req)
    job = await asyncio.to_thread(job_for_request, app_store(), _body(req, caller), caller)  # storage reads block
    if not await client.get_status(job.instance_id):  # asking again for a job that exists costs nothing
        await _check_quota(client, caller)
    created = await start_job(client, job, caller)
    # the Durable links carry the extension's system key, which manages every instance: machines only
    links = client.get_client_response_links(req, job.instance_id) if caller.is_key else {}
    body = {"id": job.instance_id, "created": created, "job": _job_url(req, job.instance_id), **links}
    return json_response(body, 202, {"Location": body["job"], "Retry-After": "10"})


@bp.route(route="jobs/{instance_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@_json_errors
async def read_job(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return json_response(await get_job(client, req.route_params["instance_id"], _caller(req)))


@bp.route(route="jobs", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@_json_errors
async def read_jobs(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    caller = _caller(req)
    return json_response({"jobs": await list_jobs(client, req.params.get("status"), caller, req.params.get("owner"))})


@bp.route(route="jobs/{instance_id}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@_json_errors
async def delete_job(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    caller = _caller(req)
    return json_response(await cancel_job(client, app_store(), req.route_params["instance_id"], caller), 202)


@bp.route(route="forecast", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@_json_errors
async def forecast(req: func.HttpRequest) -> func.HttpResponse:
    """Real-time forecasts, for any caller the app admits; registry lookups and model loads block,
    so they run in a thread."""
    body = _body(req, _caller(req))
    return json_response(await asyncio.to_thread(forecast_request, app_forecaster(), get_settings(), body))


def _job_url(req: func.HttpRequest, instance_id: str) -> str:
    base = req.url.split("?", 1)[0].rstrip("/")
    return f"{base}/{instance_id}"


@bp.route(route="jobs/{instance_id}/downloads", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@_json_errors
async def read_job_downloads(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    caller = _caller(req)
    job = await get_job(client, req.route_params["instance_id"], caller)
    return json_response(await asyncio.to_thread(download_links, app_store(), job, caller))


@bp.route(route="jobs/{instance_id}/partitions", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@_json_errors
async def read_job_partitions(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    job = await get_job(client, req.route_params["instance_id"], _caller(req))
    limit = req.params.get("limit", "50")
    if not limit.isdigit():
        raise ApiError(400, "invalid_limit", f"limit must be a whole number; got {limit!r}")
    return json_response(await asyncio.to_thread(partition_list, app_store(), job, req.params.get("q", ""),
                                                 req.params.get("status") or None, int(limit)))


@bp.route(route="jobs/{instance_id}/forecast", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@_json_errors
async def read_job_forecast(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    job = await get_job(client, req.route_params["instance_id"], _caller(req))
    return json_response(await asyncio.to_thread(partition_forecast, app_store(), job,
                                                 req.params.get("partition", "")))


@bp.route(route="uploads", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@_json_errors
async def create_upload(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    caller = _caller(req)
    body = _body(req, caller)
    await _check_quota(client, caller)
    return json_response(await asyncio.to_thread(upload_ticket, app_store(), body, caller), 201)


@bp.route(route="me", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@_json_errors
async def read_me(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Who the page is signed in as, and their quota use (what the page shows above the jobs)."""
    caller = _caller(req)
    usage = await _usage(client, caller)
    return json_response({"caller": caller.describe(), "usage": usage.as_dict(get_settings(), caller),
                          "sign_out": "/.auth/logout" if sign_in_enabled() else None})


@bp.route(route="page", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def jobs_page(req: func.HttpRequest) -> func.HttpResponse:
    """The page, for a caller the app admits; anyone else is sent to sign in first (as App Service's
    RedirectToLoginPage would), or told why not where sign-in is off."""
    try:
        _caller(req)
    except ApiError as refused:
        if not sign_in_enabled():
            return refused.response()
        back = quote(urlsplit(req.url).path, safe="/")
        return func.HttpResponse(status_code=302, headers={
            "Location": f"/.auth/login/aad?post_login_redirect_uri={back}", "Cache-Control": "no-store"})
    body, headers = render_page(app_store().service.url)
    return func.HttpResponse(body, headers=headers, mimetype="text/html", charset="utf-8")
