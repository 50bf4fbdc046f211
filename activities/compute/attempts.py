"""A compute job's attempts, for both pipelines: submit (unless the job was canceled), close once,
and the backend the settings name. Plain functions the Durable wrappers call."""

from __future__ import annotations

import time

from restyle.storage import BlobStore

from ..work_layout import WorkLayout
from .backend import ComputeBackend, JobKind


class JobCanceled(RuntimeError):
    """The job was canceled (DELETE /api/jobs/{id}): no compute attempt may start for it."""


def mark_canceled(store: BlobStore, job_id: str) -> None:
    store.write_json(store.settings.work_container, WorkLayout(job_id).canceled_marker, {"canceled": True})


def submit_attempt(store: BlobStore, backend: ComputeBackend, job_id: str, units_total: int, attempt: int,
                   kind: JobKind = JobKind.STYLIZE, events_url: str | None = None) -> dict:
    """Submit unless the job was canceled; checked again after the submit, because a DELETE may mark
    the job and sweep its attempts while this activity runs (terminating an orchestration does not
    stop its activities). Either the sweep finds this attempt or this check cancels it."""
    marker = WorkLayout(job_id).canceled_marker
    if store.exists(store.settings.work_container, marker):
        raise JobCanceled(f"job {job_id} was canceled; attempt {attempt} not submitted")
    handle = backend.submit(job_id, units_total, attempt, kind, events_url)
    if store.exists(store.settings.work_container, marker):
        backend.cancel(handle)
        raise JobCanceled(f"job {job_id} was canceled while attempt {attempt} was being submitted; canceled it")
    return {**handle, "submitted_at": time.time()}  # the start of the attempt's span


def close_attempt(store: BlobStore, handle: dict, state: str) -> bool:
    """True for the one poll (or cancel) that first sees this attempt end: a redelivered final poll
    must not emit the attempt's span and per-unit totals a second time."""
    layout = WorkLayout(handle["job_id"])
    return store.create_json(store.settings.work_container, layout.attempt_closed(handle.get("attempt", 0)),
                             {"state": state, "closed_at": time.time()})


def backend_for(store: BlobStore) -> ComputeBackend:
    if store.settings.compute_backend == "azureml":
        from .azureml import AzureMLBackend

        return AzureMLBackend.from_settings(store)
    from .local import LocalBackend

    return LocalBackend(store)
