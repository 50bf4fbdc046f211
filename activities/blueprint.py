"""Durable activity triggers: thin adapters over the plain functions of activities/.

Inputs and outputs are small JSON dicts (blob names, counts), never media bytes. Each adapter runs
under `job_activity` (restyle/telemetry.py): a span in its job's trace, the job id on every log
record, duration and failure metrics.
"""

from __future__ import annotations

import azure.durable_functions as df

from restyle.storage import app_store
from restyle.telemetry import job_activity, record_attempt, record_compute_status, record_scoring_results

from .cleanup import cleanup_work
from .compute.attempts import backend_for, close_attempt, submit_attempt
from .compute.backend import UNITS, JobKind, JobState, JobStatus, kind_of, units_total
from .compute.usage import record_usage
from .many_models.results import collect_results
from .many_models.validate import validate_table
from .media.probe_input import probe_input
from .media.scoring_io import gpu_seconds, scoring_results, scoring_summary
from .media.scoring_io import write_manifest as write_manifest_blob
from .media.split import split_unit
from .media.stitch import stitch_output

bp = df.Blueprint()


def _compute_progress(handle: dict, status: dict) -> None:
    """Units done on every poll; once the attempt ends (first poll to see it only): the attempt's
    span, the job's scoring seconds so far (the GPU quota) and, when a scoring job completed,
    per-segment frames/s and rank seconds."""
    record_compute_status(handle["job_id"], status)
    if JobState(status["state"]).terminal:
        _attempt_ended(handle, status)


def _attempt_ended(handle: dict, status: dict) -> None:
    store = app_store()
    if not close_attempt(store, handle, status["state"]):
        return
    record_attempt(handle, status)
    if kind_of(handle) is JobKind.STYLIZE:
        results = scoring_results(store, handle["job_id"])
        record_usage(store, handle["job_id"], gpu_seconds(results))  # every ending counts toward the quota
        if status["state"] == JobState.COMPLETED:
            record_scoring_results(handle["job_id"], results)


@bp.activity_trigger(input_name="payload")
@job_activity()
def probe(payload: dict) -> dict:
    return probe_input(app_store(), payload["blob"], payload["job_id"], payload.get("style"), payload.get("options"),
                       payload.get("max_bytes"))


@bp.activity_trigger(input_name="payload")
@job_activity()
def split(payload: dict) -> dict:
    return split_unit(app_store(), payload["blob"], payload["etag"], payload["job_id"], payload["first"],
                      payload["last"])


@bp.activity_trigger(input_name="payload")
@job_activity()
def stitch(payload: dict) -> dict:
    store = app_store()
    stitched = stitch_output(store, payload["blob"], payload["etag"], payload["job_id"])
    return {**stitched, "scoring": scoring_summary(scoring_results(store, payload["job_id"]))}


@bp.activity_trigger(input_name="payload")
@job_activity()
def cleanup(payload: dict) -> dict:
    return cleanup_work(app_store(), payload["job_id"], payload["succeeded"], payload.get("remove", False))


@bp.activity_trigger(input_name="payload")
@job_activity()
def validate_table_upload(payload: dict) -> dict:
    return validate_table(app_store(), payload["blob"], payload["job_id"])


@bp.activity_trigger(input_name="payload")
@job_activity()
def collect_run_results(payload: dict) -> dict:
    return collect_results(app_store(), payload["job_id"], payload["dataset"])


@bp.activity_trigger(input_name="payload")
@job_activity()
def write_manifest(payload: dict) -> dict:
    return write_manifest_blob(app_store(), payload["job_id"], payload["video"], payload["style"], payload["options"],
                          payload["split_frames"])


@bp.activity_trigger(input_name="payload")
@job_activity()
def submit_compute(payload: dict) -> dict:
    store = app_store()
    return submit_attempt(store, backend_for(store), payload["job_id"], payload["units_total"], payload["attempt"],
                          JobKind(payload.get("kind", JobKind.STYLIZE)), payload.get("events_url"))


@bp.activity_trigger(input_name="handle")
@job_activity(on_result=_compute_progress)
def compute_status(handle: dict) -> dict:
    status: JobStatus = backend_for(app_store()).status(handle)
    return status.as_dict()


@bp.activity_trigger(input_name="handle")
@job_activity()
def cancel_compute(handle: dict) -> dict:
    backend_for(app_store()).cancel(handle)
    _attempt_ended(handle, JobStatus(JobState.CANCELED, None, units_total(handle), "canceled by the orchestrator",
                                     UNITS[kind_of(handle)]).as_dict())
    return {"canceled": handle.get("name") or handle.get("job_id")}


@bp.activity_trigger(input_name="payload")
@job_activity()
def cancel_job_compute(payload: dict) -> dict:
    """Every attempt of the job still running, by job id: the failure path's handle may be stale."""
    return {"canceled": backend_for(app_store()).cancel_job(payload["job_id"])}
