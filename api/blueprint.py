"""The blob triggers (videos in input/, tables in tables/) and the HTTP API: thin adapters over
api.uploads and api.jobs.

HTTP: POST /api/jobs, GET /api/jobs/{instance_id}, GET /api/jobs?status=..., DELETE /api/jobs/{instance_id},
and for the jobs page GET /api/page (HTML), POST /api/uploads (a one-blob write-only SAS),
GET /api/jobs/{instance_id}/downloads (read-only SAS URLs of a finished job's files) and, for a
finished table job's forecast view, GET /api/jobs/{instance_id}/partitions?q=&status=&limit= (the
gate's counts and the matching partitions) and GET /api/jobs/{instance_id}/forecast?partition=<id>
(one partition's history, forecast and intervals); all at auth level FUNCTION, JSON in and out (but
the page), errors as {"error": {"code", "message"}}.

The Python worker runs every `async def` function on its one event loop, so a blocking storage or
Azure ML call made there would stall every other invocation of the worker: those calls run in a
thread (`asyncio.to_thread`), one hop per step that needs them (tests/test_api_event_loop.py).
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from functools import wraps

import azure.durable_functions as df
import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob_sdk

from restyle.settings import DATA_CONNECTION, get_settings
from restyle.storage import app_store

from .errors import ApiError, json_response
from .forecast import app_forecaster, forecast_request
from .forecast_view import partition_forecast, partition_list
from .jobs import cancel_job, get_job, job_for_request, list_jobs, start_job
from .page import render_page
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


def _body(req: func.HttpRequest) -> object:
    raw = req.get_body() or b""
    limit = get_settings().max_request_bytes
    if len(raw) > limit:
        raise ApiError(413, "body_too_large", f"request body is {len(raw)} bytes; the limit is {limit}")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {error}") from None


@bp.route(route="jobs", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
@_json_errors
async def create_job(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    job = await asyncio.to_thread(job_for_request, app_store(), _body(req))  # storage reads block
    created = await start_job(client, job)
    links = client.get_client_response_links(req, job.instance_id)
    body = {"id": job.instance_id, "created": created, "job": _job_url(req, job.instance_id), **links}
    return json_response(body, 202, {"Location": body["job"], "Retry-After": "10"})


@bp.route(route="jobs/{instance_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
@_json_errors
async def read_job(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return json_response(await get_job(client, req.route_params["instance_id"]))


@bp.route(route="jobs", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
@_json_errors
async def read_jobs(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return json_response({"jobs": await list_jobs(client, req.params.get("status"))})


@bp.route(route="jobs/{instance_id}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
@_json_errors
async def delete_job(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return json_response(await cancel_job(client, app_store(), req.route_params["instance_id"]), 202)


@bp.route(route="forecast", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@_json_errors
async def forecast(req: func.HttpRequest) -> func.HttpResponse:
    """Real-time forecasts; registry lookups and model loads block, so they run in a thread."""
    body = _body(req)
    return json_response(await asyncio.to_thread(forecast_request, app_forecaster(), get_settings(), body))


def _job_url(req: func.HttpRequest, instance_id: str) -> str:
    base = req.url.split("?", 1)[0].rstrip("/")
    return f"{base}/{instance_id}"


@bp.route(route="jobs/{instance_id}/downloads", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
@_json_errors
async def read_job_downloads(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    job = await get_job(client, req.route_params["instance_id"])
    return json_response(await asyncio.to_thread(download_links, app_store(), job))


@bp.route(route="jobs/{instance_id}/partitions", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
@_json_errors
async def read_job_partitions(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    job = await get_job(client, req.route_params["instance_id"])
    limit = req.params.get("limit", "50")
    if not limit.isdigit():
        raise ApiError(400, "invalid_limit", f"limit must be a whole number; got {limit!r}")
    return json_response(await asyncio.to_thread(partition_list, app_store(), job, req.params.get("q", ""),
                                                 req.params.get("status") or None, int(limit)))


@bp.route(route="jobs/{instance_id}/forecast", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@bp.durable_client_input(client_name="client")
@_json_errors
async def read_job_forecast(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    job = await get_job(client, req.route_params["instance_id"])
    return json_response(await asyncio.to_thread(partition_forecast, app_store(), job,
                                                 req.params.get("partition", "")))


@bp.route(route="uploads", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@_json_errors
async def create_upload(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(await asyncio.to_thread(upload_ticket, app_store(), _body(req)), 201)


@bp.route(route="page", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def jobs_page(req: func.HttpRequest) -> func.HttpResponse:
    body, headers = render_page(app_store().service.url)
    return func.HttpResponse(body, headers=headers, mimetype="text/html", charset="utf-8")
