"""Jobs as the API sees them: validate a request, start one orchestration per (video, ETag, style,
options), read its status back as a small view, list, and cancel, each for a caller (api/callers.py).

A job's owner is its upload's: the person whose upload ticket made the blob (api/upload_records.py),
else the key; it travels in the orchestration input (so continue_as_new keeps it), and a caller who
may not act for the owner gets 404, as for a job that does not exist.

The Durable client is passed in, so the same functions serve the blob trigger, the HTTP handlers
and the tests (which run them against devhost's real Durable endpoints).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass

import azure.durable_functions as df

from activities.compute.attempts import backend_for, mark_canceled
from activities.compute.usage import record_usage
from activities.media.job_inputs import JobInputProblem, check_options, check_style
from activities.media.scoring_io import gpu_seconds, scoring_results
from orchestrators.remove_work import REMOVAL_SUFFIX
from restyle.blob_names import UnsafeBlobName, safe_blob_name
from restyle.storage import BlobNotFound, BlobStore
from restyle.telemetry import record_audit

from .callers import KEY_CALLER, OPERATOR_ROLE, Caller
from .errors import ApiError, request_fields
from .instance_query import query_instances
from .upload_records import UploadRecord, upload_record

ORCHESTRATOR = "stylize_video"
TABLE_ORCHESTRATOR = "many_models"
PIPELINES = {ORCHESTRATOR: "video", TABLE_ORCHESTRATOR: "many_models"}  # orchestrator -> the API's `pipeline`
PROGRESS_KEYS = ("segments_done", "segments_total", "frames_per_second", "partitions_done", "partitions_total",
                 "partitions_rejected", "models_per_minute", "eta_seconds", "attempt")
OUTPUT_KEYS = ("output_blob", "preview_blob", "frames", "duration", "scoring",  # video
               "dataset", "outputs", "trained", "passed", "pass_rate", "decisions", "flagged_in_production",
               "partitions_short", "partitions_rejected", "partitions_failed")  # many models
TERMINAL = {"Completed", "Failed", "Canceled", "Terminated"}
RUNTIME_STATUSES = [status.value for status in df.OrchestrationRuntimeStatus]

log = logging.getLogger(__name__)


def job_instance_id(blob: str, etag: str, style: str, options: dict) -> str:
    """Stable: the same upload (name + ETag) with the same style and options is the same job, so a
    duplicate event or a repeated POST starts nothing new; a re-upload gets a new ETag and a new job."""
    key = json.dumps([blob, etag, style, options], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class JobStart:
    instance_id: str
    payload: dict  # the orchestration input
    orchestrator: str = ORCHESTRATOR

    @property
    def owner(self) -> dict[str, str]:
        return self.payload["owner"]


def job_for_table(store: BlobStore, blob: str, etag: str) -> JobStart:
    """The many-models run for an uploaded table: one per (name, ETag); options are read (and
    checked) from the blob's metadata by validate_table, which rejects with the reason. Tables come
    with no ticket (only storage identities write tables/), so the key owns them."""
    payload = {"blob": blob, "policy": store.settings.orchestration_policy(), "owner": KEY_CALLER.as_owner()}
    return JobStart(job_instance_id(blob, etag, TABLE_ORCHESTRATOR, {}), payload, TABLE_ORCHESTRATOR)


def job_for_upload(store: BlobStore, blob: str, etag: str, style: str, options: dict,
                   record: UploadRecord | None) -> JobStart:
    """The orchestration for an upload; style and options are checked later, by probe, which
    rejects the upload with the reason (the blob trigger has nobody to answer a 400 to). The owner and
    byte limit are the upload ticket's `record`, if one made the blob (probe rejects a larger upload)."""
    payload = {"blob": blob, "style": style, "options": options, "policy": store.settings.orchestration_policy(),
               "owner": record.owner if record else KEY_CALLER.as_owner(),
               **({"max_bytes": record.max_bytes} if record else {})}
    return JobStart(job_instance_id(blob, etag, style, options), payload)


def job_for_request(store: BlobStore, body: object, caller: Caller) -> JobStart:
    """POST /api/jobs body -> the orchestration to start; ApiError (400/404) names what is wrong.
    Only the upload's owner (or an operator) may start jobs on it: for anyone else it does not exist."""
    body = request_fields(body, ("blob", "style", "options"), '{"blob": "clip.mp4", "style": "19"}')
    blob, style = body.get("blob"), body.get("style", store.settings.default_style)
    if not isinstance(blob, str):
        raise ApiError(400, "invalid_blob", "`blob` must be the name of a video in the input container")
    if not isinstance(style, str):
        raise ApiError(400, "invalid_style", "`style` must be a string")
    try:
        name = safe_blob_name(blob)
        info = store.info(store.settings.input_container, name)
        style = check_style(store, style)
        options = check_options(body.get("options", {}))
    except UnsafeBlobName as error:
        raise ApiError(400, "invalid_blob", str(error)) from None
    except BlobNotFound:
        raise _no_blob(store, name) from None
    except JobInputProblem as error:
        if error.missing:
            raise ApiError(404, "style_not_found", str(error)) from None
        raise ApiError(400, f"invalid_{error.field}", str(error)) from None
    job = job_for_upload(store, name, info.etag, style, options, upload_record(store, name))
    if not caller.may_act_for(job.owner["id"]):
        raise _no_blob(store, name)
    return job


def _no_blob(store: BlobStore, name: str) -> ApiError:
    return ApiError(404, "blob_not_found", f"no video named {name!r} in {store.settings.input_container}/")


async def start_job(client: df.DurableOrchestrationClient, job: JobStart, started_by: Caller | None = None) -> bool:
    """Start the orchestration unless it exists already; True when this call started it (and then
    an audit event says who: the caller, or for an upload's trigger the upload's owner)."""
    if await client.get_status(job.instance_id):
        return False
    try:
        # where a compute backend reports that its job ended, so the orchestrator need not wait out a poll
        events_url = client.create_http_management_payload(job.instance_id)["sendEventPostUri"]
        await client.start_new(job.orchestrator, job.instance_id, {**job.payload, "events_url": events_url})
    except Exception:
        if await client.get_status(job.instance_id):  # a concurrent duplicate won the race
            return False
        raise
    log.info("started job %s for %s", job.instance_id, job.payload["blob"])
    record_audit("job_started", started_by.id if started_by else job.owner["id"], job.instance_id,
                 owner=job.owner["id"], blob=job.payload["blob"], pipeline=PIPELINES[job.orchestrator])
    return True


def job_owner(status: df.DurableOrchestrationStatus) -> dict[str, str]:
    """The owner in the job's input (JSON text from the extension); jobs started before owners were
    recorded belong to the key."""
    given = status.input_
    if isinstance(given, str):
        try:
            given = json.loads(given)
        except json.JSONDecodeError:
            given = None
    owner = given.get("owner") if isinstance(given, dict) else None
    return owner if isinstance(owner, dict) and isinstance(owner.get("id"), str) else KEY_CALLER.as_owner()


def job_view(status: df.DurableOrchestrationStatus) -> dict:
    """What a user wants to know about a job, from its Durable status and custom status."""
    progress = status.custom_status if isinstance(status.custom_status, dict) else {}
    runtime = status.runtime_status.value if status.runtime_status else None
    view = {
        "id": status.instance_id,
        "pipeline": PIPELINES.get(status.name or ORCHESTRATOR, status.name),
        "owner": job_owner(status),
        "status": runtime,
        "blob": progress.get("blob"),
        "stage": progress.get("stage"),
        "progress": {key: progress.get(key) for key in PROGRESS_KEYS if key in progress},
        "created": status.created_time.isoformat() if status.created_time else None,
        "updated": status.last_updated_time.isoformat() if status.last_updated_time else None,
    }
    if runtime == "Completed" and isinstance(status.output, dict):
        view["output"] = {key: status.output[key] for key in OUTPUT_KEYS if key in status.output}
    if runtime in ("Failed", "Terminated"):
        view["error"] = _failure_message(status.output)
    return view


def _failure_message(output: object) -> str:
    """The orchestrator's exception text, without the SDK's out-of-process state appended to it."""
    text = output if isinstance(output, str) else json.dumps(output)
    return text.split("\n\n$OutOfProcData$")[0].strip()


async def get_job(client: df.DurableOrchestrationClient, instance_id: str, caller: Caller) -> dict:
    status = await client.get_status(instance_id, show_input=True)
    if not status or (status.name is not None and status.name not in PIPELINES) or not caller.may_act_for(
            job_owner(status)["id"]):
        raise ApiError(404, "job_not_found", f"no job with id {instance_id!r}")
    return job_view(status)


def parse_status_filter(text: str | None) -> list[df.OrchestrationRuntimeStatus] | None:
    if not text:
        return None
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [part for part in wanted if part not in RUNTIME_STATUSES]
    if unknown:
        raise ApiError(400, "invalid_status", f"unknown status {unknown}; use any of {', '.join(RUNTIME_STATUSES)}")
    return [df.OrchestrationRuntimeStatus(part) for part in wanted]


async def list_jobs(client: df.DurableOrchestrationClient, status_filter: str | None, caller: Caller,
                    owner: str | None = None) -> list[dict]:
    """The caller's jobs, newest first; an operator's are everyone's, or one owner's with `owner`.
    Filtered after all pages are read (instance_query), so no page boundary hides a job."""
    if owner is not None and not caller.may_act_for(owner):
        raise ApiError(403, "not_operator", f"only operators ({OPERATOR_ROLE}) may list other people's jobs")
    wanted = owner if owner is not None else None if caller.operator else caller.id
    statuses = await query_instances(client, parse_status_filter(status_filter))  # all pages, not the first 100
    views = [job_view(status) for status in statuses if status.name in PIPELINES]
    mine = [view for view in views if wanted is None or view["owner"]["id"] == wanted]
    return sorted(mine, key=lambda view: view["created"] or "", reverse=True)


async def cancel_job(client: df.DurableOrchestrationClient, store: BlobStore, instance_id: str,
                     caller: Caller) -> dict:
    """Mark the job canceled, terminate the orchestration, cancel its compute job, and start the
    removal of its intermediates (orchestrators/remove_work.py: batched deletes in an activity; the
    marker stays: see activities.compute.attempts.submit_attempt).

    The upload stays in input/ (a canceled job's video is the user's to keep or re-run). Storage and
    backend calls block, so they run in a thread (this runs on the worker's one event loop): two hops,
    because the mark must be written before the terminate and the sweep must follow it."""
    view = await get_job(client, instance_id, caller)
    if view["status"] in TERMINAL:
        raise ApiError(409, "job_finished", f"job {instance_id} has already finished ({view['status']})")
    # first: a submit_compute still running checks it after its submit
    await asyncio.to_thread(mark_canceled, store, instance_id)
    await client.terminate(instance_id, "canceled by DELETE /api/jobs")
    record_audit("job_canceled", caller.id, instance_id, owner=view["owner"]["id"], blob=view["blob"] or "")
    canceled = await asyncio.to_thread(stop_compute, store, instance_id)
    removal = instance_id + REMOVAL_SUFFIX
    if not await client.get_status(removal):  # a repeated DELETE: the removal runs already
        await client.start_new("remove_work", removal, {"job_id": instance_id,
                                                        "policy": store.settings.orchestration_policy()})
    # `scoring_jobs_canceled`: the field's published name, for both pipelines' compute jobs
    return {"id": instance_id, "status": "Terminated", "scoring_jobs_canceled": canceled, "work_removal": removal}


def stop_compute(store: BlobStore, instance_id: str) -> int:
    """Cancel every running attempt of the job's compute job (local processes, or Azure ML jobs) and
    record the scoring seconds it used (the GPU quota counts canceled jobs too); blocking; returns the
    number of attempts canceled."""
    canceled = backend_for(store).cancel_job(instance_id)
    if results := scoring_results(store, instance_id):
        record_usage(store, instance_id, gpu_seconds(results))
    log.info("canceled job %s: %d compute attempts stopped; work/%s/ is removed by %s%s", instance_id, canceled,
             instance_id, instance_id, REMOVAL_SUFFIX)
    return canceled
