"""What the blob trigger does with an upload: start its job once, whatever the number of events."""

from __future__ import annotations

import asyncio
import logging

import azure.durable_functions as df

from restyle.storage import BlobInfo, BlobNotFound, BlobStore
from scoring_job.manifest import ScoringOptions

from .jobs import JobStart, job_for_table, job_for_upload, start_job
from .upload_records import UploadRecord, ticket_used, upload_record

log = logging.getLogger(__name__)


def options_from_metadata(metadata: dict[str, str]) -> dict:
    """Blob metadata keys named like scoring options (`scale`, `crf`, ...) are the job's options;
    other metadata is the user's own and is left alone. Values are checked by probe."""
    fields = {name.lower(): name for name in ScoringOptions.model_fields}
    return {fields[key.lower()]: value for key, value in metadata.items() if key.lower() in fields}


async def handle_table_upload(client: df.DurableOrchestrationClient, store: BlobStore, blob_name: str) -> str | None:
    """Start the many-models run for an uploaded table (any name: validation decides by content)."""
    return await _start_for(client, blob_name, await asyncio.to_thread(table_job, store, blob_name))


def table_job(store: BlobStore, blob_name: str) -> JobStart | None:
    info = _uploaded(store, store.settings.tables_container, blob_name)
    return None if info is None else job_for_table(store, blob_name, info.etag)


def _uploaded(store: BlobStore, container: str, blob_name: str) -> BlobInfo | None:
    """The upload's properties (blocking: one storage call); None when the blob is gone."""
    try:
        return store.info(container, blob_name)
    except BlobNotFound:
        log.info("ignoring %s: gone from %s/ (already handled or rejected)", blob_name, container)
        return None


async def _start_for(client: df.DurableOrchestrationClient, blob_name: str, job: JobStart | None) -> str | None:
    if job is None:
        return None
    started = await start_job(client, job)
    log.info("%s job %s for %s", "started" if started else "duplicate event, existing", job.instance_id, blob_name)
    return job.instance_id


async def handle_upload(client: df.DurableOrchestrationClient, store: BlobStore, blob_name: str) -> str | None:
    """Start the job for an upload; returns its instance id, or None when there is nothing to do.

    Every upload gets a job whatever its name: probe decides by content whether it is a video (any
    container ffmpeg demuxes) and rejects anything else with its reason, so no blob stays in input/
    unanswered. An upload made with a ticket belongs to the ticket's owner; once its job exists the
    ticket stops counting against the owner's quota. Blob reads run in a thread: this runs on the
    worker's one event loop."""
    found = await asyncio.to_thread(upload_job, store, blob_name)
    if found is None:
        return None
    job, record = found
    instance_id = await _start_for(client, blob_name, job)
    if record is not None:
        await asyncio.to_thread(ticket_used, store, blob_name, record)
    return instance_id


def upload_job(store: BlobStore, blob_name: str) -> tuple[JobStart, UploadRecord | None] | None:
    """The upload's job from its properties and ticket record (blocking: two storage calls); None when
    the blob is gone."""
    info = _uploaded(store, store.settings.input_container, blob_name)
    if info is None:
        return None
    style, options = style_and_options(info.metadata, store.settings.default_style)
    record = upload_record(store, blob_name)
    return job_for_upload(store, blob_name, info.etag, style, options, record), record


def style_and_options(metadata: dict[str, str], default_style: str) -> tuple[str, dict]:
    """An upload's style and scoring options from its blob metadata, as its job will see them (so a
    client that uploads can name the job before the trigger has started it: api.jobs.job_instance_id)."""
    lowered = {key.lower(): value for key, value in metadata.items()}
    return lowered.get("style") or default_style, options_from_metadata(metadata)
